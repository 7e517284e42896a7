"""The layout's rules, read from the source: no import cycles between modules or between
packages, and the engine layer imports nothing of shardrun above it (docs/architecture.md).

Every import counts, those inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shardrun"
# What shardrun/engine/ may import of shardrun: itself and the pure values.
ENGINE_MAY_IMPORT = ("shardrun.engine", "shardrun.model")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def imports_of(name: str, path: Path) -> set[str]:
    """The shardrun modules `name` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level` dots up
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    """shardrun.run.workflow -> shardrun.run; a top-level module is its own unit."""
    return ".".join(module.split(".")[:2])


def test_the_walk_sees_lazy_imports_inside_functions():
    # cli/run.py imports its stage only when the command runs.
    assert "shardrun.run.job" in imports_of("shardrun.cli.run", MODULES["shardrun.cli.run"])


def test_no_module_imports_itself_back_through_others():
    assert cycles(graph()) == []


def test_no_package_imports_itself_back_through_others():
    packages: dict[str, set[str]] = {}
    for module, deps in graph().items():
        own = package_of(module)
        packages.setdefault(own, set()).update(package_of(d) for d in deps if package_of(d) != own)
    assert cycles(packages) == []


def test_the_engine_layer_imports_nothing_above_it():
    upward = {
        (module, dep)
        for module, deps in graph().items()
        if module.startswith("shardrun.engine")
        for dep in deps
        if not dep.startswith(ENGINE_MAY_IMPORT)
    }
    assert upward == set()


# The layers, bottom up: what each package may import of shardrun besides itself. A new
# import that crosses them fails below with the rule's name; to change a rule, change it
# here and in docs/architecture.md, with the reason.
ALLOWED = {
    "model": ("the words every stage shares: imports nothing", set()),
    "engine": ("the only Docker client: knows only the words", {"model"}),
    "state": ("the state folder's files: the words only", {"model"}),
    "config": ("shards.toml: the words and where state lives", {"model", "state"}),
    "report": ("what a run leaves, written and read back", {"model", "state"}),
    "ci": ("generated CI files: the words only", {"model"}),
    "plan": ("which shards, in which order, on which partition", {"model", "state", "config"}),
    "image": ("the build", {"model", "state", "config", "engine"}),
    "distribute": ("the image onto the workers", {"model", "state", "engine"}),
    "cleanup": ("containers found by label and removed", {"model", "engine"}),
    "ui": ("front ends: render events and summaries", {"model", "report"}),
    "run": (
        "the workflow over the stages",
        {"model", "state", "config", "engine", "plan", "image", "distribute", "cleanup", "report"},
    ),
    "repro": (
        "one shard of a past run again, through the docker CLI",
        {
            "model",
            "state",
            "config",
            "engine",
            "plan",
            "image",
            "distribute",
            "cleanup",
            "report",
            "run",
        },
    ),
    "cli": ("parses, calls a stage, maps the outcome", {"*"}),
    "__main__": ("python -m shardrun", {"cli"}),
}
# Crossings not yet undone, each named so that it cannot spread unseen; none is left.
KNOWN: set[tuple[str, str]] = set()


def test_every_package_has_a_rule():
    packages = {package_of(m).removeprefix("shardrun.") for m in MODULES} - {"shardrun"}
    assert packages <= set(ALLOWED), f"no rule for {sorted(packages - set(ALLOWED))}"


def test_imports_follow_the_layers():
    crossings = []
    for module, deps in graph().items():
        own = package_of(module).removeprefix("shardrun.")
        why, allowed = ALLOWED.get(own, ("", set()))
        for dep in deps:
            other = package_of(dep).removeprefix("shardrun.")
            if other in (own, "shardrun") or "*" in allowed or other in allowed:
                continue
            if (module, dep) not in KNOWN:
                crossings.append(
                    f"{module} imports {dep}: {own}/ is {why!r}, may import {sorted(allowed)}"
                )
    assert crossings == []


def test_the_known_crossings_are_still_there():
    # One undone is a rule to tighten: drop it from KNOWN.
    edges = graph()
    assert [k for k in sorted(KNOWN) if k[1] not in edges.get(k[0], set())] == []


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, expected):
    # The checks above pass on an empty answer, so the finder itself must be seen to work.
    assert cycles(edges) == expected
