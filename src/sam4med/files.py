"""Atomic file writes, used by every layer: a half-written file never has its final name.

Each writer writes ``<name>.tmp`` next to the target and renames it over the target, so a reader (or a
run resumed after a kill) sees either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def _temporary(path: Path, unique: bool = False) -> Path:
    """The temporary name next to ``path``; ``unique`` adds the process id (for concurrent writers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f"{path.name}.{os.getpid()}.tmp" if unique else f"{path.name}.tmp")


def write_text(path: Path, text: str, *, unique_tmp: bool = False) -> None:
    """Write a text file atomically; ``unique_tmp`` names the temporary file by process (concurrent writers)."""
    tmp = _temporary(Path(path), unique_tmp)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a CSV file (header ``columns``, Unix line ends) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_tensors(path: Path, obj: Any, *, unique_tmp: bool = False) -> None:
    """``torch.save`` atomically; ``unique_tmp`` names the temporary file by process (concurrent writers)."""
    path = Path(path)
    tmp = _temporary(path, unique_tmp)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array (H x W or H x W x 3) as a PNG atomically."""
    tmp = _temporary(Path(path))
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
