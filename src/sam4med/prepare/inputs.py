"""Finding the input files of a preparation and naming what comes from them."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from sam4med.errors import ConfigError

_EXTENSIONS = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def find_inputs(pattern: str) -> list[Path]:
    """Files matching a glob pattern (``**`` allowed), sorted; ConfigError when none match."""
    paths = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser()), recursive=True) if Path(p).is_file())
    if not paths:
        raise ConfigError(f"images: the pattern '{pattern}' matches no file")
    return paths


def file_stem(path: Path) -> str:
    """File name without its image extension (``case_01.nii.gz`` -> ``case_01``)."""
    name = Path(path).name
    for ext in _EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def safe_id(text: str) -> str:
    """A file-name-safe id: runs of characters other than letters, digits, ``. _ -`` become ``_``."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned or "image"


def source_of(stem: str, pattern: str | None) -> str:
    """The source (volume or patient) id of an input: group 1 (or the match) of ``pattern``, else the stem."""
    if not pattern:
        return stem
    try:
        match = re.search(pattern, stem)
    except re.error as exc:
        raise ConfigError(f"source_pattern '{pattern}' is not a regular expression ({exc})") from exc
    if match is None:
        return stem
    return match.group(1) if match.groups() else match.group(0)


def label_file(template: str, image: Path, source: str) -> Path:
    """Path of a label file from its template (``{stem}``, ``{name}``, ``{source}``) and an image path."""
    try:
        return Path(template.format(stem=file_stem(image), name=Path(image).name, source=source)).expanduser()
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"label path '{template}': use only {{stem}}, {{name}} and {{source}} ({exc})") from exc
