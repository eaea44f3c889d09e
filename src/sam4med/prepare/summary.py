"""Dataset summary: counts per object, modality, target and image size (the COSMOS paper's Fig. 3).

``python -m sam4med.prepare.summary <folder> [--plot PNG]`` prints the tables and saves a bar plot
(default ``<folder>/summary.png``; ``--plot ''`` for none). Objects are counted from the manifest's
``objects`` column when every row has it (prepared folders), otherwise from the label maps.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam4med.command import user_errors_in_one_line
from sam4med.dataset_format import (
    ImageRecord,
    ObjectEntry,
    check_objects,
    image_path,
    label_path,
    load_labels,
    png_size,
    read_info,
    read_manifest,
)
from sam4med.errors import DataError
from sam4med.files import save_figure

# upper bounds of the image-area bins of the paper's Fig. 3 (d)
AREA_BINS = ((128 * 128, "<=128x128"), (256 * 256, "<=256x256"), (512 * 512, "<=512x512"), (1024 * 1024, "<=1024x1024"))


@dataclass(frozen=True)
class Summary:
    """Counts of one dataset folder.

    ``objects`` maps an object name to (instances, images holding it); ``modalities`` a modality to
    (images, instances); ``targets`` an ``<object>-<modality>`` target to instances; ``sizes`` an image
    size ``HxW`` to images; ``areas`` an image-area bin to images.
    """

    name: str
    images: int
    sources: int
    objects: dict[str, tuple[int, int]]
    modalities: dict[str, tuple[int, int]]
    targets: dict[str, int]
    sizes: dict[str, int]
    areas: dict[str, int]

    def as_text(self) -> str:
        """Plain-text tables."""
        lines = [f"dataset {self.name}: {self.images} images from {self.sources} sources"]
        lines += _table("object", ("instances", "images"), self.objects)
        lines += _table("modality", ("images", "instances"), self.modalities)
        lines += _table("target", ("instances",), {k: (v,) for k, v in self.targets.items()})
        lines += _table("image size (HxW)", ("images",), {k: (v,) for k, v in self.sizes.items()})
        lines += _table("image area", ("images",), {k: (v,) for k, v in self.areas.items()})
        return "\n".join(lines)


def _table(title: str, columns: Sequence[str], rows: dict[str, tuple[int, ...]]) -> list[str]:
    width = max([len(title), *(len(k) for k in rows)])
    out = ["", f"{title:<{width}}  " + "  ".join(f"{c:>9}" for c in columns)]
    out += [f"{k:<{width}}  " + "  ".join(f"{v:>9}" for v in values) for k, values in rows.items()]
    return out


def area_bin(height: int, width: int) -> str:
    """The Fig. 3 (d) bin of an image: the smallest ``<=NxN`` whose area is not exceeded, else ``>1024x1024``."""
    for bound, label in AREA_BINS:
        if height * width <= bound:
            return label
    return ">1024x1024"


def _size(root: Path, record: ImageRecord) -> tuple[int, int]:
    return record.size or png_size(image_path(root, record.image_id))


def _objects(root: Path, record: ImageRecord, info) -> tuple[ObjectEntry, ...]:
    entries = []
    for label_map in info.label_maps:
        path = label_path(root, label_map.name, record.image_id)
        if not path.is_file():
            raise DataError(f"{path}: label map '{label_map.name}' of image '{record.image_id}' is missing")
        for value in np.unique(load_labels(path)):
            if value and int(value) not in label_map.objects:
                raise DataError(f"{path}: label value {value} is not named in dataset.yaml")
            if value:
                entries.append(ObjectEntry(label_map.name, int(value), label_map.objects[int(value)]))
    return tuple(entries)


def summarize_folder(root: str | Path) -> Summary:
    """Count the images and objects of a dataset folder."""
    root = Path(root)
    info = read_info(root)
    records = read_manifest(root)
    check_objects(records, info, root)
    from_manifest = all(r.objects for r in records)
    instances, holders = Counter(), Counter()
    modality_images, modality_instances = Counter(), Counter()
    targets, sizes, areas = Counter(), Counter(), Counter()
    for record in records:
        entries = record.objects if from_manifest else _objects(root, record, info)
        names = [e.name for e in entries]
        instances.update(names)
        holders.update(set(names))
        modality_images[record.modality] += 1
        modality_instances[record.modality] += len(names)
        targets.update(f"{n}-{record.modality}" for n in names)
        h, w = _size(root, record)
        sizes[f"{h}x{w}"] += 1
        areas[area_bin(h, w)] += 1
    order = [label for _, label in AREA_BINS] + [">1024x1024"]
    return Summary(
        name=info.name,
        images=len(records),
        sources=len({r.source for r in records}),
        objects={n: (instances[n], holders[n]) for n in sorted(instances)},
        modalities={m: (modality_images[m], modality_instances[m]) for m in sorted(modality_images)},
        targets=dict(sorted(targets.items())),
        sizes=dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))),
        areas={a: areas[a] for a in order if areas[a]},
    )


def plot_summary(summary: Summary, path: Path) -> Path:
    """Bar plots of instances per object, images per modality and images per area bin, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("instances per object", {k: v[0] for k, v in summary.objects.items()}),
        ("images per modality", {k: v[0] for k, v in summary.modalities.items()}),
        ("images per image area", summary.areas),
    ]
    height = max(3.0, 0.25 * max(len(p[1]) for p in panels) + 1.5)
    fig, axes = plt.subplots(1, 3, figsize=(15, height), constrained_layout=True)
    for ax, (title, counts) in zip(axes, panels, strict=True):
        ax.barh(list(counts)[::-1], list(counts.values())[::-1], color="#4c72b0")
        ax.set_title(title)
        ax.set_xlabel("count")
    fig.suptitle(f"{summary.name}: {summary.images} images from {summary.sources} sources")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_figure(Path(path), fig, dpi=100)
    plt.close(fig)
    return Path(path)


@user_errors_in_one_line
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; a bad folder prints one line and exits with status 2."""
    parser = argparse.ArgumentParser(prog="python -m sam4med.prepare.summary", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a dataset folder (dataset.yaml, manifest.csv, images/, labels/)")
    parser.add_argument("--plot", default=None, help="bar plot PNG (default <folder>/summary.png; '' for none)")
    args = parser.parse_args(argv)
    summary = summarize_folder(args.folder)
    print(summary.as_text())
    plot = args.folder / "summary.png" if args.plot is None else Path(args.plot) if args.plot else None
    if plot is not None:
        print(f"\nplot: {plot_summary(summary, plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
