"""The iterative-click reporting from I@k rows alone: per-click means, NoC comparison, figure, order, files."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats

from sam4med.evaluation.rows import ObjectResult
from sam4med.results import finish as finish_module
from sam4med.results.clicks import click_comparison, click_means, click_tables, final_click, read_click_tables
from sam4med.results.comparison import ALL_TARGETS, comparison, improvement
from sam4med.results.figures import PHASE_COLOURS, run_figures
from sam4med.results.finish import finish
from sam4med.results.frame import overall, to_frame
from sam4med.results.noc import noc_table
from sam4med.results.statistics import StatisticsSettings, pair, paired_delta
from sam4med.results.tables import strategy_order
from sam4med.results.write import write_results
from sam4med.run_files import ResultsFolder

FAST = StatisticsSettings(resamples=999)
SOURCES = 6  # 6 volumes x 2 slices: the unit is the source
TARGETS = ("Liver-CT", "Lung-CT")


def result(phase, strategy, source, image, target, iou):
    iou = float(np.clip(iou, 0.0, 1.0))
    return ObjectResult(
        phase=phase, strategy=strategy, target=target, modality="CT", object=target.split("-")[0],
        image_id=image, object_key=f"{image}/{target}", dice=2 * iou / (1 + iou), iou=iou, hd=3.0, hd95=2.0,
        hd_unit="px", score=0.8, nsd=iou, hd_px=3.0, hd95_px=2.0, candidates=3, source=source,
    )  # fmt: skip


def interactive_frame(clicks=5, others=("S5", "M1", "M2")):
    """2 phases x (``others`` + I@1 ... I@clicks) x 6 sources x 2 images x 2 targets.

    The IoU rises with the clicks; fine-tuned is higher by a gain that depends on the source.
    """
    rng = np.random.default_rng(0)
    rows = []
    for s in range(SOURCES):
        gain = 0.03 + 0.015 * s
        for i in range(2):
            image = f"vol{s}_slice{i}"
            for t, target in enumerate(TARGETS):
                base = 0.40 + 0.05 * t + 0.03 * i + rng.normal(0, 0.02)
                for phase, shift in (("zero_shot", 0.0), ("finetuned", gain)):
                    for strategy in others:
                        rows.append(result(phase, strategy, f"vol{s}", image, target, base + shift + 0.1))
                    for k in range(1, clicks + 1):
                        rows.append(result(phase, f"I@{k}", f"vol{s}", image, target, base + shift + 0.06 * k))
    return to_frame(rows)


def test_strategy_order_puts_modes_after_s_and_clicks_in_click_order():
    names = ["I@10", "I@2", "M2", "S5", "I@9", "other", "M1", "S1", "I@1", "M5"]
    frame = pd.DataFrame({"strategy": names})
    assert strategy_order(frame) == ["S1", "S5", "M1", "M2", "M5", "other", "I@1", "I@2", "I@9", "I@10"]
    rows = to_frame(result("zero_shot", s, "v", "a", "Liver-CT", 0.5) for s in names)
    assert list(overall(rows)["strategy"]) == strategy_order(frame)  # not I@1, I@10, I@2 ...
    comp = pd.DataFrame({"strategy": names, "target": "t", "dice_delta": 0.1})
    assert list(improvement(comp)["strategy"]) == strategy_order(frame)


def test_final_click_keeps_every_strategy_and_only_the_last_click():
    frame = interactive_frame(clicks=10)
    assert strategy_order(final_click(frame)) == ["S5", "M1", "M2", "I@10"]


def test_click_means_per_phase_and_click_with_an_interval_over_sources():
    frame = interactive_frame()
    table = click_means(frame, FAST)
    expected = [(p, k) for p in ("zero_shot", "finetuned") for k in range(1, 6)]
    assert list(zip(table.phase, table.click, strict=True)) == expected
    row = table.set_index(["phase", "click"]).loc[("finetuned", 3)]
    rows = frame[(frame.phase == "finetuned") & (frame.strategy == "I@3")]
    assert row["n"] == 24 and row["dice"] == pytest.approx(rows["dice"].mean())
    assert row["iou"] == pytest.approx(rows["iou"].mean())
    assert (row["unit"], row["n_units"], row["small_n"]) == ("source", 6, "small n")
    # the interval resamples the 6 sources (their sums and object counts), as every comparison does
    per_source = rows.groupby("source")["dice"]
    direct = stats.bootstrap(
        (per_source.sum().to_numpy(), per_source.size().to_numpy().astype(float)),
        lambda s, c, axis: s.sum(axis=axis) / c.sum(axis=axis),
        paired=True, vectorized=True, n_resamples=999, method="BCa", rng=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    assert (row["dice_ci_low"], row["dice_ci_high"]) == pytest.approx((direct.low, direct.high))
    assert row["dice_ci_low"] < row["dice"] < row["dice_ci_high"] and row["ci_method"] == "BCa"


def test_noc_and_dice_comparison_paired_by_object_with_the_comparison_statistics():
    frame = interactive_frame()
    noc = noc_table(frame)
    table = click_comparison(frame, noc, FAST)
    measures = list(dict.fromkeys(table["measure"]))
    assert measures == ["NoC@80", "NoC@85", "NoC@90", "Dice@1", "Dice@3", "Dice@5"]  # Dice@9 > K = 5: left out
    assert set(table.loc[table.measure.str.startswith("NoC"), "better"]) == {"lower"}
    assert set(table.loc[table.measure.str.startswith("Dice"), "better"]) == {"higher"}
    assert list(table.loc[table.measure == "NoC@85", "target"]) == [*TARGETS, ALL_TARGETS]
    total = table[(table.measure == "NoC@85") & (table.target == ALL_TARGETS)].iloc[0]
    expected = paired_delta(pair(noc.assign(strategy="I"), "zero_shot", "finetuned", metric="noc85"), FAST)
    assert total["delta"] == pytest.approx(expected.delta) and total["delta"] < 0  # fewer clicks after fine-tuning
    assert (total["delta_ci_low"], total["p_wilcoxon"]) == pytest.approx((expected.ci_low, expected.p_wilcoxon))
    assert (total["unit"], total["n_units"], total["n"]) == ("source", 6, 24)
    by_phase = noc.groupby("phase")
    assert total["zero_shot"] == pytest.approx(by_phase["noc85"].mean()["zero_shot"])
    assert total["failed_finetuned"] == pytest.approx(by_phase["failed85"].mean()["finetuned"])
    # Dice at 3 clicks: the same numbers as the I@3 rows of comparison.csv
    dice3 = table[table.measure == "Dice@3"].set_index("target")
    comp = comparison(frame, statistics=FAST)
    i3 = comp[comp.strategy == "I@3"].set_index("target")
    for target in [*TARGETS, ALL_TARGETS]:
        assert dice3.loc[target, "delta"] == pytest.approx(i3.loc[target, "dice_delta"])
        assert dice3.loc[target, "delta_ci_high"] == pytest.approx(i3.loc[target, "dice_delta_ci_high"])
        assert dice3.loc[target, "p_permutation"] == pytest.approx(i3.loc[target, "p_permutation"])
    assert dice3.loc[ALL_TARGETS, "p_sign"] == pytest.approx(i3.loc[ALL_TARGETS, "p_sign"])
    one_phase = frame[frame.phase == "zero_shot"]
    assert click_comparison(one_phase, noc_table(one_phase), FAST).empty


def test_the_click_figure_is_drawn_only_with_click_rows_with_both_phases():
    plain = interactive_frame(clicks=0)
    assert "dice_vs_clicks" not in run_figures(plain)
    plt.close("all")
    frame = interactive_frame()
    clicks = click_means(frame, FAST)
    figures = run_figures(frame, clicks=clicks)
    fig = figures["dice_vs_clicks"]
    ax = fig.axes[0]
    assert [line.get_color() for line in ax.lines] == [PHASE_COLOURS["zero_shot"], PHASE_COLOURS["finetuned"]]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    assert ax.lines[1].get_ydata() == pytest.approx(clicks.loc[clicks.phase == "finetuned", "dice"].to_numpy())
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2  # one interval band per phase
    assert "bands: 95 % BCa bootstrap CI, sources resampled" in fig._suptitle.get_text()
    # the box plots show every mode and the iterative clicks at their last click only
    assert [a.get_ylabel() for a in figures["dice_boxes"].axes] == ["S5 Dice", "M1 Dice", "M2 Dice", "I@5 Dice"]
    plt.close("all")


def test_finish_writes_the_click_tables_figure_report_and_logs_them(tmp_path, monkeypatch, capsys):
    tables, metrics = {}, {}
    monkeypatch.setattr(finish_module, "publish_table", lambda loggers, name, table, step: tables.update({name: table}))
    monkeypatch.setattr(finish_module, "log_metrics", lambda loggers, values, step: metrics.update(values))
    frame = interactive_frame(others=("S5", "M1"))
    folder = ResultsFolder(tmp_path / "results")
    finish(folder, frame, {"title": "clicks"}, title="clicks", loggers=[object()], statistics=FAST)
    for name in ("noc", "noc_summary", "clicks", "noc_comparison"):
        assert folder.table(name).is_file(), name
    assert len(pd.read_csv(folder.table("noc"))) == 2 * 24
    saved = pd.read_csv(folder.table("noc_comparison"))
    assert set(saved["measure"]) == {"NoC@80", "NoC@85", "NoC@90", "Dice@1", "Dice@3", "Dice@5"}
    comp = pd.read_csv(folder.comparison_csv)
    assert list(dict.fromkeys(comp["strategy"])) == ["S5", "M1", "I@1", "I@2", "I@3", "I@4", "I@5"]
    assert (folder.figures / "dice_vs_clicks.png").is_file()
    markdown = folder.comparison_md.read_text()
    assert "NoC and Dice at 1, 3, 5 clicks" in markdown and "lower NoC is better" in markdown
    assert "## Mean Dice and IoU per click" in folder.tables_md.read_text()
    page = folder.report.read_text()
    assert "Mean Dice versus clicks per phase" in page and "NoC per target" in page and "NoC@85" in page
    assert {"clicks/noc", "clicks/noc_summary", "clicks/clicks", "clicks/noc_comparison"} <= set(tables)
    noc85 = pd.read_csv(folder.table("noc_summary")).set_index(["phase", "target"])["noc85"]
    assert metrics["finetuned/I/noc85"] == pytest.approx(noc85[("finetuned", ALL_TARGETS)])
    console = " ".join(capsys.readouterr().out.split())  # the notes wrap at the console's width
    assert "I@5" in console and "I@4" not in console and "M1" in console  # the last click, every mode
    assert "NoC@85 (clicks to IoU >= 0.85, lower is better, 6 when not reached): zero-shot" in console
    # what a redraw shows again: the tables as written (report.html above was built from them too)
    again = read_click_tables(folder)
    pd.testing.assert_frame_equal(again.noc, pd.read_csv(folder.table("noc"), dtype={"source": str}))
    assert again.clicks["dice"].to_numpy() == pytest.approx(click_means(frame, FAST)["dice"].to_numpy())


def test_click_tables_none_without_click_rows():
    assert click_tables(interactive_frame(clicks=0), FAST) is None


def test_a_zero_shot_run_writes_the_click_tables_without_a_comparison(tmp_path):
    frame = interactive_frame(others=("S5",))
    folder = ResultsFolder(tmp_path / "results")
    paths = write_results(frame[frame.phase == "zero_shot"], folder, meta={"title": "t"}, statistics=FAST)
    assert {"noc", "noc_summary", "clicks"} <= set(paths) and "noc_comparison" not in paths
    assert not folder.table("noc_comparison").exists() and "Iterative clicks" not in folder.comparison_md.read_text()
    assert set(pd.read_csv(folder.table("clicks"))["phase"]) == {"zero_shot"}
