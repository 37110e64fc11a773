"""The layering of our packages, read from the source (tests/support/import_graph.py).

- clients import nothing of ``services``: a client is installable without the server;
  what both sides speak is ``vocab``;
- ``services/core`` imports no service: the composition root is ``engine``;
- ``vocab`` imports nothing of ours but itself;
- no import cycles (lazy imports inside functions count: they are dependencies too).
"""

from __future__ import annotations

import pytest

from tests.support import import_graph
from tests.support.import_graph import Graph

KNOWN_CYCLES: list[list[str]] = []  # none: keep it so


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph.build()


def _show(rows: list[tuple[str, str, int]]) -> str:
    return "\n".join(f"{a}:{line} imports {b}" for a, b, line in rows)


def test_clients_import_nothing_of_services(graph: Graph) -> None:
    rows = import_graph.clients_to_services(graph)
    assert rows == [], "clients must not import services (use vocab):\n" + _show(rows)


def test_core_imports_no_service(graph: Graph) -> None:
    rows = import_graph.core_to_services(graph)
    assert rows == [], "services/core must not import a service (engine/ may):\n" + _show(rows)


def test_vocab_imports_nothing_else_of_ours(graph: Graph) -> None:
    rows = import_graph.vocab_outward(graph)
    assert rows == [], "vocab must stand alone:\n" + _show(rows)


def test_no_import_cycles(graph: Graph) -> None:
    found = [c for c in import_graph.cycles(graph) if c not in KNOWN_CYCLES]
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    """The rules above hold because the walk finds every import: a lazy one in a function,
    a ``from pkg import module``, one under TYPE_CHECKING (layering, not cycles)."""
    import ast

    tree = ast.parse("def f():\n    from clients.cli import units\n"
                     "if TYPE_CHECKING:\n    import services.core.config\n")
    found = [(type(n).__name__, runs) for n, runs in import_graph._imports(tree)]
    assert found == [("ImportFrom", True), ("Import", False)]
    g = import_graph.build()
    assert ("clients.cli.containers", "clients.cli.units") in {(a, b) for a, b, _, _ in g.edges}
    # a cycle made of two lazy imports is found
    g = Graph(modules={"a", "b", "c"}, edges=[("a", "b", 1, True), ("b", "a", 2, True),
                                               ("b", "c", 3, True), ("c", "b", 4, False)])
    assert import_graph.cycles(g) == [["a", "b"]]
