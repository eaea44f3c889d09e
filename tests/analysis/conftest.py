"""An :class:`AnalysisInput` on the tiny random model and synthetic shapes, scored in seconds."""

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra.utils import instantiate

from sam4med.analysis.suite import AnalysisInput
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.results.frame import to_frame
from sam4med.run_files import RunFolder
from tests.helpers import compose_config


@pytest.fixture
def analysis_input(tmp_path: Path) -> Callable[..., AnalysisInput]:
    """``make(strategies, overrides=())``: score ``strategies`` zero-shot with ``experiment=quick`` (tiny model,
    8 synthetic images) and return the suites' input (one phase, the model's own decoder)."""

    def make(strategies: Sequence[str], overrides: Sequence[str] = ()) -> AnalysisInput:
        listed = ",".join(strategies)
        cfg = compose_config(
            "evaluate", tmp_path, ["experiment=quick", f"evaluation.strategies=[{listed}]", *overrides]
        )
        settings = instantiate(cfg.evaluation)
        datamodule = instantiate(cfg.dataset)
        datamodule.prepare_data()
        dataset = datamodule.dataset(settings.split)
        model = instantiate(cfg.model)
        results = RunFolder(cfg.paths.output_dir).results
        results.path.mkdir(parents=True, exist_ok=True)
        session = EvaluationSession(results, settings, cache=instantiate(cfg.embeddings))
        rows = session.score(model, dataset, phase=Phase.ZERO_SHOT, progress=False)
        session.prompts.save()
        return AnalysisInput(
            model, dataset, session, {Phase.ZERO_SHOT: None}, to_frame(rows), instantiate(cfg.statistics)
        )

    return make
