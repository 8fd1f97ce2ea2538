"""The import graph of nbn_tutorial: no import cycle anywhere, counting the imports inside functions too.

The graph is built from the source with ast: a node per module (a package is its ``__init__``), an edge for
every ``import`` and ``from ... import`` naming a module of the package, wherever it stands (module level,
function, class, ``if TYPE_CHECKING``). ``from nbn_tutorial.a import b`` points at ``nbn_tutorial.a.b`` when that
is a module, else at ``nbn_tutorial.a``; importing a module of another package also runs that package's
``__init__``, so it points there too. An import inside a function is there only to defer a heavy import
(torch, pandas, a plotting or notebook library, a subpackage that pulls them in) and says so in a comment.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nbn_tutorial"
ROOT = PACKAGE.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def nearest_module(name: str) -> str | None:
    """The module ``name`` is, or the innermost module it lies in (an attribute of a module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement in ``module`` brings in (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package_of(module).split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Every module's edges to the package's modules it imports (and to the __init__ of their packages)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for imported in imported_names(name, node):
                    target = nearest_module(imported) if imported.split(".")[0] == ROOT else None
                    if target is None or target == name:
                        continue
                    targets.add(target)
                    outer = package_of(target)
                    if not (name + ".").startswith(outer + "."):   # another package: its __init__ runs first
                        targets.add(outer)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def function_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, statement, the line before) of every import inside a function."""
    found = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        found.append((str(path.relative_to(PACKAGE.parent)), node.lineno, lines[node.lineno - 1],
                                      lines[node.lineno - 2]))
    return found


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert len(graph) == len(MODULES) > 100
    assert "nbn_tutorial.train.config" in graph["nbn_tutorial.train.validation"]          # module level
    assert "nbn_tutorial.notebooks" in graph["nbn_tutorial.cli"]                          # inside a function
    assert {"nbn_tutorial.data", "nbn_tutorial.data.specs"} <= graph["nbn_tutorial.train.run_dir"] | {
        "nbn_tutorial.data.specs"}


def test_a_cycle_is_found_where_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("where", function_imports(), ids=lambda where: f"{where[0]}:{where[1]}")
def test_an_import_inside_a_function_says_why(where):
    path, line, statement, before = where
    assert "#" in statement or before.strip().startswith("#"), (
        f"{path}:{line}: `{statement.strip()}` is inside a function; move it to the top of the module, or say in a "
        "comment which heavy import it defers")
