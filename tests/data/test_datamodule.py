"""The data module splits by source when there are enough sources, and saves the split."""

import csv

from sam4med.data.datamodule import CosmosDataModule
from sam4med.prepare.volumes import VolumePreparer
from tests.prepare.volumes import preparer_settings, volume_folder


def test_split_by_volume_is_seeded_and_saved(tmp_path):
    inputs = volume_folder(tmp_path / "in", n=6, shape=(16, 18, 10))
    module = CosmosDataModule(
        root=tmp_path / "out", preparer=VolumePreparer(**preparer_settings(inputs)), fractions=(0.5, 0.25, 0.25)
    )
    module.prepare_data()
    module.setup()
    sources = {name: {o.source for o in module.dataset(name).records} for name in ("train", "val", "test")}
    assert sources["train"] and sources["val"] and sources["test"]
    assert not (
        sources["train"] & sources["val"] or sources["train"] & sources["test"] or sources["val"] & sources["test"]
    )
    module.save_split(tmp_path / "run" / "split.csv")
    with (tmp_path / "run" / "split.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    again = CosmosDataModule(root=tmp_path / "out", fractions=(0.5, 0.25, 0.25))
    again.setup()
    assert again.split == module.split
