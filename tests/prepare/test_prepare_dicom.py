"""Preparation of DICOM series: geometry and rescale, the NIfTI twin, refused series, skipped files."""

import csv
import dataclasses

import numpy as np
import pydicom
import pytest

from sam4med.dataset_format import read_info, read_manifest
from sam4med.errors import ConfigError, DataError
from sam4med.jobs.prepare import prepare_dataset
from sam4med.prepare.dicom import DicomPreparer, load_series, read_series, scan
from sam4med.prepare.volumes import VolumePreparer
from sam4med.volume_grid import read_grids
from tests.helpers import compose_config
from tests.prepare.dicom_series import (
    AXIAL,
    SAGITTAL,
    SeriesSpec,
    flipped_twin,
    phantom,
    ras_affine,
    save_nifti,
    write_series,
)

OBJECTS = {1: "Ball", 2: "Box"}
WINDOW = {"mode": "window", "window": [-300.0, 1200.0]}  # HU: rescale matters (min-max would hide it)


def hounsfield(stored, spec):
    return stored * spec.slope + spec.intercept


def settings(images, labels, **extra):
    return {
        "name": "ct",
        "images": str(images),
        "label_maps": [{"name": "organs", "path": str(labels / "{stem}.nii.gz"), "objects": OBJECTS}],
        "modality": "CT",
        "intensity": WINDOW,
        "min_label_sum": 10,
        **extra,
    }


def skipped(root):
    with (root / "skipped.csv").open() as handle:
        return list(csv.DictReader(handle))


def files_of(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.mark.parametrize("orientation", [AXIAL, SAGITTAL], ids=["axial", "sagittal"])
def test_series_reads_in_hounsfield_units_on_its_ras_grid(tmp_path, orientation):
    spec = SeriesSpec(orientation=orientation)
    stored, _ = phantom()
    write_series(tmp_path / "case0", stored, spec)
    found = scan(str(tmp_path))
    (series,) = found.series
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]  # in file-name order
    along = [np.dot(h.ImagePositionPatient, np.cross(orientation[:3], orientation[3:])) for h in headers]
    assert len(headers) == 8 and along != sorted(along)  # neither file names ...
    assert [h.InstanceNumber for h in headers] != sorted(h.InstanceNumber for h in headers)  # ... nor numbers
    image = read_series(series.files, series.file)
    np.testing.assert_array_equal(np.asarray(image.dataobj), hounsfield(stored.astype(np.float64), spec))
    np.testing.assert_allclose(image.affine, ras_affine(spec, stored.shape), atol=1e-9)
    assert (series.key, series.patient, series.file) == ("case0", "case0", str(tmp_path / "case0"))


@pytest.mark.parametrize("orientation", [AXIAL, SAGITTAL], ids=["axial", "sagittal"])
def test_series_prepares_to_the_same_slices_as_its_nifti_twin(tmp_path, orientation):
    spec = SeriesSpec(orientation=orientation)
    stored, labels = phantom()
    write_series(tmp_path / "dicom" / "case0", stored, spec)
    (tmp_path / "dicom" / "case0" / "notes.txt").write_text("not an image\n")
    affine = ras_affine(spec, stored.shape)
    # the twin stores the rows the other way round (as dcm2niix does): same voxels, same world positions
    twin, twin_affine = flipped_twin(hounsfield(stored.astype(np.int16), spec), affine)
    save_nifti(tmp_path / "nifti" / "case0.nii.gz", twin, twin_affine)
    save_nifti(tmp_path / "labels" / "case0.nii.gz", *flipped_twin(labels, affine))

    from_dicom = DicomPreparer(**settings(tmp_path / "dicom", tmp_path / "labels"))(tmp_path / "out_dicom")
    from_nifti = VolumePreparer(**settings(tmp_path / "nifti" / "*.nii.gz", tmp_path / "labels"))(tmp_path / "out_nii")

    dicom_rows, nifti_rows = read_manifest(from_dicom), read_manifest(from_nifti)
    assert len(dicom_rows) >= 4
    assert [dataclasses.replace(r, source_file="") for r in dicom_rows] == [
        dataclasses.replace(r, source_file="") for r in nifti_rows
    ]
    assert {r.source_file for r in dicom_rows} == {str(tmp_path / "dicom" / "case0")}
    dicom_files = files_of(from_dicom)
    assert len(dicom_files) == 2 * len(dicom_rows) and dicom_files == files_of(from_nifti)
    assert read_info(from_dicom).label_maps == read_info(from_nifti).label_maps
    assert read_info(from_dicom).preparation["kind"] == "dicom"
    grid = read_grids(from_dicom)["case0"]  # the series' own grid, for masks written back onto it
    np.testing.assert_allclose(grid.affine, affine, atol=1e-9)
    assert grid.stored_shape == stored.shape and grid.file == str(tmp_path / "dicom" / "case0")
    assert skipped(from_nifti) == []
    assert skipped(from_dicom) == [
        {
            "file": str(tmp_path / "dicom" / "case0" / "notes.txt"),
            "image_id": "",
            "label_map": "",
            "object": "",
            "reason": "not a DICOM file (no DICM prefix)",
        }
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SeriesSpec(drop=(3,)), "uneven slice spacing (a gap of 4 mm after the slice at -36 mm, 2 mm elsewhere)"),
        (SeriesSpec(tilt=(0.0, 0.3, 0.0)), "not stacked along their normal (tilted by 8.5 degrees"),
        (SeriesSpec(step=0.0), "two slices at the same position"),
        (SeriesSpec(drop=(1, 2, 3, 4, 5, 6, 7)), "a single slice, not a volume"),
    ],
    ids=["missing-slice", "gantry-tilt", "same-position", "single-slice"],
)
def test_series_with_a_bad_geometry_is_refused(tmp_path, spec, message):
    stored, _ = phantom()
    write_series(tmp_path / "case0", stored, spec)
    (series,) = scan(str(tmp_path)).series
    with pytest.raises(DataError) as info:
        read_series(series.files, series.file)
    assert str(info.value).startswith(f"{tmp_path / 'case0'}: ") and message in str(info.value)


def test_bad_series_and_off_grid_labels_are_recorded_skips(tmp_path):
    stored, labels = phantom()
    spec = SeriesSpec()
    for name, series_spec in (("good", spec), ("gap", SeriesSpec(drop=(3,))), ("shifted", spec)):
        write_series(tmp_path / "dicom" / "p1" / name, stored, series_spec, patient="p1")
        affine = ras_affine(spec, stored.shape)
        if name == "shifted":
            affine[0, 3] += 0.5  # the label volume is half a millimetre off the series' grid
        save_nifti(tmp_path / "labels" / f"p1_{name}.nii.gz", labels, affine)
    root = DicomPreparer(**settings(tmp_path / "dicom", tmp_path / "labels"))(tmp_path / "out")
    assert {(r.image_id[:7], r.source) for r in read_manifest(root)} == {("p1_good", "p1")}
    reasons = {row["file"]: row["reason"] for row in skipped(root)}
    assert reasons[str(tmp_path / "dicom" / "p1" / "gap")].startswith("uneven slice spacing")
    assert reasons[str(tmp_path / "dicom" / "p1" / "shifted")] == (
        f"{tmp_path / 'labels' / 'p1_shifted.nii.gz'}: not on the voxel grid of the series "
        f"{tmp_path / 'dicom' / 'p1' / 'shifted'} (affines differ by up to 0.5 mm after reorientation to RAS); "
        "resample the labels onto the series"
    )


def test_several_series_in_one_folder_are_told_apart(tmp_path):
    stored, labels = phantom()
    uids = {n: write_series(tmp_path / "mixed", stored + 10 * n, number=n) for n in (3, 7)}
    found = scan(str(tmp_path / "mixed"))
    assert [(s.key, s.file) for s in found.series] == [
        ("mixed_s3", str(tmp_path / "mixed" / uids[3])),
        ("mixed_s7", str(tmp_path / "mixed" / uids[7])),
    ]
    reloaded = load_series(found.series[1].file)
    np.testing.assert_array_equal(np.asarray(reloaded.dataobj), hounsfield(stored + 70.0, SeriesSpec()))


def test_folder_without_dicom_is_a_config_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("text\n")
    with pytest.raises(ConfigError, match=r"no DICOM image among the 1 files of .*a\.txt: not a DICOM file"):
        DicomPreparer(**settings(tmp_path / "in", tmp_path))(tmp_path / "out")
    with pytest.raises(ConfigError, match="no folder with files"):
        scan(str(tmp_path / "nothing_here"))


def test_prepare_command_with_the_example_config(tmp_path):
    stored, labels = phantom()
    write_series(tmp_path / "dicom" / "case0", stored)
    save_nifti(tmp_path / "labels" / "case0.nii.gz", labels, ras_affine(SeriesSpec(), stored.shape))
    overrides = [
        "dataset=example_dicom",
        f"dataset.root={tmp_path / 'out'}",
        f"dataset.preparer.images={tmp_path / 'dicom'}",
        f"dataset.preparer.label_maps=[{{name: organs, path: '{tmp_path / 'labels'}/{{stem}}.nii.gz', "
        "objects: {1: Ball, 2: Box}}]",
        "dataset.preparer.min_label_sum=10",
        "summary=false",
    ]
    root = prepare_dataset(compose_config("prepare", tmp_path, overrides))
    rows = read_manifest(root)
    assert rows and {r.image_id.rsplit("_", 1)[0] for r in rows} == {"case0"}
    assert rows[0].spacing == (0.8, 0.9) and rows[0].size == (28, 32) and rows[0].modality == "CT"


def test_slice_without_a_position_is_named(tmp_path):
    stored, _ = phantom()
    write_series(tmp_path / "case0", stored)
    (series,) = scan(str(tmp_path)).series
    broken = pydicom.dcmread(series.files[2])
    del broken.ImagePositionPatient
    broken.save_as(series.files[2])
    with pytest.raises(DataError) as info:
        read_series(series.files, series.file)
    assert str(info.value) == (
        f"{tmp_path / 'case0'}: {series.files[2].name}: ImagePositionPatient is missing or not 3 numbers (None); "
        "the slice has no geometry"
    )
