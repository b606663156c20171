"""The package's shape: stages as subpackages, imports pointing one way, no cycles.

Read from the source (every ``import``, including those inside functions
and under ``TYPE_CHECKING``), so a lazy import cannot hide a dependency
that points the wrong way. Cycles are looked for among the imports that
run (lazy ones included), not those only a type checker reads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import mixdown

PACKAGE = Path(mixdown.__file__).parent

#: Lowest first. A module may import from its own layer or a lower one. The data and helpers
#: every stage reads; the libraries of arrays and files; renderers; then the stages as the
#: show flows through them; then the entry points.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "settings", "keys"),
    ("dsp", "codecs", "store"),
    ("renderers",),
    ("show",),
    ("plan",),
    ("publish",),
    ("actions",),
    (
        "loader",
        "showtasks",
        "feed",
        "scaffold",
        "cli",
        "cli_cache",
        "cli_lock",
        "cli_plan",
        "__init__",
        "__main__",
    ),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["mixdown", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _typing_only(tree: ast.AST) -> set[int]:
    """The ids of the import statements under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test):
            found.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return found


def _imports(name: str, path: Path, *, typing: bool = True) -> set[str]:
    """The mixdown modules ``name`` imports anywhere in its source (with ``typing``, also
    those only type checkers read)."""
    package = (
        name.split(".") if path.name == "__init__.py" and name != "mixdown.__init__" else name.split(".")[:-1]
    )
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set() if typing else _typing_only(tree)
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in MODULES else target)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}
#: What runs: a module may name another's types for the type checker alone (a mixer's
#: rendering names the Mix it renders) without the two depending on each other at run time.
RUNTIME = {name: _imports(name, path, typing=False) for name, path in MODULES.items()}


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer() -> None:
    assert {_layer(name) for name in MODULES} <= set(RANK)


def test_imports_point_down_the_layers() -> None:
    wrong = [
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if RANK[_layer(target)] > RANK[_layer(name)]
    ]
    assert wrong == []


def test_no_import_cycles() -> None:
    # Depth-first search for a back edge; the path to it is the cycle.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(RUNTIME[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(RUNTIME):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_renderers_use_only_their_base_the_http_layer_and_the_libraries() -> None:
    allowed = {"errors", "settings", "keys", "dsp", "codecs", "store", "renderers"}
    assert {
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _layer(name) == "renderers"
        for target in targets
        if _layer(target) not in allowed
    } == set()


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_every_module_imports_on_its_own() -> None:
    # Each in a fresh interpreter: an import cycle that only bites in one order shows here.
    names = sorted(n for n in MODULES if not n.endswith("__init__") and not n.endswith("__main__"))
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(names, pool.map(lambda n: _run(f"import {n}"), names), strict=True))
    failed = {name: r.stderr.strip().splitlines()[-1] for name, r in results.items() if r.returncode}
    assert failed == {}


@pytest.mark.parametrize("module", ["mixdown.show.project", "mixdown.show.templates", "mixdown.show.stanza"])
def test_the_show_loads_without_numpy_or_doit(module: str) -> None:
    found = _run(f"import sys, {module}; print(sorted({{'numpy', 'doit', 'scipy'}} & set(sys.modules)))")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"
