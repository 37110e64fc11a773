"""``muelle-imagestore``: the image store service."""

from __future__ import annotations

from services.core.main import service_main
from services.imagestore.server import factory


def main() -> None:
    service_main("imagestore", factory)


if __name__ == "__main__":
    main()
