"""The root entry points: quick and exact ``--help``, and no run folder left behind by a failed start."""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from sam4med.command import GROUPS_RESOLVER, started_only, user_errors_in_one_line
from sam4med.errors import ConfigError
from tests.conftest import REPO
from tests.helpers import CONF, HANG_TIMEOUT_S

ENTRY_POINTS = ("train", "evaluate", "prepare")
HEAVY = ("torch", "lightning", "pytorch_lightning", "pandas", "matplotlib")
GROUPS_IN_TEMPLATE = re.compile(r"\$\{" + re.escape(GROUPS_RESOLVER) + r":([^}]*)\}")


def composed_with_hydra(name: str, overrides: list[str] = ()):
    """The config ``name`` with its ``hydra`` node, and its help template resolved (inside Hydra's context)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
        help_text = cfg.hydra.help.template
    return cfg, help_text


def help_groups(cfg) -> list[str]:
    """The group names written in the help template of ``cfg`` (``${sam4med.config_groups:a,b,...}``)."""
    template = OmegaConf.to_container(cfg.hydra.help, resolve=False)["template"]
    found = GROUPS_IN_TEMPLATE.findall(template)
    assert len(found) == 1, template
    return [group.strip() for group in found[0].split(",")]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_names_exactly_the_groups_of_the_defaults_list(name):
    cfg, help_text = composed_with_hydra(name)
    assert cfg.hydra.runtime.choices["hydra/help"] == name
    selected = {group for group in cfg.hydra.runtime.choices if not group.startswith("hydra/")}
    groups = help_groups(cfg)
    assert len(groups) == len(set(groups)) and set(groups) == selected, (
        f"conf/hydra/help/{name}.yaml lists {sorted(groups)}, conf/{name}.yaml selects {sorted(selected)}"
    )
    # each group with the options found under conf/<group>/, as Hydra finds them
    for group in groups:
        options = ", ".join(sorted(path.stem for path in (CONF / group).glob("*.yaml")))
        assert re.search(rf"^{group}:\s+{re.escape(options)}  \(chosen: ", help_text, re.MULTILINE), help_text


def test_evaluate_help_names_no_training_group():
    cfg, help_text = composed_with_hydra("evaluate", ["model=tiny"])
    assert not {"trainer", "callbacks", "module"} & set(help_groups(cfg))
    assert "logger" in help_groups(cfg)
    assert re.search(r"^model:.*\(chosen: tiny\)$", help_text, re.MULTILINE)


@pytest.mark.parametrize("name", ENTRY_POINTS)
@pytest.mark.parametrize("flag", [["--help"], ["--cfg", "job"]])
def test_help_and_cfg_job_load_no_heavy_library(name, flag):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", f"{name}.py", *flag],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & set(HEAVY), f"{name}.py {' '.join(flag)} imports {sorted(imported & set(HEAVY))}"
    if flag == ["--help"]:
        assert "== Configuration groups ==" in proc.stdout and "dataset:" in proc.stdout
        assert ("trainer:" in proc.stdout) == (name == "train")


# --- a failed start leaves no run folder -------------------------------------------------------------


def start_up_files(run: Path, job: str = "evaluate") -> Path:
    """What a run writes before its first result: Hydra's files, its log, the config, the split, empty folders."""
    (run / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run / ".hydra" / name).write_text("{}\n")
    (run / f"{job}.log").write_text("[INFO] started\n")
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "split.csv").write_text("image_id,split\n")
    (run / "results" / "figures").mkdir(parents=True)
    return run


def test_a_folder_of_start_up_files_only_can_go(tmp_path):
    run = start_up_files(tmp_path / "run")
    assert started_only(run, "evaluate")
    (run / "config.yaml").unlink()
    (run / "split.csv").unlink()
    assert started_only(run, "evaluate")  # a run that failed earlier still has Hydra's files
    custom = tmp_path / "custom"
    (custom / "meta").mkdir(parents=True)
    assert started_only(custom, "train", hydra_subdir="meta") and not started_only(custom, "train")


@pytest.mark.parametrize(
    "kept",
    [
        "results/evaluation_log.jsonl",
        "results/evaluation_log.rank1.jsonl",
        "results/prompts.json",
        "results/metrics.csv",
        "results/config.yaml",  # a start-up name, but not where a start writes it
        "checkpoints/last.ckpt",
        "csv/version_0/hparams.yaml",
        "notes.txt",
        "train.log",  # the log of another job
    ],
)
def test_a_folder_holding_anything_else_is_kept(tmp_path, kept):
    run = start_up_files(tmp_path / "run")
    (run / kept).parent.mkdir(parents=True, exist_ok=True)
    (run / kept).write_text("x\n")
    assert not started_only(run, "evaluate")


def test_a_link_or_a_folder_hydra_did_not_make_is_kept(tmp_path):
    run = start_up_files(tmp_path / "run")
    (run / "results" / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    assert not started_only(run, "evaluate")
    plain = tmp_path / "plain"  # prepare.py runs in the current folder and writes no .hydra/
    plain.mkdir()
    assert not started_only(plain, "prepare") and not started_only(tmp_path / "missing", "prepare")


@pytest.fixture
def hydra_run(tmp_path):
    """A Hydra job's config whose run folder is ``tmp_path/run``, set as Hydra sets it for a job."""
    cfg, _ = composed_with_hydra("evaluate", ["model=tiny"])
    run = tmp_path / "run"
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run)
        cfg.hydra.job.name = "evaluate"
    before = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    yield cfg, run
    HydraConfig.instance().cfg = before


def fails_with(exc):
    @user_errors_in_one_line
    def main(cfg):
        raise exc

    return main


def test_a_failed_start_removes_its_run_folder_in_one_log_line(hydra_run, capsys, caplog):
    cfg, run = hydra_run
    caplog.set_level(logging.INFO, logger="sam4med")
    start_up_files(run)
    with pytest.raises(SystemExit) as info:
        fails_with(ConfigError("dataset.root: no such folder"))(cfg)
    assert info.value.code == 2 and not run.exists()
    assert capsys.readouterr().err == "error: dataset.root: no such folder\n"
    assert [r.getMessage() for r in caplog.records if "removed" in r.getMessage()] == [
        f"removed the run folder {run}: the run stopped before writing anything of its own"
    ]
    start_up_files(run)
    with pytest.raises(ZeroDivisionError):  # a crash: its traceback stays, the empty folder goes
        fails_with(ZeroDivisionError())(cfg)
    assert not run.exists()


def test_a_failed_run_that_wrote_anything_keeps_its_folder(hydra_run):
    cfg, run = hydra_run
    start_up_files(run)
    (run / "results" / "evaluation_log.jsonl").write_text("{}\n")
    with pytest.raises(KeyboardInterrupt):
        fails_with(KeyboardInterrupt())(cfg)
    assert (run / "results" / "evaluation_log.jsonl").is_file()


def test_a_command_called_without_a_config_touches_no_run_folder(hydra_run):
    _, run = hydra_run
    start_up_files(run)
    with pytest.raises(SystemExit):
        fails_with(ConfigError("bad"))(["--flag"])  # an argparse command, even inside a Hydra process
    assert run.is_dir()


def test_evaluate_failing_at_start_exits_2_and_leaves_no_run_folder(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "model=vit_b",
            f"model.checkpoint={tmp_path / 'missing.pth'}",
            "dataset=synthetic",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    last = proc.stderr.strip().splitlines()[-1]  # after the progress bars of preparing the dataset
    assert proc.returncode == 2 and last.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "missing.pth" in last
    assert not run.exists() and f"removed the run folder {run}" in proc.stdout
    assert (tmp_path / "data" / "synthetic").is_dir()  # what the run prepared outside its folder stays
