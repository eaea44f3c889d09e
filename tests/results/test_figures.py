"""Figures, the summary table and report.html from a small before/after results frame (no model)."""

import base64
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sam4med.evaluation.rows import ObjectResult
from sam4med.results.comparison import ALL_TARGETS, comparison
from sam4med.results.figures import PHASE_COLOURS, dice_change, phases, run_figures
from sam4med.results.frame import to_frame
from sam4med.results.redraw import redraw
from sam4med.results.terminal import headline, summary_table
from sam4med.results.write import write_results
from sam4med.run_files import ResultsFolder


def results(gain=0.1):
    """Two targets x three images, S4 and S5, zero-shot then fine-tuned (which adds ``gain`` to S5's Dice)."""
    rows = []
    for phase in ("finetuned", "zero_shot"):  # deliberately the wrong order: figures must sort phases
        for s, strategy in enumerate(("S5", "S4")):
            for t, (obj, modality) in enumerate((("Liver", "CT"), ("Brain", "T1W MRI"))):
                for i in range(3):
                    dice = 0.3 + 0.1 * t + 0.05 * i + (gain if phase == "finetuned" and strategy == "S5" else 0)
                    rows.append(
                        ObjectResult(
                            phase=phase,
                            strategy=strategy,
                            target=f"{obj}-{modality}",
                            modality=modality,
                            object=obj,
                            image_id=f"img{i}",
                            object_key=f"img{i}/{obj}/1",
                            dice=dice,
                            iou=dice / 2,
                            hd=5.0 + s,
                            hd95=4.0,
                            hd_unit="mm",
                            score=0.9,
                            hd_px=10.0 + s,
                            hd95_px=8.0,
                            candidates=1,
                        )
                    )
    return to_frame(rows)


def test_phases_are_ordered_and_figures_cope_with_the_all_targets_rows():
    frame = results()
    assert phases(frame) == ["zero_shot", "finetuned"]
    comp = comparison(frame)
    assert ALL_TARGETS in set(comp["target"])
    figures = run_figures(frame, comp)
    assert set(figures) == {"strategy_means", "dice_boxes", "modality_means", "before_after", "dice_change"}
    # the strategy means: S4's and S5's bars of zero-shot, then of fine-tuned, in the phases' fixed colours
    bars = figures["strategy_means"].axes[0].patches
    assert [hex_colour(b.get_facecolor()) for b in bars] == [PHASE_COLOURS["zero_shot"]] * 2 + [
        PHASE_COLOURS["finetuned"]
    ] * 2
    for fig in figures.values():
        plt.close(fig)
    fig = dice_change(comp)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["Brain-T1W MRI", "Liver-CT", ALL_TARGETS]  # the all-targets bar last, not sorted in
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("S4: all targets +0.000") and titles[1].startswith("S5: all targets +0.100")
    assert "Wilcoxon p" in titles[1] and "sign p" in titles[1]
    plt.close(fig)


def hex_colour(rgba):
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3])


def test_summary_table_carries_the_change_its_ci_and_the_headline():
    frame = results()
    table = summary_table(frame).set_index("strategy")
    assert list(table.index) == ["S4", "S5"]
    assert table.loc["S5", "dice change"] == pytest.approx(0.1)
    assert table.loc["S5", "change CI low"] == pytest.approx(0.1)  # every object gains the same
    assert table.loc["S5", "improved targets"] == "2/2" and table.loc["S4", "improved targets"] == "0/2"
    assert table.loc["S5", "hd_mm fine-tuned"] == pytest.approx(5.0)
    name, value = headline(frame)
    expected = frame.query("phase == 'finetuned' and strategy == 'S5'")["dice"].mean()
    assert name == "finetuned/S5/dice" and value == pytest.approx(expected)


def test_redraw_writes_figures_and_a_self_contained_report(tmp_path):
    frame = results()
    write_results(
        frame, ResultsFolder(tmp_path / "results"), meta={"title": "Zero-shot vs fine-tuned", "backbone": "tiny"}
    )
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    report = redraw(tmp_path)  # the run folder is enough
    figures = tmp_path / "results" / "figures"
    assert {p.name for p in figures.glob("*.png")} == {f"{n}.png" for n in run_figures_names()}
    assert len(list(figures.glob("*.svg"))) == 5
    page = report.read_text()
    assert "<script" not in page and 'src="http' not in page  # opens offline
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5 and base64.b64decode(images[0])[:4] == b"\x89PNG"
    assert page.index("dice change") < page.index("Fig. 18") < page.index("Settings") < page.index("seed: 0")
    assert np.isfinite(pd.read_csv(tmp_path / "results" / "comparison.csv")["dice_delta_ci_low"]).all()


def run_figures_names():
    return ("strategy_means", "dice_boxes", "modality_means", "before_after", "dice_change")
