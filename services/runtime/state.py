"""``state`` and ``list``: report what the store knows, with the live status."""

from __future__ import annotations

import json
from typing import Any

from services.runtime.store import Store


def state(store: Store, cid: str) -> dict[str, Any]:
    st = store.load(cid)
    return st.oci(store.status(st))


def render_state(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)


def listing(store: Store) -> list[dict[str, Any]]:
    out = []
    for cid in store.ids():
        try:
            out.append(state(store, cid))
        except Exception:  # noqa: BLE001 - one broken entry must not hide the others
            continue
    return out


def render_list(items: list[dict[str, Any]], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(items)
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED")]
    rows += [(i["id"], str(i["pid"]), i["status"], i["bundle"], i.get("created", ""))
             for i in items]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)
