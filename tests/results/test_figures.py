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
from sam4med.results.terminal import formatted_summary, headline, print_summary, summary_table
from sam4med.results.write import write_results
from sam4med.run_files import ResultsFolder


def results(gain=0.1, images=6, source=""):
    """Two targets x ``images`` images, S4 and S5, zero-shot then fine-tuned (which adds ``gain`` to S5's Dice)."""
    rows = []
    for phase in ("finetuned", "zero_shot"):  # deliberately the wrong order: figures must sort phases
        for s, strategy in enumerate(("S5", "S4")):
            for t, (obj, modality) in enumerate((("Liver", "CT"), ("Brain", "T1W MRI"))):
                for i in range(images):
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
                            nsd=dice / 1.5,
                            hd_px=10.0 + s,
                            hd95_px=8.0,
                            candidates=1,
                            source=source,
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
    # six images, each S5 object +0.1: exact two-sided p = 2/64 for both tests over units, flagged (5-9 units)
    assert titles[1] == "S5: all targets +0.100 (6 images), Wilcoxon p 0.031 †, perm. p 0.031 †, sign p 0.5"
    assert titles[0].startswith("S4: all targets +0.000 (6 images), Wilcoxon p 1 †")
    # S4 does not change: a degenerate bootstrap distribution, where BCa gives no interval and percentile the point
    assert set(comp.loc[comp.strategy == "S4", "ci_method"]) == {"percentile"}
    assert fig._suptitle.get_text().endswith("(error bars: 95 % BCa/percentile bootstrap CI, images resampled)")
    plt.close(fig)
    few = dice_change(comparison(results(images=3)))
    assert few.axes[1].get_title() == "S5: all targets +0.100 (3 images), n too small, sign p 0.5"
    assert few._suptitle.get_text().endswith("(no error bars: n too small, fewer than 5 images)")
    plt.close(few)


def hex_colour(rgba):
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3])


def test_summary_table_carries_the_change_its_ci_and_the_headline():
    frame = results()
    table = summary_table(frame).set_index("strategy")
    assert list(table.index) == ["S4", "S5"]
    assert table.loc["S5", "dice change"] == pytest.approx(0.1)
    assert table.loc["S5", "change CI low"] == pytest.approx(0.1)  # every object gains the same
    assert (table.loc["S5", "unit"], table.loc["S5", "n units"]) == ("image", 6)
    assert table.loc["S5", "p wilcoxon"] == pytest.approx(2 / 64) == table.loc["S5", "p permutation"]
    shown = formatted_summary(summary_table(frame)).set_index("strategy")
    assert shown.loc["S5", "dice change [95% CI]"] == "+0.100 [+0.100, +0.100] †"
    assert shown.loc["S5", "p wilcoxon"] == "0.031 †" and shown.loc["S5", "p sign"] == "0.5"
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


def test_fewer_than_five_units_print_n_too_small_everywhere(tmp_path, capsys):
    # three slices of one volume: no interval, no p-value; the console, comparison.md and report.html say
    # "n too small" and that the unit is the image of one source
    frame = results(images=3, source="colin27")
    folder = ResultsFolder(tmp_path / "results")
    write_results(frame, folder, meta={"title": "t"})
    comp = pd.read_csv(folder.comparison_csv)
    assert set(comp.unit) == {"image"} and set(comp.n_units) == {3} and set(comp.small_n) == {"n too small"}
    assert comp[["dice_delta_ci_low", "dice_delta_ci_high", "p_wilcoxon", "p_permutation"]].isna().all().all()
    markdown = folder.comparison_md.read_text()
    assert "| n too small | n too small |" in markdown and "fewer than 5 units" in markdown
    assert "every image comes from one source (colin27)" in markdown
    print_summary(frame, title="few")
    console = capsys.readouterr().out
    assert "+0.100 (n too small)" in console and "not for new patients" in console
    page = redraw(tmp_path).read_text()
    assert "+0.100 (n too small)" in page and "n too small: fewer than 5 units" in page


def test_five_to_nine_units_are_flagged_in_markdown_and_report(tmp_path):
    folder = ResultsFolder(tmp_path / "results")
    write_results(results(images=7), folder, meta={"title": "t"})
    markdown = folder.comparison_md.read_text()
    assert "| 0.100 † | image | 7 |" in markdown and "| 0.016 † | 0.016 † | small n |" in markdown
    assert "† small n: 5 to 9 units" in markdown
    page = redraw(tmp_path).read_text()
    assert "+0.100 [+0.100, +0.100] †" in page and "† small n: 5 to 9 units" in page
    assert "the rows carry no source" in page  # no source column values: every image its own unit


def test_redraw_of_a_folder_of_an_older_version(tmp_path):
    # metrics.csv without `source`, comparison.csv with the old columns (object-level p): recomputed by image
    folder = ResultsFolder(tmp_path / "results")
    write_results(results(images=6), folder, meta={"title": "old"})
    pd.read_csv(folder.metrics).drop(columns="source").to_csv(folder.metrics, index=False)
    old = pd.read_csv(folder.comparison_csv).drop(columns=["unit", "n_units", "ci_method", "p_permutation", "small_n"])
    old.to_csv(folder.comparison_csv, index=False)
    page = redraw(tmp_path).read_text()
    assert "6 images" in page and "+0.100 [+0.100, +0.100] †" in page and "the rows carry no source" in page
    assert "n_units" not in pd.read_csv(folder.comparison_csv)  # the tables stay as they were
