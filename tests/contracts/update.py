"""`make contracts`: refuse a breaking change, then record the contracts as they are now
(tests/contracts/snapshot.binpb) and regenerate protos/REFERENCE.md."""

from __future__ import annotations

import sys

from tests.contracts import descriptors, reference
from tests.contracts.descriptors import PROTOS


def main() -> int:
    current = descriptors.build(source_info=True)
    stripped = descriptors.without_source_info(current)
    if descriptors.SNAPSHOT.exists():
        problems = descriptors.breaking(descriptors.load_snapshot(), stripped)
        if problems:
            print("breaking changes (use a new package version instead):", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            return 1
    descriptors.write_snapshot(stripped)
    (PROTOS / "REFERENCE.md").write_text(reference.render(current))
    print(f"wrote {descriptors.SNAPSHOT} and {PROTOS / 'REFERENCE.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
