"""Prompts saved next to the predictions, so every model of a comparison sees the same prompts.

One JSON file maps ``"<strategy>|<object key>"`` to a :class:`Prompt` plus ``mask_sha256``, a hash of
the object mask it was drawn from. A store reads the prompts of one file (``read_from``) and writes
what it holds to another, or the same (``write_to``). A stored prompt is reused only for the same mask:
one whose mask hash differs (a dataset prepared differently, a file from another dataset) or that lies
outside the image is refused with a :class:`DataError` naming the object. A missing prompt is
generated from the ground truth and added, with the seed recorded in the file (so a file holds
prompts of one seed, whatever seed the later run was given); with ``only_stored`` (a prompts file the
user named) a missing prompt is an error instead. With ``same_seed`` (a run's own saved prompts, read
back when it resumes) a file of another seed or sampling than the run asks for is refused with a
:class:`ConfigError`, so a run never reports one seed while scoring the prompts of another. The file
records the version of the prompt rules it was drawn under (``prompt_rules``,
:data:`~sam4med.prompts.version.PROMPT_RULES`); a file of another version, or of none (written before
versions were recorded), is refused with a :class:`DataError`, never mixed with prompts drawn now. The
file is rewritten atomically, so an interrupted run leaves a readable file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam4med.errors import ConfigError, DataError
from sam4med.files import write_text
from sam4med.prompts.generate import check_sampling, make_prompt
from sam4med.prompts.prompt import Prompt
from sam4med.prompts.version import PROMPT_RULES

log = logging.getLogger("sam4med")


def mask_hash(mask: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of an H x W boolean mask's shape and pixels."""
    mask = np.asarray(mask, dtype=bool)
    digest = hashlib.sha256(str(mask.shape).encode())
    digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()[:16]


def outside(prompt: Prompt, shape: tuple[int, int]) -> str | None:
    """What of ``prompt`` lies outside an image of ``shape`` (H, W), or None if all of it is inside."""
    height, width = shape
    for x, y in prompt.point_coords:
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            return f"point ({x:g}, {y:g})"
    for x0, y0, x1, y1 in prompt.all_boxes:
        if not (0 <= x0 <= x1 <= width - 1 and 0 <= y0 <= y1 <= height - 1):
            return f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g})"
    return None


def check_rules(path: Path, found: object, *, named: bool = False, own: bool = False) -> None:
    """Refuse a prompts file whose ``prompt_rules`` is not this sam4med's :data:`PROMPT_RULES` (None: unrecorded).

    ``named``: the user named the file (``evaluation.prompts.file``); ``own``: a run's own file read back
    when it resumes. The message says what to do in each case.
    """
    if found == PROMPT_RULES:
        return
    drawn = (
        f"were drawn under prompt rules {found}"
        if found is not None
        else "record no prompt-rule version (written before sam4med recorded one)"
    )
    if own:
        advice = (
            "this run folder was made by another sam4med version; start a new run folder "
            "(its rows and prompts would mix two prompt rules)"
        )
    elif named:
        advice = (
            "leave evaluation.prompts.file out to draw new prompts, or score it with the sam4med version that wrote it"
        )
    else:
        advice = "use a new prompts file"
    raise DataError(f"{path}: the prompts {drawn}, this sam4med draws under prompt rules {PROMPT_RULES}; {advice}")


@dataclass(frozen=True)
class StoredPrompt:
    """A prompt and the hash of the object mask it was drawn from (see :func:`mask_hash`)."""

    prompt: Prompt
    mask_sha256: str

    def to_dict(self) -> dict:
        """JSON-ready form: the prompt's fields plus ``mask_sha256``."""
        return {**self.prompt.to_dict(), "mask_sha256": self.mask_sha256}

    @classmethod
    def from_dict(cls, data: dict) -> StoredPrompt:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        digest = fields.pop("mask_sha256")
        if not isinstance(digest, str):
            raise TypeError(f"mask_sha256 must be text, got {digest!r}")
        return cls(Prompt.from_dict(fields), digest)


class PromptStore:
    """Get-or-make prompts.

    Args:
        seed: seed of the prompts made here (the file's own seed wins when ``read_from`` has one).
        sampling: point-sampling rule of the prompts made here, ``random`` or ``strided`` (the file's own
            rule wins, like its seed).
        read_from: a prompts file whose prompts are reused, if it exists; None starts empty.
        write_to: where :meth:`save` writes every prompt held; None keeps them in memory only. When it
            differs from ``read_from``, the first :meth:`save` writes it even if nothing was added.
        only_stored: ``read_from`` must exist and hold every prompt asked for (the user named it to
            score on exactly those prompts); otherwise missing prompts are drawn.
        same_seed: ``read_from``, where it exists, must hold prompts of ``seed`` and ``sampling`` (a run's
            own saved prompts): another seed or sampling is a :class:`ConfigError` instead of the file's
            winning.
    """

    def __init__(
        self,
        *,
        seed: int,
        sampling: str = "random",
        read_from: str | Path | None = None,
        write_to: str | Path | None = None,
        only_stored: bool = False,
        same_seed: bool = False,
    ) -> None:
        self.read_from = Path(read_from) if read_from else None
        self.write_to = Path(write_to) if write_to else None
        self.seed = seed
        self.sampling = check_sampling(sampling)
        self.only_stored = only_stored
        self._prompts: dict[str, StoredPrompt] = {}
        self._dirty = self.write_to is not None and self.write_to != self.read_from
        if only_stored and (self.read_from is None or not self.read_from.is_file()):
            raise DataError(f"{self.read_from}: prompts file does not exist")
        if self.read_from is not None and self.read_from.is_file():
            try:
                raw = json.loads(self.read_from.read_text())
                self._prompts = {k: StoredPrompt.from_dict(v) for k, v in raw["prompts"].items()}
                stored_seed = int(raw.get("seed", seed))
                stored_sampling = check_sampling(str(raw.get("sampling", "random")))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(
                    f"{self.read_from}: not a prompt file written by this sam4med (with mask hashes) ({exc!r})"
                ) from exc
            check_rules(self.read_from, raw.get("prompt_rules"), named=only_stored, own=same_seed)
            if same_seed and (stored_seed, stored_sampling) != (seed, self.sampling):
                raise ConfigError(
                    f"{self.read_from}: this run folder's prompts were drawn with seed {stored_seed} "
                    f"({stored_sampling} sampling), but the run asks for seed {seed} ({self.sampling} sampling); "
                    f"use a new run folder for the new prompts, or resume this one with evaluation.prompts.seed="
                    f"{stored_seed} evaluation.prompts.sampling={stored_sampling}"
                )
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

    def get(self, mask: np.ndarray, strategy: str, object_key: str, make: Callable[[], Prompt] | None = None) -> Prompt:
        """The stored prompt for (strategy, object) drawn from this ``mask`` (H x W bool), made the first time
        (by ``make`` where given: a strategy whose rule lives elsewhere, e.g. the start prompt of ``I``).
        """
        key = f"{strategy}|{object_key}"
        digest = mask_hash(mask)
        stored = self._prompts.get(key)
        if stored is None:
            if self.only_stored:
                raise DataError(
                    f"{self.read_from}: holds no {strategy} prompt for object {object_key}; it was made for another "
                    "dataset or other strategies (leave prompts.file out to draw new prompts)"
                )
            try:
                made = (
                    make()
                    if make
                    else make_prompt(mask, strategy, seed=self.seed, object_key=object_key, sampling=self.sampling)
                )
            except ValueError as exc:  # e.g. an object covering the whole image has no background point
                detail = str(exc).removeprefix(f"object {object_key}: ")
                raise DataError(f"object {object_key}: no {strategy} prompt can be drawn ({detail})") from exc
            stored = StoredPrompt(made, digest)
            self._prompts[key] = stored
            self._dirty = True
            return stored.prompt
        if stored.mask_sha256 != digest:
            raise DataError(
                f"{self.read_from}: the stored {strategy} prompt of object {object_key} was drawn from another mask "
                "(the dataset was prepared differently, or the prompts belong to another dataset); "
                "use a new run folder or leave prompts.file out"
            )
        where = outside(stored.prompt, mask.shape)
        if where is not None:
            raise DataError(
                f"{self.read_from}: the stored {strategy} prompt of object {object_key} has {where} outside the "
                f"{mask.shape[1]}x{mask.shape[0]} image"
            )
        return stored.prompt

    def entries(self) -> dict[str, StoredPrompt]:
        """Every prompt held, by ``"<strategy>|<object key>"`` (a copy; e.g. to gather them over ranks)."""
        return dict(self._prompts)

    def add(self, entries: dict[str, StoredPrompt]) -> None:
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
            "prompt_rules": PROMPT_RULES,
            "seed": self.seed,
            "sampling": self.sampling,
            "prompts": {k: p.to_dict() for k, p in sorted(self._prompts.items())},
        }
        write_text(self.write_to, json.dumps(data, indent=0))
        self._dirty = False
