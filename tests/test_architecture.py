"""The layer rule of docs/architecture.md: every package imports only the packages allowed to it.

The layer table in docs/architecture.md is the only source: this test parses it, so the doc and the
check cannot drift apart. A package is a first-level package or a top-level module of ``sam4med``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "sam4med"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

HEADER = ("package", "job", "may import")
NONE = "—"
EVERYTHING_ABOVE = "everything above"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
PACKAGE_CELL = re.compile(rf"`({NAME})`")
ALLOWED_CELL = re.compile(rf"`{NAME}`(\s*,\s*`{NAME}`)*")


@dataclass(frozen=True)
class Row:
    """One row of the layer table: a package and what it may import, as written (before checking the order)."""

    package: str
    allowed: tuple[str, ...]
    line: int  # 1-based, in the markdown text


def _cells(line: str) -> list[str]:
    """The cells of a markdown table line (``\\|`` is a pipe inside a cell)."""
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def parse_layer_table(markdown: str) -> list[Row]:
    """The rows of the table headed ``| package | job | may import |``, in order.

    ``everything above`` becomes every package of the rows above it. Raises ``ValueError`` naming the
    line for a missing table or a cell that is not one backticked name / a list of them / ``—``.
    """
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("|") and tuple(_cells(line)) == HEADER]
    if len(starts) != 1:
        raise ValueError(f"expected one table headed {' | '.join(HEADER)!r}, found {len(starts)}")
    start = starts[0]
    if start + 1 >= len(lines) or not re.fullmatch(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?", lines[start + 1].strip()):
        raise ValueError(f"line {start + 2}: expected the separator line of the layer table")
    rows: list[Row] = []
    for index in range(start + 2, len(lines)):
        text = lines[index]
        if not text.lstrip().startswith("|"):
            break
        number = index + 1
        cells = _cells(text)
        if len(cells) != len(HEADER):
            raise ValueError(f"line {number}: expected {len(HEADER)} cells, found {len(cells)}")
        package_cell, _job, allowed_cell = cells
        match = PACKAGE_CELL.fullmatch(package_cell)
        if not match:
            raise ValueError(f"line {number}: the package cell {package_cell!r} is not one backticked name")
        if allowed_cell == NONE:
            allowed: tuple[str, ...] = ()
        elif allowed_cell == EVERYTHING_ABOVE:
            allowed = tuple(row.package for row in rows)
        elif ALLOWED_CELL.fullmatch(allowed_cell):
            allowed = tuple(re.findall(rf"`({NAME})`", allowed_cell))
        else:
            raise ValueError(
                f"line {number}: the 'may import' cell {allowed_cell!r} is not {NONE!r}, "
                f"{EVERYTHING_ABOVE!r} or backticked names separated by commas"
            )
        rows.append(Row(match.group(1), allowed, number))
    if not rows:
        raise ValueError(f"line {start + 1}: the layer table has no rows")
    return rows


def order_problems(rows: list[Row]) -> list[str]:
    """Each row that repeats a package or allows a package that is not above it (itself included)."""
    problems = []
    above: list[str] = []
    everywhere = {row.package for row in rows}
    for row in rows:
        if row.package in above:
            problems.append(f"line {row.line}: `{row.package}` has a second row")
        for name in row.allowed:
            if name in above:
                continue
            where = "is not a row of the table" if name not in everywhere else "is not above it"
            problems.append(f"line {row.line}: `{row.package}` may import `{name}`, which {where}")
        above.append(row.package)
    return problems


def layer_table() -> dict[str, set[str]]:
    """Package -> the packages it may import (besides itself), from docs/architecture.md."""
    return {row.package: set(row.allowed) for row in parse_layer_table(ARCHITECTURE.read_text(encoding="utf-8"))}


def real_packages(root: Path | None = None) -> set[str]:
    """The first-level packages (folders holding Python files, namespace packages too) and top-level modules."""
    root = PACKAGE if root is None else root
    packages = {path.relative_to(root).parts[0] for path in root.glob("*/**/*.py")} - {"__pycache__"}
    modules = {path.stem for path in root.glob("*.py") if path.stem != "__init__"}
    return packages | modules


# --- the import scanner --------------------------------------------------------------------------


def _constant_string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _resolve_relative(name: str, package: str | None) -> str | None:
    """``importlib.import_module(".x", package="sam4med.data")`` -> ``sam4med.data.x``."""
    if not name.startswith("."):
        return name
    if package is None:
        return None
    level = len(name) - len(name.lstrip("."))
    base = package.split(".")
    if level - 1 >= len(base):
        return None
    base = base[: len(base) - (level - 1)]
    rest = name[level:]
    return ".".join([*base, rest] if rest else base)


def _dynamic_import_names(call: ast.Call) -> list[str]:
    """The modules named by ``importlib.import_module(...)`` or ``__import__(...)`` with constant strings."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    keywords = {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}
    first = call.args[0] if call.args else keywords.get("name")
    name = _constant_string(first)
    if name is None:
        return []
    if called == "import_module":
        package = _constant_string(call.args[1] if len(call.args) > 1 else keywords.get("package"))
        resolved = _resolve_relative(name, package)
        return [resolved] if resolved else []
    if called == "__import__":
        # __import__(name, globals, locals, fromlist, level): a constant fromlist names submodules too
        fromlist = call.args[3] if len(call.args) > 3 else keywords.get("fromlist")
        names = [name]
        if isinstance(fromlist, (ast.List, ast.Tuple)):
            names += [f"{name}.{item}" for item in map(_constant_string, fromlist.elts) if item and item != "*"]
        return names
    return []


def imported_packages(source: str, parts: tuple[str, ...]) -> set[str]:
    """The first-level sam4med packages that a module imports: absolute, relative or dynamic.

    ``parts`` is the module's dotted name below ``sam4med`` (``("evaluation", "session")``; a package's
    ``__init__.py`` is ``("evaluation", "__init__")``).
    """
    own_package = ("sam4med", *parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 >= len(own_package):
                    continue  # beyond the top-level package: Python refuses it anyway
                base = own_package[: len(own_package) - (node.level - 1)]
            else:
                base = ()
            module = (*base, *node.module.split(".")) if node.module else base
            # from sam4med import training / from .. import files: the names may be modules of the package
            names = [".".join(module)] + [".".join((*module, alias.name)) for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call):
            names = _dynamic_import_names(node)
        found |= {name.split(".")[1] for name in names if name.startswith("sam4med.")}
    return found


# --- the checks on the real tree -----------------------------------------------------------------


def test_the_layer_table_is_in_a_consistent_order():
    rows = parse_layer_table(ARCHITECTURE.read_text(encoding="utf-8"))
    problems = order_problems(rows)
    assert not problems, "docs/architecture.md, layer table:\n" + "\n".join(problems)


def test_every_package_has_a_row():
    missing = sorted(real_packages() - set(layer_table()))
    assert not missing, f"packages of src/sam4med without a row in the layer table of docs/architecture.md: {missing}"


def test_every_row_names_a_real_package():
    unknown = sorted(set(layer_table()) - real_packages())
    assert not unknown, f"rows of the layer table in docs/architecture.md naming no package of src/sam4med: {unknown}"


def test_every_package_imports_only_what_its_row_allows():
    allowed = layer_table()
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        imported = imported_packages(path.read_text(encoding="utf-8"), parts)
        if parts == ("__init__",):
            extra = imported  # the root package imports nothing, so `import sam4med` stays cheap
        elif parts[0] not in allowed:
            continue  # reported by test_every_package_has_a_row
        else:
            extra = imported - allowed[parts[0]] - {parts[0]}
        if extra:
            violations.append(f"{path.relative_to(PACKAGE)} imports {sorted(extra)}")
    assert not violations, "imports the layer table of docs/architecture.md does not allow:\n" + "\n".join(violations)


# --- the checks on themselves --------------------------------------------------------------------


def test_the_check_sees_upward_imports():
    """The scanner itself: relative, absolute, ``from sam4med import x`` and dynamic imports are all found."""
    source = "from ..evaluation import session\nfrom . import overlap\nimport sam4med.training.module\nimport numpy\n"
    assert imported_packages(source, ("metrics", "distance")) == {"evaluation", "metrics", "training"}
    assert imported_packages("from .. import files\n", ("data", "format")) == {"files"}
    assert imported_packages("from .. import files, errors as e\n", ("data", "format")) == {"files", "errors"}
    assert imported_packages("from . import files\n", ("compute",)) == {"files"}
    assert imported_packages("from .errors import ConfigError\n", ("compute",)) == {"errors"}
    assert imported_packages("from . import finetuned\n", ("models", "__init__")) == {"models"}
    assert imported_packages("from ..training import losses\n", ("models", "__init__")) == {"training"}
    assert imported_packages("from ...training import losses\n", ("data", "sub", "x")) == {"training"}
    assert imported_packages("from sam4med import training\n", ("metrics", "overlap")) == {"training"}
    assert imported_packages("from sam4med import jobs, errors\n", ("files",)) == {"jobs", "errors"}
    assert imported_packages("from sam4med.results.frame import x\n", ("metrics", "overlap")) == {"results"}
    assert imported_packages("import sam4med\nimport sam4medical.x\nfrom sam4medx import y\n", ("files",)) == set()
    # imports inside functions and under TYPE_CHECKING count too
    lazy = "def f():\n    from sam4med.evaluation import rows\nif TYPE_CHECKING:\n    import sam4med.jobs\n"
    assert imported_packages(lazy, ("metrics", "overlap")) == {"evaluation", "jobs"}
    # importlib and __import__ with a constant name
    dynamic = (
        "import importlib\n"
        "importlib.import_module('sam4med.training.module')\n"
        "from importlib import import_module\n"
        "import_module(name='sam4med.results')\n"
        "__import__('sam4med.jobs.train')\n"
        "builtins.__import__('sam4med', None, None, ['callbacks'])\n"
        "__import__('sam4med', fromlist=('export',))\n"
        "importlib.import_module('.prepare', 'sam4med')\n"
        "importlib.import_module('..data.split', package='sam4med.models')\n"
        "importlib.import_module(name_from_config)\n"
        "importlib.import_module('numpy')\n"
    )
    assert imported_packages(dynamic, ("metrics", "overlap")) == {
        "training",
        "results",
        "jobs",
        "callbacks",
        "export",
        "prepare",
        "data",
    }


SMALL_TABLE = """\
# Layers

| package | job | may import |
|---|---|---|
| `errors` | error types | — |
| `files` | writes, with a \\| in the job | `errors` |
| `models` | builders (`builders`, `sdpa`) | `errors`, `files` |
| `jobs` | entry points | everything above |

Text after the table.
"""


def test_the_table_parser_reads_a_small_table():
    rows = parse_layer_table(SMALL_TABLE)
    assert [(row.package, row.allowed) for row in rows] == [
        ("errors", ()),
        ("files", ("errors",)),
        ("models", ("errors", "files")),
        ("jobs", ("errors", "files", "models")),
    ]
    assert [row.line for row in rows] == [5, 6, 7, 8]
    assert order_problems(rows) == []


def test_the_table_parser_reports_a_misordered_table():
    misordered = SMALL_TABLE.replace("| `errors` | error types | — |\n", "").replace(
        "| `jobs` | entry points |", "| `errors` | error types | — |\n| `jobs` | entry points |"
    )
    problems = order_problems(parse_layer_table(misordered))
    assert problems == [
        "line 5: `files` may import `errors`, which is not above it",
        "line 6: `models` may import `errors`, which is not above it",
    ]
    unknown = SMALL_TABLE.replace("`errors`, `files` |", "`errors`, `filez` |")
    assert order_problems(parse_layer_table(unknown)) == [
        "line 7: `models` may import `filez`, which is not a row of the table"
    ]
    itself = SMALL_TABLE.replace("`errors`, `files` |", "`models` |")
    assert order_problems(parse_layer_table(itself)) == ["line 7: `models` may import `models`, which is not above it"]
    twice = SMALL_TABLE.replace("| `jobs` |", "| `files` |")
    assert order_problems(parse_layer_table(twice)) == ["line 8: `files` has a second row"]


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (SMALL_TABLE.replace("`errors`, `files` |", "errors, files |"), "line 7: the 'may import' cell"),
        (SMALL_TABLE.replace("`errors`, `files` |", "`errors` (for X) |"), "line 7: the 'may import' cell"),
        (SMALL_TABLE.replace("| `models` |", "| models |"), "line 7: the package cell"),
        (SMALL_TABLE.replace("| `models` |", "| `sam4med.models` |"), "line 7: the package cell"),
        (SMALL_TABLE.replace("| entry points |", ""), "line 8: expected 3 cells"),
        (SMALL_TABLE.replace("may import", "imports"), "expected one table"),
        (SMALL_TABLE + "\n" + SMALL_TABLE, "expected one table"),
    ],
)
def test_the_table_parser_refuses_a_malformed_table(broken, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_layer_table(broken)


def test_real_packages_are_folders_of_python_files_and_top_level_modules(tmp_path):
    files = (
        "pkg/__init__.py",
        "pkg/inner.py",
        "module.py",
        "__init__.py",
        "namespace/deep/x.py",
        "py.typed",
        "assets/readme.md",
        "__pycache__/module.cpython-312.pyc",
    )
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert real_packages(tmp_path) == {"pkg", "module", "namespace"}
