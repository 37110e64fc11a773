"""--format tables and --filter parsing of the listing verbs."""

from __future__ import annotations

import pytest

from clients.cli import formatting
from clients.cli.gotemplate import Fields
from clients.cli.units import UsageError

ROWS = [Fields(ID="abc", Names="web", Label=lambda k: {"t": "x"}.get(k, "")),
        Fields(ID="defghijklmnop", Names="db", Label=lambda k: "")]
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Label": lambda *_: "LABEL"}


def test_table_aligns_like_tabwriter() -> None:
    out = formatting.render('table {{.ID}}\\t{{.Label "t"}}\\t{{.Names}}', ROWS, HEADERS)
    assert out == ("CONTAINER ID    LABEL     NAMES\n"
                   "abc             x         web\n"
                   "defghijklmnop             db\n")


def test_plain_and_json_rows() -> None:
    assert formatting.render("{{.Names}}", ROWS, HEADERS) == "web\ndb\n"
    assert formatting.render("json", ROWS[:1], HEADERS) == '{"ID":"abc","Names":"web"}\n'


def test_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="template parsing error"):
        formatting.render("{{.ID", ROWS, HEADERS)
    with pytest.raises(UsageError, match="can't evaluate field Nope"):
        formatting.render("{{.Nope}}", ROWS, HEADERS)
    with pytest.raises(UsageError, match="invalid filter 'colour'"):
        formatting.parse_filters(["colour=red"], ["name"])
    with pytest.raises(UsageError, match="expected name=value"):
        formatting.parse_filters(["name"], ["name"])


def test_filters_and_or() -> None:
    filters = formatting.parse_filters(["name=a", "name=b", "label=x"], ["name", "label"])
    assert filters == {"name": ["a", "b"], "label": ["x"]}
    tests = {"name": lambda v: v == "b", "label": formatting.label_test({"x": "1"})}
    assert formatting.matches(filters, tests)
    assert not formatting.matches({"label": ["x=2"]}, tests)
