"""The scipy floor in pyproject.toml covers every scipy call of the statistics (issue 22, part 6).

``sam4med.results.statistics.SCIPY_API`` lists each ``stats.<function>`` the module calls, the keywords it
passes and the first scipy release that has them all. These tests fail when the code calls a function or
passes a keyword the table does not list, when the installed scipy lacks one, or when the floor in
``pyproject.toml`` is older than a listed release.
"""

import ast
import inspect
import re
import tomllib

import scipy
from packaging.version import Version
from scipy import stats

from sam4med.results import statistics
from tests.conftest import REPO


def scipy_floor() -> Version:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in dependencies if re.match(r"scipy\b", d)]
    match = re.search(r">=\s*([\d.]+)", spec)
    assert match, f"pyproject.toml: the scipy requirement {spec!r} has no floor (>=)"
    return Version(match.group(1))


def scipy_calls() -> dict[str, set[str]]:
    """Every ``stats.<name>(...)`` call in the statistics module, with the keywords passed."""
    tree = ast.parse(inspect.getsource(statistics))
    calls: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "stats":
                calls.setdefault(node.func.attr, set()).update(k.arg for k in node.keywords if k.arg)
    return calls


def test_every_scipy_call_of_the_code_is_in_the_table():
    table = {api.name: set(api.keywords) for api in statistics.SCIPY_API}
    calls = scipy_calls()
    assert {"bootstrap", "permutation_test", "wilcoxon", "binomtest"} <= set(calls)
    for name, keywords in calls.items():
        assert name in table, f"stats.{name} is called but not in SCIPY_API: add it with the release that has it"
        assert keywords <= table[name], f"stats.{name}: keywords {sorted(keywords - table[name])} not in SCIPY_API"


def test_the_installed_scipy_has_every_listed_keyword():
    for api in statistics.SCIPY_API:
        parameters = inspect.signature(getattr(stats, api.name)).parameters
        missing = [k for k in api.keywords if k not in parameters]
        assert not missing, f"the installed scipy {scipy.__version__}: stats.{api.name} lacks {missing}"


def test_the_pyproject_floor_is_not_older_than_any_listed_release():
    floor = scipy_floor()
    assert floor >= Version("1.15.0")  # bootstrap(rng=) and permutation_test(rng=) are new in 1.15.0
    for api in statistics.SCIPY_API:
        assert floor >= Version(api.since), f"stats.{api.name} needs scipy>={api.since}, pyproject allows {floor}"
    assert Version(scipy.__version__) >= floor
