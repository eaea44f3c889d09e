"""Prompts saved next to the predictions, so every model of a comparison sees the same prompts.

One JSON file maps ``"<strategy>|<object key>"`` to a :class:`Prompt`. A stored prompt is always
reused; a missing one is generated from the ground truth and added, with the seed recorded in the
file (so a file holds prompts of one seed, whatever seed the later run was given). The file is
rewritten atomically, so an interrupted run leaves a readable file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from sam4med.data.format import write_text
from sam4med.errors import DataError
from sam4med.prompts.generate import make_prompt
from sam4med.prompts.prompt import Prompt

log = logging.getLogger("sam4med")


class PromptStore:
    """Get-or-make prompts, backed by a JSON file (or memory only when ``path`` is None)."""

    def __init__(self, path: str | Path | None, seed: int) -> None:
        self.path = Path(path) if path else None
        self.seed = seed
        self._prompts: dict[str, Prompt] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
                self._prompts = {k: Prompt.from_dict(v) for k, v in raw["prompts"].items()}
                stored_seed = int(raw.get("seed", seed))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{self.path}: not a prompt file written by sam4med ({exc!r})") from exc
            if stored_seed != seed:
                log.info(
                    "%s: prompts were drawn with seed %d; new ones use it too (not %d)", self.path, stored_seed, seed
                )
                self.seed = stored_seed

    def __len__(self) -> int:
        return len(self._prompts)

    def get(self, mask: np.ndarray, strategy: str, object_key: str) -> Prompt:
        """The stored prompt for (strategy, object), made from ``mask`` the first time."""
        key = f"{strategy}|{object_key}"
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = make_prompt(mask, strategy, seed=self.seed, object_key=object_key)
            self._prompts[key] = prompt
            self._dirty = True
        return prompt

    def mark_dirty(self) -> None:
        """Make the next :meth:`save` write the file even if nothing was added (after moving ``path``)."""
        self._dirty = True

    def save(self) -> None:
        """Write the file if anything was added."""
        if self.path is None or not self._dirty:
            return
        data = {"seed": self.seed, "prompts": {k: p.to_dict() for k, p in sorted(self._prompts.items())}}
        write_text(self.path, json.dumps(data, indent=0))
        self._dirty = False
