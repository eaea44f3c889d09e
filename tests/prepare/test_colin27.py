"""Preparation of the real Colin27/AAL data from Debian's mricron-data."""

import nibabel as nib
import numpy as np

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import read_info, read_manifest
from sam4med.prepare.colin27 import MRICRON_DIR, SUBCORTICAL, read_aal_names


def test_names_come_from_the_atlas_text():
    names = read_aal_names(MRICRON_DIR / "aal.nii.txt")
    assert names["Thalamus_L"] == 77 and names["Hippocampus_R"] == 38
    assert all(s in names for s in SUBCORTICAL)


def test_manifest_matches_the_source(colin27_root):
    aal = np.asarray(nib.as_closest_canonical(nib.load(MRICRON_DIR / "aal.nii.gz")).dataobj)
    names = read_aal_names(MRICRON_DIR / "aal.nii.txt")
    renumbered = np.zeros(aal.shape, dtype=np.int64)
    for value, name in enumerate(SUBCORTICAL, start=1):
        renumbered[aal == names[name]] = value
    expected = [z for z in range(aal.shape[2]) if renumbered[:, :, z].sum() > 50]
    records = read_manifest(colin27_root)
    assert [r.slice_index for r in records] == expected
    assert all(r.modality == "T1W MRI" and r.spacing == (1.0, 1.0) for r in records)
    info = read_info(colin27_root)
    assert [m.name for m in info.label_maps] == ["structures", "brain"]
    assert tuple(info.label_maps[0].objects.values()) == SUBCORTICAL


def test_slice_content_matches_the_atlas(colin27_root):
    aal = np.asarray(nib.as_closest_canonical(nib.load(MRICRON_DIR / "aal.nii.gz")).dataobj)
    dataset = CosmosDataset(colin27_root, min_object_area=1)
    item = dataset[len(dataset) // 2]
    z = item.record.slice_index
    thal = [i for i, o in enumerate(item.objects) if o.object_name == "Thalamus_L"]
    assert thal, "a mid slice of the kept range crosses the left thalamus"
    assert item.masks[thal[0]].sum() == (aal[:, :, z] == 77).sum()
    assert item.image.shape == (217, 181, 3) and item.image.max() == 255 and item.image.min() == 0
    brain = [i for i, o in enumerate(item.objects) if o.object_name == "Brain"][0]
    assert item.masks[brain].sum() > 5 * item.masks[thal[0]].sum()


def test_second_call_reuses_the_folder(colin27_root):
    from sam4med.prepare.colin27 import Colin27AAL

    before = {p: p.stat().st_mtime_ns for p in colin27_root.rglob("*.png")}
    Colin27AAL()(colin27_root)
    assert before == {p: p.stat().st_mtime_ns for p in colin27_root.rglob("*.png")}


def test_summary_matches_the_atlas(colin27_root):
    from sam4med.prepare.summary import summarize_folder

    aal = np.asarray(nib.as_closest_canonical(nib.load(MRICRON_DIR / "aal.nii.gz")).dataobj)
    names = read_aal_names(MRICRON_DIR / "aal.nii.txt")
    kept = [r.slice_index for r in read_manifest(colin27_root)]
    summary = summarize_folder(colin27_root)
    assert summary.images == 56 and summary.sizes == {"217x181": 56}
    for name in SUBCORTICAL:
        slices = sum(1 for z in kept if (aal[:, :, z] == names[name]).any())
        assert summary.objects[name] == (slices, slices), name
    assert summary.objects["Brain"] == (56, 56)
    assert set(summary.targets) == {f"{n}-T1W MRI" for n in (*SUBCORTICAL, "Brain")}
