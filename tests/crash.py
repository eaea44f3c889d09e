"""A callback that kills its own process with SIGKILL at a given step (for resume tests)."""

import os
import signal

from pytorch_lightning.callbacks import Callback


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillInEvaluation(Callback):
    """SIGKILL its own process when the evaluation of ``phase`` starts scoring its ``after``-th (image, strategy)
    (so the images before it are scored and logged, and the one in hand is not)."""

    def __init__(self, phase: str, after: int) -> None:
        self.phase = phase
        self.after = after

    def setup(self, trainer, pl_module, stage) -> None:
        from sam4med.evaluation import runner

        real, calls = runner._score_image, {"n": 0}

        def score_or_die(*args, **kwargs):
            if kwargs.get("phase") == self.phase:
                if calls["n"] == self.after:
                    os.kill(os.getpid(), signal.SIGKILL)
                calls["n"] += 1
            return real(*args, **kwargs)

        runner._score_image = score_or_die
