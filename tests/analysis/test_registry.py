"""The suites by name: each conf/analysis/<name>.yaml builds its suite with the registry's defaults, the
callback resolves names, and an unknown name is refused."""

import dataclasses

import pytest
import yaml
from hydra.utils import instantiate

from sam4med.analysis.registry import SUITES, resolve
from sam4med.analysis.robustness import RobustnessSuite
from sam4med.errors import ConfigError
from tests.helpers import CONF


def test_every_config_is_a_registered_suite_with_its_defaults():
    names = sorted(p.stem for p in (CONF / "analysis").glob("*.yaml"))
    assert names == sorted(SUITES)
    for name in names:
        node = yaml.safe_load((CONF / "analysis" / f"{name}.yaml").read_text())
        built = instantiate(node)
        assert type(built) is SUITES[name]
        assert built == SUITES[name](), name  # the YAML holds the defaults the callback uses


def test_resolve_names_and_configured_suites():
    configured = {"robustness": RobustnessSuite(repeats=1)}
    suites = resolve(["factors", "robustness"], configured)
    assert [s.name for s in suites] == ["robustness", "factors"]
    assert suites[0].repeats == 1  # the configured settings win over the defaults
    assert dataclasses.asdict(suites[1]) == dataclasses.asdict(SUITES["factors"]())
    with pytest.raises(ConfigError, match="unknown analysis 'noise'.*robustness, grid, timing, factors"):
        resolve(["noise"])


@pytest.mark.parametrize("suite", ["robustness", "factors"])
def test_a_strategy_the_run_does_not_score_is_refused_before_scoring(tmp_path, suite):
    from sam4med.jobs.evaluate import evaluate_model
    from tests.helpers import compose_config

    cfg = compose_config(
        "evaluate",
        tmp_path,
        ["experiment=quick", "evaluation.strategies=[S2]", f"analysis={suite}", f"analysis.{suite}.strategies=[S5]"],
    )
    with pytest.raises(ConfigError, match=rf"analysis\.{suite}\.strategies: S5 not scored by this run"):
        evaluate_model(cfg)
    assert not (tmp_path / "run" / "results" / "evaluation_log.jsonl").exists()  # refused before any scoring
