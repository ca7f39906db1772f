"""The package's layout holds: imports run down the layers only, with no loops, and the world
(org, tasks, rewards) never imports torch. Every import counts, function-local ones included.

Layers, top to bottom (a module may import its own room and any room below it):

    cli > experiments, integrations > rl > evaluation > engine > curriculum, data > world > base
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "seccrm"

LAYERS: list[set[str]] = [
    {"cli"},
    {"experiments", "integrations"},
    {"rl"},
    {"evaluation"},
    {"engine"},
    {"curriculum", "data"},
    {"world"},
    {"files", "logs", "errors", "seeding"},
]
HEAVY = ("torch", "transformers", "peft", "numpy")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module (of seccrm or outside) that ``name`` imports, anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{name}: relative import"
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in modules else node.module)
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    room = _room(module)
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    raise AssertionError(f"{module}: in no layer; add its room to LAYERS")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_every_module_sits_in_a_layer(graph: dict[str, set[str]]) -> None:
    for m in graph:
        if m not in ("seccrm", "seccrm.__main__"):
            _layer(m)


def test_imports_run_down_the_layers_only(graph: dict[str, set[str]]) -> None:
    bad = []
    for m, deps in graph.items():
        if m in ("seccrm", "seccrm.__main__"):
            continue
        for d in deps:
            if not d.startswith("seccrm.") or _room(d) == _room(m) or d == "seccrm":
                continue
            if _layer(d) <= _layer(m):
                bad.append(f"{m} -> {d}")
    assert not bad, "imports that go up or sideways:\n" + "\n".join(sorted(bad))


def test_no_import_loops(graph: dict[str, set[str]]) -> None:
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    # a package's __init__ re-exports its own modules; that edge is not a loop of code
    for m in edges:
        edges[m] = {d for d in edges[m] if not d.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                loop = stack[stack.index(d):] + [d]
                raise AssertionError("import loop: " + " -> ".join(loop))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_world_imports_no_torch(graph: dict[str, set[str]]) -> None:
    for m, deps in graph.items():
        if _room(m) in ("world", "files", "logs", "errors"):
            heavy = sorted(d for d in deps if d.split(".")[0] in HEAVY)
            assert not heavy, f"{m} imports {heavy}"


def test_loading_the_world_and_the_data_layer_leaves_torch_unloaded() -> None:
    code = ("import sys, seccrm.world.rewards, seccrm.world.tasks, seccrm.world.org, seccrm.data, "
            "seccrm.curriculum; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
