"""The import graph of our own packages, read from the source with ast (nothing imported).

Every import counts, the ones inside functions too: a lazy import is still a dependency
(a client that imports ``services`` in one function cannot be installed without them).
Imports under ``if TYPE_CHECKING:`` are edges for the layering rules (mypy needs the
package) but not for cycles (they never run).

``python -m tests.support.import_graph`` prints the figures the layering test checks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vocab", "clients", "services", "engine")
SERVICES = ("builder", "cri", "dockerapi", "gateway", "imagestore", "registry", "runtime",
            "shim")


@dataclass
class Graph:
    modules: set[str] = field(default_factory=set)
    # (importer, imported, line, at run time): imported is one of our modules
    edges: list[tuple[str, str, int, bool]] = field(default_factory=list)

    def runtime_edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for a, b, _, runs in self.edges:
            if runs and a != b:
                out[a].add(b)
        return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files() -> Iterator[Path]:
    for pkg in PACKAGES:
        if (ROOT / pkg).is_dir():
            yield from sorted((ROOT / pkg).rglob("*.py"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it runs (False under ``if TYPE_CHECKING:``)."""
    def walk(node: ast.AST, runs: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, runs
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), runs)
            else:
                yield from walk(child, runs)
    return walk(tree, True)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def build() -> Graph:
    graph = Graph()
    trees = {}
    for path in _files():
        name = _module_name(path)
        graph.modules.add(name)
        trees[name] = (path, ast.parse(path.read_text(), str(path)))
    for name, (path, tree) in trees.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, runs in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports pkg.mod when that is a module of ours.
                targets = [f"{base}.{a.name}" for a in node.names]
            for resolved in dict.fromkeys(_resolve(t, graph.modules) for t in targets):
                if resolved is not None:  # one edge per statement and module
                    graph.edges.append((name, resolved, node.lineno, runs))
    return graph


def layer(module: str) -> str:
    """clients, vocab, engine, core, or the service's name."""
    top, _, rest = module.partition(".")
    if top != "services":
        return top
    return rest.partition(".")[0] or "services"


def clients_to_services(graph: Graph) -> list[tuple[str, str, int]]:
    return [(a, b, line) for a, b, line, _ in graph.edges
            if layer(a) == "clients" and b.startswith("services")]


def core_to_services(graph: Graph) -> list[tuple[str, str, int]]:
    return [(a, b, line) for a, b, line, _ in graph.edges
            if layer(a) == "core" and layer(b) in SERVICES]


def vocab_outward(graph: Graph) -> list[tuple[str, str, int]]:
    """The vocabulary depends on nothing of ours but itself."""
    return [(a, b, line) for a, b, line, _ in graph.edges
            if layer(a) == "vocab" and layer(b) != "vocab"]


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    edges = graph.runtime_edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _lines(rows: Iterable[tuple[str, str, int]]) -> list[str]:
    return [f"  {a}:{line} -> {b}" for a, b, line in rows]


def main() -> None:
    graph = build()
    for title, rows in (("clients -> services", clients_to_services(graph)),
                        ("core -> a service", core_to_services(graph)),
                        ("vocab -> outside it", vocab_outward(graph))):
        print(f"{title}: {len(rows)} edges, from {len({a for a, _, _ in rows})} modules")
        print("\n".join(_lines(rows)))
    found = cycles(graph)
    print(f"cycles: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))


if __name__ == "__main__":
    main()
