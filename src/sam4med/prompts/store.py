"""Prompts saved next to the predictions, so every model of a comparison sees the same prompts.

One JSON file maps ``"<strategy>|<object key>"`` to a :class:`Prompt`. A store reads the prompts of
one file (``read_from``) and writes what it holds to another, or the same (``write_to``). A stored
prompt is always reused; a missing one is generated from the ground truth and added, with the seed
recorded in the file (so a file holds prompts of one seed, whatever seed the later run was given). The
file is rewritten atomically, so an interrupted run leaves a readable file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from sam4med.errors import DataError
from sam4med.files import write_text
from sam4med.prompts.generate import check_sampling, make_prompt
from sam4med.prompts.prompt import Prompt

log = logging.getLogger("sam4med")


class PromptStore:
    """Get-or-make prompts.

    Args:
        seed: seed of the prompts made here (the file's own seed wins when ``read_from`` has one).
        sampling: point-sampling rule of the prompts made here, ``random`` or ``strided`` (the file's own
            rule wins, like its seed).
        read_from: a prompts file whose prompts are reused, if it exists; None starts empty.
        write_to: where :meth:`save` writes every prompt held; None keeps them in memory only. When it
            differs from ``read_from``, the first :meth:`save` writes it even if nothing was added.
    """

    def __init__(
        self,
        *,
        seed: int,
        sampling: str = "random",
        read_from: str | Path | None = None,
        write_to: str | Path | None = None,
    ) -> None:
        self.read_from = Path(read_from) if read_from else None
        self.write_to = Path(write_to) if write_to else None
        self.seed = seed
        self.sampling = check_sampling(sampling)
        self._prompts: dict[str, Prompt] = {}
        self._dirty = self.write_to is not None and self.write_to != self.read_from
        if self.read_from is not None and self.read_from.is_file():
            try:
                raw = json.loads(self.read_from.read_text())
                self._prompts = {k: Prompt.from_dict(v) for k, v in raw["prompts"].items()}
                stored_seed = int(raw.get("seed", seed))
                stored_sampling = check_sampling(str(raw.get("sampling", "random")))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{self.read_from}: not a prompt file written by sam4med ({exc!r})") from exc
            if stored_seed != seed:
                log.info(
                    "%s: prompts were drawn with seed %d; new ones use it too (not %d)",
                    self.read_from,
                    stored_seed,
                    seed,
                )
                self.seed = stored_seed
            if stored_sampling != sampling:
                log.info(
                    "%s: prompts were drawn with %s sampling; new ones use it too", self.read_from, stored_sampling
                )
                self.sampling = stored_sampling

    def __len__(self) -> int:
        return len(self._prompts)

    def get(self, mask: np.ndarray, strategy: str, object_key: str) -> Prompt:
        """The stored prompt for (strategy, object), made from ``mask`` the first time."""
        key = f"{strategy}|{object_key}"
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = make_prompt(mask, strategy, seed=self.seed, object_key=object_key, sampling=self.sampling)
            self._prompts[key] = prompt
            self._dirty = True
        return prompt

    def entries(self) -> dict[str, Prompt]:
        """Every prompt held, by ``"<strategy>|<object key>"`` (a copy; e.g. to gather them over ranks)."""
        return dict(self._prompts)

    def add(self, entries: dict[str, Prompt]) -> None:
        """Hold these prompts too (from :meth:`entries` of another store of the same seed)."""
        new = {k: p for k, p in entries.items() if k not in self._prompts}
        if new:
            self._prompts.update(new)
            self._dirty = True

    def save(self) -> None:
        """Write ``write_to`` if anything was added since the last save."""
        if self.write_to is None or not self._dirty:
            return
        data = {
            "seed": self.seed,
            "sampling": self.sampling,
            "prompts": {k: p.to_dict() for k, p in sorted(self._prompts.items())},
        }
        write_text(self.write_to, json.dumps(data, indent=0))
        self._dirty = False
