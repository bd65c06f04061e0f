"""The package's imports point down only (docs/architecture.md), and no modules import in a circle.

Every `import` counts, at module level or inside a function: a function-level import hides a
circle from Python, not from a reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ablation

PACKAGE = Path(ablation.__file__).resolve().parent

# Top to bottom. A part may import parts of lower rows, never of its own row or higher ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("commands",),
    ("run", "dashboard"),
    ("report",),
    ("train",),
    ("study",),
    ("track", "profile"),
    ("models", "data"),
    ("attention",),
    ("stats",),  # pure statistics: the report and the study's sequential plan both read it
    ("vocabulary",),
)
RANK = {part: rank for rank, row in enumerate(LAYERS) for part in row}


def module_name(path: Path) -> str:
    parts = ["ablation", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The `ablation.*` modules `path` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from ablation.x import y` may import the module ablation.x.y
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "ablation" or name.startswith("ablation.")}


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in modules} - {name}
        for name, path in modules.items()
    }


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_part_of_the_package_has_a_layer():
    parts = {part(m) for m in import_graph()} - {""}
    assert parts <= set(RANK), f"add to LAYERS: {sorted(parts - set(RANK))}"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if part(module)
        and part(target) != part(module)
        and RANK[part(target)] <= RANK[part(module)]
    )


def circles_in(graph: dict[str, set[str]]) -> list[str]:
    # A package's __init__ re-exporting its own modules is not a circle between stages.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    found: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_imports_point_down_only():
    graph = import_graph()
    assert "ablation.run.driver" in graph["ablation.commands.run"]  # the graph is the real one
    assert not upward_imports(graph), "\n".join(upward_imports(graph))


def test_no_import_circles():
    assert not circles_in(import_graph()), "\n".join(circles_in(import_graph()))


def test_the_checks_find_an_upward_import_and_a_circle(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from ablation.cli import main\n", encoding="utf-8")
    assert "ablation.cli" in imports_of(source)
    graph = {
        "ablation.report.x": {"ablation.cli", "ablation.study.y"},
        "ablation.study.y": {"ablation.study.z"},
        "ablation.study.z": {"ablation.study.y"},
    }
    assert upward_imports(graph) == ["ablation.report.x imports ablation.cli"]
    assert circles_in(graph) == ["ablation.study.y -> ablation.study.z -> ablation.study.y"]


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def documented_layers() -> list[tuple[str, ...]]:
    """The parts of each row of docs/architecture.md's layer table, top to bottom."""
    rows = []
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[0].isdigit():
            rows.append(tuple(re.findall(r"`([a-z_]+)(?:/|\.py)`", cells[1])))
    return rows


def test_the_architecture_map_is_the_layer_list():
    assert documented_layers() == list(LAYERS)


def test_the_architecture_map_names_every_module():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    unnamed = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.stem != "__init__" and f"`{p.name}`" not in text and f"{p.stem}.py" not in text
    )
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"
