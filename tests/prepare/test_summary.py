"""Dataset summary: counts per object, modality, target and image size; CLI and plot."""

import csv
import shutil

import pytest

from sam4med.prepare.summary import area_bin, main, summarize_folder
from sam4med.prepare.synthetic import SyntheticShapes


def test_counts_of_a_synthetic_dataset(tmp_path):
    root = SyntheticShapes(n_images=6, size=(48, 64), modalities=("MRI", "CT", "RGB"))(tmp_path / "syn")
    summary = summarize_folder(root)
    assert summary.images == 6 and summary.sources == 1
    assert summary.objects["Disc"] == (6, 6) and summary.objects["BorderDisc"] == (2, 2)
    # images 0..5 take MRI, CT, RGB in turn; the border disc is in images 0 and 3 (both MRI)
    assert summary.modalities == {"CT": (2, 8), "MRI": (2, 10), "RGB": (2, 8)}
    assert summary.targets["BorderDisc-MRI"] == 2 and "BorderDisc-CT" not in summary.targets
    assert summary.sizes == {"48x64": 6} and summary.areas == {"<=128x128": 6}
    text = summary.as_text()
    assert "Ring-CT" in text and "48x64" in text


def test_label_maps_are_read_when_the_manifest_has_no_objects(synthetic_root, tmp_path):
    folder = shutil.copytree(synthetic_root, tmp_path / "user")
    with (folder / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = ["image_id", "source", "slice_index", "modality", "spacing_x", "spacing_y"]
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert summarize_folder(folder) == summarize_folder(synthetic_root)


def test_command_prints_and_plots(synthetic_root, tmp_path, capsys):
    plot = tmp_path / "fig.png"
    assert main([str(synthetic_root), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "dataset synthetic: 8 images from 1 sources" in out and "Disc-Synthetic" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nothing")])
    assert exit_info.value.code == 2 and "dataset.yaml: missing" in capsys.readouterr().err


def test_area_bins():
    assert area_bin(128, 128) == "<=128x128" and area_bin(129, 128) == "<=256x256"
    assert area_bin(512, 512) == "<=512x512" and area_bin(2000, 2000) == ">1024x1024"
