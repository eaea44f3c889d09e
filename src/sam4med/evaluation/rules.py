"""The rule versions a scored row is made under, stamped on every evaluation-log line and zero-shot store file.

A row depends on the prompt rules (:data:`~sam4med.prompts.version.PROMPT_RULES`) and on the metric and
row rules (:data:`~sam4med.metrics.version.METRIC_RULES`). A logged or stored row of other versions (or
of none: written before versions were recorded) is never reused: it is dropped and scored again, with a
log line saying how many and why, so the zero-shot and fine-tuned phases of a comparison are always
scored under one set of rules.
"""

from __future__ import annotations

from collections.abc import Mapping

from sam4med.metrics.version import METRIC_RULES
from sam4med.prompts.version import PROMPT_RULES

RULES: dict[str, int] = {"prompt_rules": PROMPT_RULES, "metric_rules": METRIC_RULES}


def rules_of(data: Mapping) -> dict[str, object]:
    """The rule versions ``data`` (a log line, a store file) records, None for each one it lacks."""
    return {name: data.get(name) for name in RULES}


def current(data: Mapping) -> bool:
    """Whether ``data`` records exactly this sam4med's rule versions."""
    return rules_of(data) == RULES


def describe(found: Mapping[str, object]) -> str:
    """``prompt rules 1, metric rules 1``: the versions ``found`` records (``none`` for an unrecorded one)."""
    return ", ".join(f"{name.replace('_', ' ')} {'none' if found.get(name) is None else found[name]}" for name in RULES)
