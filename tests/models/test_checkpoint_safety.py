"""A checkpoint whose unpickling would run code is refused with one line, and the code never runs."""

import builtins

import pytest
import torch

from sam4med.errors import CheckpointError
from sam4med.export import main as export_main
from sam4med.models.checkpoints import load_file, read_state_dict
from sam4med.models.finetuned import read_finetuned


class CreatesAFile:
    """Unpickling this calls ``open(target, "w")``: a stand-in for any code a hostile file could run."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return builtins.open, (self.target, "w")


@pytest.fixture
def hostile(tmp_path):
    target = tmp_path / "created_on_load.txt"
    path = tmp_path / "from_a_colleague.ckpt"
    torch.save({"state_dict": {"model.mask_decoder.x": torch.zeros(1)}, "sam4med": CreatesAFile(target)}, path)
    assert not target.exists()
    return path, target


@pytest.mark.parametrize("reader", [lambda p: load_file(p, "a checkpoint"), read_finetuned,
                                    lambda p: read_state_dict(p, "vit_b")])  # fmt: skip
def test_hostile_checkpoint_is_refused_and_runs_nothing(hostile, reader):
    path, target = hostile
    with pytest.raises(CheckpointError, match=rf"{path.name}: cannot read as .*WeightsUnpickler"):
        reader(path)
    assert not target.exists()


def test_export_of_a_hostile_checkpoint_prints_one_line(hostile, tmp_path, capsys):
    path, target = hostile
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(path), str(tmp_path / "out.pth")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith(f"error: {path}: cannot read as") and "\n" not in err
    assert not target.exists() and not (tmp_path / "out.pth").exists()
