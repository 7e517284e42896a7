"""The docs cover the tool (issue 26: the README is a README, the manual lives in docs/).

Every command and option of the CLI, every key shards.toml accepts and every module of
`shardrun/` is named in README.md or docs/, and every relative link in them leads to a
file and a heading that exist. Each list is read from the code at test time, so a command,
key or module added or moved later fails here until the docs say where it went.

Pure file reading and the typer app's own description of itself: no Docker, no run.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PACKAGE = ROOT / "shardrun"
CONFIG_PAGE = DOCS / "configuration.md"
ARCHITECTURE_PAGE = DOCS / "architecture.md"

# Options of the CLI that the docs need not name, each with the reason. Empty today: every
# option a user can type is documented (typer's --install-completion and --show-completion
# included). Add an entry here only for an option no user should type.
INTERNAL_OPTIONS: dict[str, str] = {}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` in a shell block is no heading,
    and a link-like string in a code sample is no link)."""
    kept, fence = [], None
    for line in text.splitlines():
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if marker and (fence is None or marker.group(1).startswith(fence)):
            fence = None if fence else marker.group(1)[:3]
            continue
        if fence is None:
            kept.append(line)
    return "\n".join(kept)


def _all_docs() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in _pages())


def _mentions(text: str, word: str) -> bool:
    """`word` stands on its own in `text` (`--run` is not found in `--runs-on`)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# ---- commands and options ----------------------------------------------------------------


def _commands() -> Iterator[tuple[str, object]]:
    """Every command and subcommand as `shardrun NAME [SUB]`, with its click command."""
    import typer

    from shardrun.cli.app import app

    def walk(command: object, path: str) -> Iterator[tuple[str, object]]:
        yield path, command
        # typer's groups carry `commands`; its vendored click is not `click.Group`.
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "shardrun")


def _options() -> list[tuple[str, str]]:
    """(command path, long option name) of every option of every command."""
    found = []
    for path, command in _commands():
        for param in getattr(command, "params", ()):
            if getattr(param, "param_type_name", None) != "option":
                continue
            for name in (*param.opts, *param.secondary_opts):
                if name.startswith("--"):
                    found.append((path, name))
    return found


def test_every_command_is_named_in_the_docs() -> None:
    docs = _all_docs()
    commands = [path for path, _ in _commands() if path != "shardrun"]
    assert len(commands) >= 10, f"the CLI walk found only {commands}"
    missing = [path for path in commands if not _mentions(docs, path)]
    assert not missing, "\n".join(
        f'no page of README.md or docs/ mentions the command "{path}"' for path in missing
    )


def test_every_option_is_named_in_the_docs() -> None:
    docs = _all_docs()
    options = _options()
    assert any(name == "--partition" for _, name in options), "the CLI walk found no options"
    missing = sorted(
        {
            (path, name)
            for path, name in options
            if name not in INTERNAL_OPTIONS and not _mentions(docs, name)
        }
    )
    assert not missing, "\n".join(
        f"no page of README.md or docs/ mentions the option {name} of `{path}` "
        "(document it in docs/commands.md, or list it in INTERNAL_OPTIONS with a reason)"
        for path, name in missing
    )


def test_internal_options_are_still_options() -> None:
    names = {name for _, name in _options()}
    stale = sorted(set(INTERNAL_OPTIONS) - names)
    assert not stale, f"INTERNAL_OPTIONS names options the CLI no longer has: {stale}"


# ---- shards.toml keys ------------------------------------------------------------------


def _keys_in(node: ast.expr, module: object) -> list[str] | None:
    """The keys an argument of `check_keys` lists: a tuple literal, a module constant, or
    a sum of those; None for what is known only at call time (a parameter)."""
    if isinstance(node, ast.Tuple | ast.List):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        return [v for v in values if isinstance(v, str)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _keys_in(node.left, module), _keys_in(node.right, module)
        return [*(left or ()), *(right or ())]
    if isinstance(node, ast.Name):
        value = getattr(module, node.id, None)
        if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
            return list(value)
    return None


def _shards_toml_keys() -> dict[str, str]:
    """Every key the loader accepts, with where it is allowed: the tables' `check_keys`
    calls under shardrun/config/, and the run options' table (its keys are the keys of
    [defaults] and of every [[shard]])."""
    keys: dict[str, str] = {}
    for path in sorted((PACKAGE / "config").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "check_keys(" not in source:
            continue
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(dotted)
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name != "check_keys":
                continue
            for key in _keys_in(node.args[1], module) or ():
                keys.setdefault(key, f"{_rel(path)}:{node.lineno}")
    from shardrun.model.options import OPTIONS

    for option in OPTIONS:
        keys.setdefault(option.key, "shardrun/model/options.py (OPTIONS)")
    return keys


def test_the_key_scan_finds_every_table() -> None:
    keys = _shards_toml_keys()
    # One key of each table, so a loader that moves its lists elsewhere fails here, not
    # by passing the check below on an empty set.
    expected = {"project", "dockerfile", "timeout", "split", "compress"}
    assert expected <= set(keys), (
        f"the scan of the loader's check_keys calls found {sorted(keys)}, not "
        f"{sorted(expected - set(keys))}: the loader moved; update _shards_toml_keys"
    )


def test_every_shards_toml_key_is_in_the_configuration_page() -> None:
    text = CONFIG_PAGE.read_text(encoding="utf-8")

    def documented(key: str) -> bool:
        # `key` in prose, `key = ...` in a TOML sample, or a table's [key] / [[key]].
        spellings = (f"`{key}`", f"`{key} =", f"[{key}]", f"[[{key}]]")
        return any(s in text for s in spellings) or bool(
            re.search(rf"(?m)^\s*{re.escape(key)}\s*=", text)
        )

    missing = {key: where for key, where in _shards_toml_keys().items() if not documented(key)}
    assert not missing, "\n".join(
        f'{_rel(CONFIG_PAGE)} does not mention the shards.toml key "{key}" (allowed at {where})'
        for key, where in sorted(missing.items())
    )


# ---- modules ---------------------------------------------------------------------------


def _modules() -> list[str]:
    """Every module of the package as its path under shardrun/, e.g. `run/execute.py`."""
    return sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )


def test_every_module_is_in_the_architecture_page() -> None:
    text = ARCHITECTURE_PAGE.read_text(encoding="utf-8")
    modules = _modules()
    assert len(modules) > 50, f"found only {len(modules)} modules under {PACKAGE}"
    missing = [
        module
        for module in modules
        if not re.search(rf"(?<![\w/.])(?:shardrun/)?{re.escape(module)}(?!\w)", text)
    ]
    assert not missing, "\n".join(
        f"{_rel(ARCHITECTURE_PAGE)} does not name the module shardrun/{module} "
        f"(write it as `{module}` in its package's table)"
        for module in missing
    )


def test_the_architecture_page_names_no_module_that_is_gone() -> None:
    # The first cell of each module table row is the module's path under shardrun/.
    text = ARCHITECTURE_PAGE.read_text(encoding="utf-8")
    listed = re.findall(r"(?m)^\| `([\w/]+\.py)` \|", text)
    assert listed, f"{_rel(ARCHITECTURE_PAGE)} has no module table rows (| `pkg/mod.py` | ...)"
    gone = [module for module in listed if not (PACKAGE / module).is_file()]
    assert not gone, "\n".join(
        f"{_rel(ARCHITECTURE_PAGE)} lists shardrun/{module}, which does not exist"
        for module in gone
    )


def test_the_architecture_page_copies_the_import_rules() -> None:
    # tests/unit/test_import_graph.py holds the rules; the page shows them to a reader.
    from tests.unit.test_import_graph import ALLOWED

    text = ARCHITECTURE_PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"(?m)^\| `(\w+)(?:/|\.py)` \| [^|]+ \| ([^|]+) \|$", text)
    shown = {
        package: set(re.findall(r"`(\w+)`", may)) or ({"*"} if may.strip() == "anything" else set())
        for package, may in rows
    }
    rules = {package: set(allowed) for package, (_, allowed) in ALLOWED.items()}
    differ = sorted(
        f"{package}/: the page says {sorted(shown.get(package, ()))}, "
        f"the test {sorted(rules.get(package, ()))}"
        for package in set(shown) | set(rules)
        if shown.get(package) != rules.get(package)
    )
    assert not differ, (
        f"the import rules of {_rel(ARCHITECTURE_PAGE)} differ from ALLOWED in "
        "tests/unit/test_import_graph.py:\n" + "\n".join(differ)
    )


# ---- links -----------------------------------------------------------------------------

# A code span may run over a line break, as it does inside a paragraph.
_CODE_SPAN = re.compile(r"(`+)((?:(?!\1).)+?)\1", re.DOTALL)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lowercased, punctuation but `-` and
    `_` dropped, each space a `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts as its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose(page.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = _slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")  # as GitHub numbers repeats
    return anchors


def _links(page: Path) -> Iterator[str]:
    prose = _prose(page.read_text(encoding="utf-8"))
    prose = _CODE_SPAN.sub("", prose)  # nor is a link inside a code span
    for match in _LINK.finditer(prose):
        yield match.group(1)


@pytest.mark.parametrize("page", _pages(), ids=_rel)
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{_rel(page)}: the link ({target}) leads to no file")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(
                f"{_rel(page)}: the link ({target}) names no heading of {_rel(destination)}"
            )
    assert not broken, "\n".join(broken)


# A file path in a code span: `tests/host/test_docs.py`, `shardrun/report/schema.json`, or a
# module as the docs name it, under shardrun/ (`run/workflow.py`). Globs and placeholders
# (`tests/**/test_*.py`, `<shard>.log`) are no paths.
_PATH = re.compile(
    r"(?<![\w./*<-])((?:tests|bench|scripts|examples|shardrun)/[\w./-]*\.json"
    r"|[\w-]+(?:/[\w-]+)+\.py)(?![\w*>])"
)
_FILE_NAME = re.compile(r"(?<![\w./*-])(\w+\.py)\b")


@pytest.mark.parametrize("page", _pages(), ids=_rel)
def test_every_file_named_in_code_exists(page: Path) -> None:
    # A path in a code span is a link too: a test or module moved by a refactor leaves it
    # pointing nowhere.
    prose = _prose(page.read_text(encoding="utf-8"))
    spans = [match.group(2) for match in _CODE_SPAN.finditer(prose)]
    names = {
        path.name
        for folder in ("shardrun", "tests", "bench", "scripts", "examples")
        for path in (ROOT / folder).rglob("*.py")
    }
    gone = []
    for span in spans:
        for path in _PATH.findall(span):
            if not (ROOT / path).exists() and not (PACKAGE / path).exists():
                gone.append(f"{_rel(page)} names {path}, which does not exist")
        for name in _FILE_NAME.findall(span):
            if name not in names:
                gone.append(f"{_rel(page)} names {name}, but no file of the project has that name")
    assert not gone, "\n".join(sorted(set(gone)))


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in _links(README)
        if target.partition("#")[0]
    }
    orphans = [_rel(page) for page in sorted(DOCS.rglob("*.md")) if page.resolve() not in linked]
    assert not orphans, f"README.md links no page {orphans}: add each to its Documentation list"


def test_the_readme_keeps_the_two_commands_a_newcomer_types() -> None:
    # .ci/run runs the README's test command: a fenced `python3 -m pytest -q` in the
    # section "Running the tests".
    text = README.read_text(encoding="utf-8")
    assert "pip install . && shardrun run" in text
    assert "pip install '.[test]' && python3 -m pytest -q" in text
    section = re.search(r"(?ms)^## Running the tests\n(.*?)(?=^## |\Z)", text)
    assert section, 'README.md has no section "## Running the tests"'
    assert re.search(r"(?m)^```\w*\n(?:.*\n)*?python3 -m pytest -q\n```", section.group(1)), (
        'README.md\'s "Running the tests" has no fenced block with `python3 -m pytest -q`'
    )
