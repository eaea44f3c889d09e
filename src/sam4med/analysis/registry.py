"""The analysis suites by name: ``conf/analysis/<name>.yaml`` builds each, and the before/after callback of
``train.py`` (``callbacks.before_after.analyses=[robustness]``) builds the ones it names from here, with
their defaults (which equal the YAML: ``tests/analysis/test_registry.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sam4med.analysis.factors import FactorsSuite
from sam4med.analysis.grid import GridSuite
from sam4med.analysis.robustness import RobustnessSuite
from sam4med.analysis.suite import Analysis
from sam4med.analysis.timing import TimingSuite
from sam4med.errors import ConfigError

SUITES: dict[str, type] = {suite.name: suite for suite in (RobustnessSuite, GridSuite, TimingSuite, FactorsSuite)}


def resolve(names: Iterable[str], configured: Mapping[str, Analysis] | None = None) -> list[Analysis]:
    """The suites to run: every one of ``configured`` (by name, with their settings), then each of ``names``
    not among them with its defaults. An unknown name is a :class:`ConfigError` listing the known ones.
    """
    suites = dict(configured or {})
    for name in names:
        if name not in SUITES:
            raise ConfigError(f"unknown analysis '{name}': choose from {', '.join(SUITES)}")
        if name not in suites:
            suites[name] = SUITES[name]()
    return list(suites.values())
