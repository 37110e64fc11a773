"""The message in an OCI runtime's stderr, for the shim and the per-container monitor.

Its own module so that the monitor (one process per container) need not import the
runtime drivers and the configuration they bring.
"""

from __future__ import annotations

import json


def error_text(stderr: str) -> str:
    """The message of a runtime's stderr: runc logs JSON or logfmt lines; keep the text."""
    messages = []
    for line in stderr.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            if isinstance(obj, dict) and "msg" in obj:
                messages.append(str(obj["msg"]))
                continue
        except ValueError:
            pass
        if 'msg="' in line:
            messages.append(line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"'))
            continue
        messages.append(line)
    return "; ".join(messages) or "failed"
