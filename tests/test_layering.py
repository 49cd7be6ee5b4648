"""The package's rooms depend one way: server → state_links → segmentation; frontend_config is a leaf.

Read from the source (every import statement, at any depth), so a lazy import inside a function
counts too; and no module imports a sibling blueprint.
"""

from __future__ import annotations

import ast
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
