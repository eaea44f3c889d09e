"""The layer rule of docs/architecture.md: every package imports only the packages allowed to it."""

import ast
from pathlib import Path

import sam4med

PACKAGE = Path(sam4med.__file__).parent
SHARED = {"files", "errors", "cli", "embeddings", "compute"}

# Package (or top-level module) -> the sam4med packages it may import, besides itself.
ALLOWED = {
    "metrics": set(),
    "errors": set(),
    "files": {"errors"},
    "cli": {"errors"},
    "compute": {"errors"},
    "embeddings": {"files", "errors", "models", "cli"},  # cli: the ``verify`` command's one-line errors
    "prompts": {"files", "errors"},
    "models": {"metrics", "files", "errors"},
    "data": {"prompts", "models", "embeddings", "files", "errors"},
    "prepare": {"data", "files", "errors", "cli"},
    "evaluation": {"data", "prompts", "models", "metrics"} | SHARED,
    "training": {"models", "metrics"} | SHARED,
    "callbacks": {"data", "prompts", "models", "metrics", "evaluation", "training"} | SHARED,
    "export": {"models"} | SHARED,
    "jobs": {"prepare", "data", "prompts", "models", "metrics", "evaluation", "training", "callbacks"} | SHARED,
}


def imported_packages(source: str, parts: tuple[str, ...]) -> set[str]:
    """The first-level sam4med packages that a module imports, absolute or relative.

    ``parts`` is the module's dotted name below ``sam4med`` (``("evaluation", "session")``).
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = ("sam4med", *parts[:-1])[: len(parts) + 1 - node.level]
            if node.module:
                names = [".".join((*base, node.module))]
            else:  # from .. import files: the imported names are modules of the base package
                names = [".".join((*base, alias.name)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found |= {name.split(".")[1] for name in names if name.startswith("sam4med.")}
    return found


def test_every_package_imports_only_downward():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        owner = parts[0]
        assert owner in ALLOWED, f"{path}: package {owner!r} is not in the layer table of this test"
        extra = imported_packages(path.read_text(), parts) - ALLOWED[owner] - {owner}
        if extra:
            violations.append(f"{path.relative_to(PACKAGE)} imports {sorted(extra)}")
    assert not violations, "\n".join(violations)


def test_the_check_sees_upward_imports():
    """The scanner itself: relative, absolute and plain upward imports are all found."""
    source = "from ..evaluation import session\nfrom . import overlap\nimport sam4med.training.module\nimport numpy\n"
    assert imported_packages(source, ("metrics", "distance")) == {"evaluation", "metrics", "training"}
    assert imported_packages("from .. import files\n", ("data", "format")) == {"files"}
