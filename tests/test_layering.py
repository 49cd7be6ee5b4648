"""The package's rooms depend one way: server → state_links → segmentation; frontend_config is a leaf.

Read from the source (every import statement, at any depth), so a lazy import inside a function
counts too; no module imports a sibling blueprint; no two modules import each other, directly or
round a loop; and no test imports a test module.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAY_IMPORT = {
    "segmentation": {"segmentation"},
    "state_links": {"state_links", "segmentation", "frontend_config"},  # voxel links start from the default view
    "frontend_config": {"frontend_config"},
    "server": {"server", "segmentation", "state_links", "frontend_config"},
}


def imports_of(path: Path, package: str) -> set[str]:
    """Top-level names of our packages that ``path`` imports (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(package if node.level else (node.module or "").split(".")[0])
    return found & set(MAY_IMPORT)


def test_no_upward_imports():
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for name in imports_of(path, package) - allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def test_blueprints_never_import_each_other():
    blueprints = ROOT / "server" / "blueprints"
    names = {p.stem for p in blueprints.glob("*.py")} - {"__init__"}
    wrong = []
    for path in blueprints.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and (node.module or "") in names:
                wrong.append(f"{path.name} imports .{node.module}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("server.blueprints."):
                wrong.append(f"{path.name} imports {node.module}")
    assert not wrong, wrong


def test_the_graph_is_read_through_its_facade():
    """Outside segmentation/graph/ nobody reaches into a graph's index (``graph.index.…``)."""
    wrong = []
    for package in ("server", "state_links", "segmentation", "frontend_config"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "segmentation" / "graph"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if "graph.index." in line:
                    wrong.append(f"{path.relative_to(ROOT)}:{number}")
    assert not wrong, wrong


def test_tests_never_import_test_modules():
    """What several test modules share lives in helper modules (tests/helpers.py, tests/browser.py …) or
    in conftest.py: importing a test module runs its collection again elsewhere and ties the two together."""
    wrong = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(filter(None, ["tests" if node.level else "", node.module or ""]))
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            wrong += [f"{path.name} imports {name}" for name in names if name.startswith("tests.test_")]
    assert not wrong, wrong


# Import cycles -----------------------------------------------------------------------------------

PACKAGES = ("server", "segmentation", "state_links", "frontend_config")

# Cycles reported to the owners of segmentation/graph/ (being reworked there): each is known by the
# modules it runs through; any other cycle, or one of these growing, fails the test.
KNOWN_CYCLES: dict[frozenset[str], str] = {}  # none: a cycle found is a failure


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import statement of a module, in functions and classes too, but not under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _type_checking_only(child))


def import_graph() -> dict[str, dict[str, int]]:
    """{module: {module of ours it imports: line of the first such import}} over the four packages.

    ``from a import b`` is an edge to module ``a.b`` when that is a module, else to ``a``; a relative
    import is resolved against the importing module's package. Importing ``a.b.c`` also runs the
    ``__init__`` of ``a`` and ``a.b``, but that is no edge here: a package re-exporting its own
    submodules would otherwise make every facade a cycle. Migrations are Alembic scripts, not modules
    of the package, and are left out as in :func:`test_no_upward_imports`.
    """
    paths = {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }
    graph = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: dict[str, int] = {}
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # from . import x, from ..a import x
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base for alias in node.names]
            for target in targets:
                if target in paths and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The groups of two or more modules that reach one another (Tarjan), i.e. every import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def a_cycle(graph: dict[str, dict[str, int]], group: set[str]) -> str:
    """One shortest loop through the group's first module, as ``module:line of its import -> …``."""
    start = min(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph[module]):
            if target == start:
                steps = [module]
                while steps[-1] != start:
                    steps.append(came_from[steps[-1]])
                loop = [*reversed(steps), start]
                return " -> ".join(f"{a}:{graph[a][b]}" for a, b in zip(loop, loop[1:])) + f" -> {start}"
            if target in group and target not in came_from and target != start:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"no loop through {start}")


def test_no_import_cycles():
    """No module of ours imports itself back round a loop of imports of ours.

    Imports inside functions count: a lazy import is how a cycle is usually hidden, not removed, and
    the two modules still cannot be understood, tested or moved one without the other (the layering
    test above counts them for the same reason). Imports under ``if TYPE_CHECKING:`` do not: they
    never run and only name a type for an annotation.
    """
    graph = import_graph()
    cycles = [a_cycle(graph, group) for group in strongly_connected(graph) if frozenset(group) not in KNOWN_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_reader_counts_imports_that_run():
    """Imports in functions and classes are read, ``if TYPE_CHECKING:`` ones are not; relative and
    lazy imports resolve to the module they load."""
    source = """
from typing import TYPE_CHECKING
import server.cli
if TYPE_CHECKING:
    from server import auth
class A:
    from . import hosts
def f():
    if True:
        from .workspace import workspace
"""
    assert sorted(ast.unparse(node) for node in _imports(ast.parse(source))) == [
        "from . import hosts",
        "from .workspace import workspace",
        "from typing import TYPE_CHECKING",
        "import server.cli",
    ]
    graph = import_graph()
    assert "server.cli_common" in graph["server.cli_check"]  # from .cli_common import …
    assert "server.auth" in graph["server.blueprints"]  # from .. import auth, in a function
    assert "segmentation.datasets" in graph["server.blueprints"]  # from segmentation.datasets import …
