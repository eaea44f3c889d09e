"""Writing a dataset folder so that preparation is atomic and resumable.

* Every file is written to ``<name>.tmp`` and renamed, so a half-written file never has its final name
  (stale ``.tmp`` files of an interrupted run are removed when the next run starts).
* Within an input (a volume or a 2D image) the label maps of an image are written before the image: an
  existing image means the whole image is done and is not written again.
* When an input is finished, its manifest rows and skips go to ``.parts/<key>.json``; a resumed run
  reads that instead of the input.
* ``.prepare.json`` holds the settings; an unfinished preparation with other settings (a failed run
  whose config was then corrected) is recognised by it and replaced, so a resumed run never mixes two
  preparations. A run that prepares no image at all forgets its finished inputs, so the retry after
  the inputs were fixed reads them again.
* At the end come ``manifest.csv``, ``dataset.yaml``, ``skipped.csv`` and, last, ``.complete``; the
  bookkeeping files are removed, so an interrupted-and-resumed run leaves the same files, byte for byte,
  as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sam4med.dataset_format import (
    DatasetInfo,
    ImageRecord,
    LabelMap,
    image_path,
    label_path,
    parse_objects,
    write_info,
    write_manifest,
)
from sam4med.errors import DataError
from sam4med.files import save_png, write_csv, write_text

log = logging.getLogger("sam4med")
SKIP_COLUMNS = ("file", "image_id", "label_map", "object", "reason")


@dataclass(frozen=True)
class Skip:
    """Something left out of the dataset: an input file, one image of it, or one object of one image."""

    file: str
    reason: str
    image_id: str = ""
    label_map: str = ""
    object: str = ""

    def to_row(self) -> dict[str, str]:
        """CSV row of ``skipped.csv``."""
        return {c: getattr(self, c) for c in SKIP_COLUMNS}


@dataclass(frozen=True)
class Part:
    """What one input contributed: its manifest rows and what was left out."""

    records: tuple[ImageRecord, ...] = ()
    skips: tuple[Skip, ...] = ()

    def to_json(self) -> str:
        """Serialised form kept in ``.parts/``."""
        return json.dumps({"records": [r.to_row() for r in self.records], "skips": [s.to_row() for s in self.skips]})

    @classmethod
    def from_json(cls, text: str, where: str) -> Part:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(text)
        records = []
        for row in raw["records"]:
            spacing = (float(row["spacing_x"]), float(row["spacing_y"])) if row["spacing_x"] else None
            size = (int(row["height"]), int(row["width"])) if row["height"] else None
            objects = parse_objects(row["objects"], where)
            records.append(
                ImageRecord(row["image_id"], row["source"], int(row["slice_index"]), row["modality"], spacing,
                            size, row["source_file"], objects)
            )  # fmt: skip
        return cls(tuple(records), tuple(Skip(**s) for s in raw["skips"]))


@dataclass(frozen=True)
class Input:
    """One input of a preparation: a unique, file-name-safe ``key`` and the file named in skips."""

    key: str
    file: str


class DatasetWriter:
    """Files of one dataset folder under preparation.

    Args:
        root: the dataset folder (created; must be empty, or an interrupted preparation with the same
            settings).
        settings: plain-data settings of the preparation (compared on resume, recorded in dataset.yaml).
    """

    def __init__(self, root: str | Path, settings: Mapping) -> None:
        self.root = Path(root)
        self.settings = json.loads(json.dumps(dict(settings)))  # plain data, as read back
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / ".prepare.json"
        if marker.is_file() and _read_marker(marker) != self.settings:
            log.warning("%s: replacing an unfinished preparation made with other settings", self.root)
            _remove_partial(self.root)
        if not marker.is_file():
            if any(self.root.iterdir()):
                raise DataError(f"{self.root}: not empty and not a dataset under preparation; choose an empty folder")
            write_text(marker, json.dumps(self.settings, indent=1, sort_keys=True) + "\n")
        for stale in self.root.rglob("*.tmp"):
            stale.unlink()

    def _part_path(self, key: str) -> Path:
        return self.root / ".parts" / f"{key}.json"

    def part(self, key: str) -> Part | None:
        """The saved part of input ``key``, or None when it is not finished."""
        path = self._part_path(key)
        if not path.is_file():
            return None
        try:
            return Part.from_json(path.read_text(), str(path))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, DataError):
            return None  # written atomically, so only a hand-edited part gets here: do that input again

    def save_part(self, key: str, part: Part) -> None:
        """Mark input ``key`` as finished."""
        write_text(self._part_path(key), part.to_json())

    def write_image(self, image_id: str, image: np.ndarray, labels: Mapping[str, np.ndarray]) -> None:
        """Write the label maps, then the image (uint8 arrays); nothing when the image exists already."""
        if image_path(self.root, image_id).is_file():
            return
        for name, array in labels.items():
            save_png(label_path(self.root, name, image_id), array)
        save_png(image_path(self.root, image_id), image)

    def finish(self, info: DatasetInfo, parts: Sequence[Part]) -> None:
        """Write manifest, dataset.yaml and skipped.csv, drop the bookkeeping, mark the folder complete."""
        records = [r for p in parts for r in p.records]
        skips = [s for p in parts for s in p.skips]
        write_csv(self.root / "skipped.csv", SKIP_COLUMNS, (s.to_row() for s in skips))
        if not records:
            shutil.rmtree(self.root / ".parts", ignore_errors=True)  # the retry after a fix reads every input
            first = f" (first: {skips[0].file}: {skips[0].reason})" if skips else ""
            raise DataError(f"{self.root}: no image was prepared; {len(skips)} skips in skipped.csv{first}")
        ids = [r.image_id for r in records]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataError(f"{self.root}: two inputs give the same image ids {twice}; rename the inputs")
        write_manifest(self.root, records)
        write_info(self.root, info)
        shutil.rmtree(self.root / ".parts", ignore_errors=True)
        (self.root / ".prepare.json").unlink(missing_ok=True)
        write_text(self.root / ".complete", f"{len(records)} images, {len(skips)} skips\n")


# What a preparation writes; an unfinished preparation (marked by .prepare.json) holds nothing else.
PARTIAL_OUTPUT = (
    "images", "labels", "volumes", ".parts", "manifest.csv", "dataset.yaml", "skipped.csv", ".prepare.json",
)  # fmt: skip


def _read_marker(marker: Path) -> dict | None:
    """The settings recorded in ``.prepare.json``, or None when it cannot be read (a torn hand edit)."""
    try:
        return json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _remove_partial(root: Path) -> None:
    """Remove the output of an unfinished preparation in ``root`` (and only that)."""
    for name in PARTIAL_OUTPUT:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def is_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a finished dataset folder."""
    return (Path(root) / ".complete").is_file()


def run_inputs(
    writer: DatasetWriter,
    inputs: Sequence[Input],
    process: Callable[[Input, DatasetWriter], Part],
    *,
    desc: str,
    unit: str = "input",
) -> list[Part]:
    """Process every unfinished input (a DataError skips that input, naming it), with a progress bar."""
    keys = [i.key for i in inputs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise DataError(f"inputs share the names {twice}; image ids would collide")
    parts = []
    for item in tqdm(inputs, desc=desc, unit=unit):
        part = writer.part(item.key)
        if part is None:
            try:
                part = process(item, writer)
            except DataError as exc:
                reason = str(exc).removeprefix(f"{item.file}: ")
                part = Part(skips=(Skip(item.file, reason),))
            writer.save_part(item.key, part)
        parts.append(part)
    return parts


def log_counts(root: Path, parts: Sequence[Part], start: float) -> None:
    """Log what was prepared, how long it took, and each input skipped."""
    skips = [s for p in parts for s in p.skips]
    for skip in skips:
        if not skip.image_id:
            log.warning("skipped %s: %s", skip.file, skip.reason)
    images = sum(len(p.records) for p in parts)
    log.info(
        "prepared %d images from %d inputs into %s in %.1f s (%d skips, see skipped.csv)",
        images, len(parts), root, time.perf_counter() - start, len(skips),
    )  # fmt: skip


def label_maps_from(
    naming: Sequence[tuple[str, dict[int, str] | str]], records: Sequence[ImageRecord]
) -> tuple[LabelMap, ...]:
    """Label maps for dataset.yaml from (map name, value -> object name | instance object name) pairs.

    Named maps are taken as given; an instance map becomes ``{1..most instances in one image: name}``.
    """
    maps = []
    for name, names in naming:
        if isinstance(names, str):
            count = max((e.value for r in records for e in r.objects if e.label_map == name), default=0)
            maps.append(LabelMap(name, {v: names for v in range(1, count + 1)}))
        else:
            maps.append(LabelMap(name, dict(names)))
    return tuple(maps)
