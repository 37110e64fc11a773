"""`--format` and `--filter` of the listing verbs (ps, images), as docker's CLI has them.

    --format 'table {{.ID}}\\t{{.Names}}'   a header, then aligned rows
    --format '{{.ID}}: {{.Status}}'        one line per row, no header
    --format json                          one JSON object per row
    --filter key=value                     repeated keys: any may match; different keys: all
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from clients.cli.gotemplate import Fields, Template, TemplateError
from clients.cli.units import UsageError, table


def template(text: str) -> tuple[Template, bool]:
    """The template of a --format value and whether it is a table; UsageError when it
    does not parse (docker: "template parsing error: ...")."""
    table = text.startswith("table")
    body = text[5:] if table else text
    if body.strip() == "json":
        body = "{{json .}}"
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        return Template(body), table
    except TemplateError as exc:
        raise UsageError(f"template parsing error: {exc}") from None


def align(lines: list[str]) -> str:
    """Go's tabwriter over tab-separated cells (units.table's widths)."""
    return table([line.split("\t") for line in lines])


def render(fmt: str, rows: Sequence[Fields], headers: dict[str, Any]) -> str:
    """The output of ``--format fmt`` over ``rows``; ``headers``: each field's column
    title (docker's: "CONTAINER ID" for .ID)."""
    tmpl, table = template(fmt)
    try:
        lines = [tmpl.render(row) for row in rows]
        if table:
            lines.insert(0, tmpl.render(Fields(headers), header=True))
    except TemplateError as exc:
        raise UsageError(f"template: {exc}") from None
    if table:
        return align(lines)
    return "".join(line + "\n" for line in lines)


def parse_filters(values: Iterable[str], known: Sequence[str]) -> dict[str, list[str]]:
    """{"status": ["running", "paused"], ...} from repeated --filter key=value."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, arg = value.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {value}")
        if key not in known:
            raise UsageError(f"invalid filter '{key}'")
        out.setdefault(key, []).append(arg)
    return out


def matches(filters: dict[str, list[str]],
            tests: dict[str, Callable[[str], bool]]) -> bool:
    """Every filter key has a value its test accepts."""
    return all(any(tests[key](value) for value in values) for key, values in filters.items())


def label_test(labels: dict[str, str]) -> Callable[[str], bool]:
    """label=KEY (present) or label=KEY=VALUE."""
    def test(value: str) -> bool:
        key, sep, want = value.partition("=")
        return key in labels and (not sep or labels[key] == want)
    return test


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def label_method(labels: dict[str, str]) -> Callable[[str], str]:
    """{{.Label "key"}}: the value, "" when absent."""
    return lambda key: labels.get(key, "")


def go_time(seconds: float) -> str:
    """Go's time.Time String() in local time: "2024-05-01 10:00:00 +0000 UTC"."""
    from datetime import datetime

    when = datetime.fromtimestamp(int(seconds)).astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S %z %Z")
