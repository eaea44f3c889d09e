"""A checkpoint whose unpickling would run code is refused with one line, and the code never runs; a file
that is no checkpoint is named for what it is; a training checkpoint not written by train.py, one that
cannot be checked against the model, and a diverged one are refused with the reason.
"""

import builtins
import pickle
import random

import pytest
import torch

from sam4med.errors import CheckpointError
from sam4med.export import main as export_main
from sam4med.models.builders import build_tiny
from sam4med.models.checkpoints import load_file, read_state_dict
from sam4med.models.finetuned import load_finetuned_decoder, read_finetuned
from tests.models.checkpoint_files import sam4med_entry, trained_decoder, write_checkpoint


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
    with pytest.raises(CheckpointError, match=rf"{path.name}: cannot read as .*holds code, not tensors.*Weights"):
        reader(path)
    assert not target.exists()


def test_export_of_a_hostile_checkpoint_prints_one_line(hostile, tmp_path, capsys):
    path, target = hostile
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(path), str(tmp_path / "out.pth")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith(f"error: {path}: cannot read as") and "\n" not in err
    assert not target.exists() and not (tmp_path / "out.pth").exists()


# --- what load_file says about a file it cannot read: one line, the file, what it is -------------------------


def one_line_error(path, reader=lambda p: load_file(p, "a checkpoint")):
    with pytest.raises(CheckpointError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


@pytest.fixture
def training_checkpoint(tmp_path):
    return write_checkpoint(tmp_path / "last.ckpt", build_tiny())


def test_a_checkpoint_cut_short_is_named_as_such(training_checkpoint, tmp_path):
    data = training_checkpoint.read_bytes()
    half = tmp_path / "half.ckpt"
    half.write_bytes(data[: len(data) // 2])
    message = one_line_error(half, read_finetuned)
    assert "cut short or damaged" in message and "copy it again" in message


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickled_call_is_refused_as_code_not_tensors(tmp_path, protocol, writer):
    target = tmp_path / "created_on_load.txt"
    path = tmp_path / "payload.ckpt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"state_dict": CreatesAFile(target)}, protocol=protocol))
    else:
        torch.save({"state_dict": CreatesAFile(target)}, path, pickle_protocol=protocol)
    message = one_line_error(path)
    assert "it holds code, not tensors (unpickling it would call 'io.open')" in message  # builtins.open is io.open
    assert not target.exists()


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes_are_not_a_checkpoint_and_not_code(tmp_path, seed):
    path = tmp_path / "noise.ckpt"
    path.write_bytes(random.Random(seed).randbytes(4096))
    message = one_line_error(path)
    assert "not a PyTorch checkpoint" in message and "code" not in message


@pytest.mark.parametrize("text", ["hello world\n", "epoch: 3\nmodel: vit_b\n", "config: 1\n", '{"a": 1}', "ééé"])
def test_a_text_file_is_named_a_text_file(tmp_path, text):
    path = tmp_path / "notes.ckpt"
    path.write_text(text)
    message = one_line_error(path)
    assert "it is a text file" in message and "not a PyTorch checkpoint" in message
    assert "Error" not in message and "code" not in message  # no KeyError: 101, no IndexError


def test_an_empty_file_a_folder_and_link_problems_are_named(tmp_path):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert "the file is empty (0 bytes)" in one_line_error(tmp_path / "empty.ckpt")
    (tmp_path / "folder.ckpt").mkdir()
    assert "it is a folder, not a file" in one_line_error(tmp_path / "folder.ckpt")
    (tmp_path / "a.ckpt").symlink_to(tmp_path / "b.ckpt")
    (tmp_path / "b.ckpt").symlink_to(tmp_path / "a.ckpt")
    for path in (tmp_path / "a.ckpt", tmp_path / "a.ckpt" / "inside.ckpt"):
        message = one_line_error(path)
        assert "symbolic-link loop" in message and "cannot be resolved" in message
        assert "does not exist" not in message
    (tmp_path / "dangling.ckpt").symlink_to(tmp_path / "moved.ckpt")
    assert f"a symbolic link to {tmp_path / 'moved.ckpt'}, which does not exist" in one_line_error(
        tmp_path / "dangling.ckpt"
    )
    assert one_line_error(tmp_path / "nowhere.ckpt") == f"{tmp_path / 'nowhere.ckpt'}: a checkpoint does not exist"


def test_a_real_checkpoint_still_loads(training_checkpoint):
    assert set(load_file(training_checkpoint, "a checkpoint")) >= {"state_dict", "sam4med", "hyper_parameters"}


# --- read_finetuned: a checkpoint not written by train.py, unchecked or diverged is refused with the reason ------


def test_a_checkpoint_without_the_sam4med_entry_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "lightning.ckpt", build_tiny(), sam4med=None)
    message = one_line_error(path, read_finetuned)
    assert "has no 'sam4med' entry, so it was not written by sam4med's train.py" in message


@pytest.mark.parametrize(
    "entry",
    [
        {"backbone": "tiny"},
        {"backbone": "tiny", "base_weights": {}},
        {"backbone": "tiny", "base_weights": {"prompt_encoder": "0f91ef9747c216a4"}},
        {"backbone": "tiny", "base_weights": "333beb2ace5b9903"},
    ],
)
def test_a_checkpoint_without_an_encoder_hash_is_refused(tmp_path, entry):
    path = write_checkpoint(tmp_path / "unhashed.ckpt", build_tiny(), sam4med=entry)
    message = one_line_error(path, read_finetuned)
    assert "records no hash of the image encoder it was trained on (sam4med.base_weights.image_encoder)" in message


@pytest.mark.parametrize("part", ["image_encoder", "prompt_encoder"])
def test_other_base_weights_are_refused(tmp_path, part):
    tiny = build_tiny()
    entry = sam4med_entry(tiny)
    entry["base_weights"][part] = "0123456789abcdef"
    path = write_checkpoint(tmp_path / "other_base.ckpt", tiny, sam4med=entry)
    model = build_tiny()
    before = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    message = one_line_error(path, lambda p: load_finetuned_decoder(model, p))
    assert f"trained on other 'tiny' {part.replace('_', '-')} weights than the ones loaded now" in message
    assert all(torch.equal(v, before[k]) for k, v in model.mask_decoder.state_dict().items())


@pytest.mark.parametrize(
    ("spoil", "first_bad"),
    [
        (lambda state: {k: torch.full_like(v, float("nan")) for k, v in state.items()}, "transformer.layers.0"),
        (lambda state: {**state, "iou_token.weight": state["iou_token.weight"] / 0}, "iou_token.weight"),
    ],
    ids=["all NaN", "one inf tensor"],
)
def test_a_non_finite_decoder_is_refused_naming_the_first_bad_tensor(tmp_path, spoil, first_bad):
    tiny = build_tiny()
    path = write_checkpoint(tmp_path / "diverged.ckpt", tiny, decoder=spoil(trained_decoder(tiny)))
    message = one_line_error(path, read_finetuned)
    assert f"decoder tensor 'model.mask_decoder.{first_bad}" in message and "refusing it before any scoring" in message


def test_a_checkpoint_as_train_py_writes_it_passes(tmp_path):
    tiny = build_tiny()
    path = write_checkpoint(tmp_path / "epoch03.ckpt", tiny)
    finetuned = load_finetuned_decoder(tiny, path)
    assert finetuned.backbone == "tiny" and set(finetuned.base_weights) == set(sam4med_entry(tiny)["base_weights"])
    assert torch.equal(tiny.mask_decoder.iou_token.weight, trained_decoder(build_tiny())["iou_token.weight"])
