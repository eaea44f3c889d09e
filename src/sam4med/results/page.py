"""``report.html``: one self-contained page per run (or sweep) that opens offline.

Images are embedded as base64 PNG, styles are inline; no script, no server. The page holds the
headline table, then the figures, then the overlays, then the run's settings. Everything is read from
the results folder (``metrics.csv``, ``summary.json``, ``figures/``, ``overlays/``) and the run folder's
``config.yaml``, so the page can be rebuilt from disk at any time with :func:`write_report`
(``python -m sam4med.results.redraw RUN`` does, see :mod:`sam4med.results.finish`).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from sam4med.evaluation.rows import Phase
from sam4med.files import write_text
from sam4med.results.clicks import read_click_tables
from sam4med.results.comparison import comparison
from sam4med.results.statistics import notes as statistics_notes
from sam4med.results.terminal import formatted_summary, headline, summary_notes, summary_table
from sam4med.results.write import CLICK_NOTE, click_comparison_title, click_headings, comparison_markdown
from sam4med.run_files import ResultsFolder

FIGURE_TITLES = {
    "strategy_means": "Mean Dice and HD per strategy (COSMOS Fig. 6)",
    "dice_boxes": "Dice per target and strategy (Figs. 7-8)",
    "modality_means": "Mean Dice per modality under S5 (Fig. 10)",
    "dice_change": "Dice change per target and over all targets, 95 % bootstrap CI over units (Fig. 18)",
    "before_after": "Mean Dice per target before and after fine-tuning",
    "dice_vs_clicks": "Mean Dice versus clicks per phase (iterative clicks), 95 % bootstrap CI bands over units",
    # the analysis suites (sam4med.analysis, evaluate.py analysis=...)
    "robustness": "Mean Dice against the prompt shift per strategy (analysis=robustness; COSMOS Table 8)",
    "grid": "Everything mode: S1 Dice and seconds per image against grid size per filter pair (analysis=grid; Table 5)",
    "timing": "Seconds per image: image embedding, then prompt encoding and decoding per strategy (analysis=timing; "
    "Table 4)",
    "factors_scatter": "Dice against each object factor (analysis=factors; Fig. 13)",
    "factors_fourier_box": "Elliptic Fourier order by Dice range (analysis=factors; Fig. 14)",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}"
    "pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}figure{margin:1.5em 0}"
    "p.note{font-size:13px;color:#444;margin:0.3em 0}"
)


def _image(path: Path, title: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f"<figure><figcaption><b>{html.escape(title)}</b></figcaption>"
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}"></figure>'
    )


def _table(frame: pd.DataFrame) -> str:
    def cell(column: str, value: object) -> str:
        if isinstance(value, float):
            p_value = column.startswith(("p ", "p_"))
            return "" if math.isnan(value) else f"{value:.2g}" if p_value else f"{value:.3f}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    columns = [str(c) for c in frame.columns]
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(c, v)}</td>" for c, v in zip(columns, row, strict=True)) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(
    *,
    title: str,
    tables: Mapping[str, pd.DataFrame],
    figures: Iterable[tuple[str, Path]],
    overlays: Iterable[tuple[str, Path]],
    settings: Mapping[str, object],
    config: str = "",
    intro: str = "",
    notes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The page as a string: ``tables`` (by heading), ``figures`` and ``overlays`` ((caption, PNG) pairs),
    ``settings`` as a table and ``config`` (YAML text) in full; ``notes`` are lines under a table, by heading.
    """
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for heading, table in tables.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>{_table(table)}")
        parts += [f"<p class='note'>{html.escape(line)}</p>" for line in (notes or {}).get(heading, ())]
    figures, overlays = list(figures), list(overlays)
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(_image(p, t) for t, p in figures))
    if overlays:
        parts.append("<h2>Prediction overlays</h2>" + "".join(_image(p, t) for t, p in overlays))
    if settings:
        rows = pd.DataFrame({"setting": list(settings), "value": [str(v) for v in settings.values()]})
        parts.append(f"<h2>Settings</h2>{_table(rows)}")
    if config:
        parts.append(f"<h3>Resolved config</h3><pre>{html.escape(config)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def figure_entries(folder: Path, titles: Mapping[str, str] = FIGURE_TITLES) -> list[tuple[str, Path]]:
    """(caption, PNG) of the figures in ``folder``: known ones in the order of ``titles``, then the rest."""
    pngs = {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
    known = [(titles[name], pngs.pop(name)) for name in titles if name in pngs]
    return known + [(name.replace("_", " "), path) for name, path in pngs.items()]


def write_report(
    folder: ResultsFolder, *, comp: pd.DataFrame | None = None, tables: Mapping[str, pd.DataFrame] | None = None
) -> Path:
    """Write ``report.html`` from what the results folder holds; returns its path.

    ``comp`` is the run's comparison when already computed; ``tables`` are further tables (by heading) an
    analysis adds below the summary. The summary is printed as on the terminal (the interval beside the
    change, ``n too small`` and ``†`` marks, see :func:`~sam4med.results.terminal.formatted_summary`),
    with its notes (the unit, the small-n legend) below it. With iterative clicks the NoC and Dice
    comparison (``noc_comparison.csv``, as in ``comparison.md``), the NoC per target and the means per click
    follow the summary.
    """
    frame = pd.read_csv(folder.metrics, dtype={"source": str})
    if comp is None and frame.size and set(Phase) <= set(frame["phase"]):
        comp = comparison(frame)
    meta = json.loads(folder.summary.read_text()).get("meta", {}) if folder.summary.is_file() else {}
    config = folder.run.config
    name, value = headline(frame)
    overlays = [(p.stem.removeprefix("overlay_").replace("_", " "), p) for p in sorted(folder.overlays.glob("*.png"))]
    heading = "Mean per strategy over all object instances"
    shown = {heading: formatted_summary(summary_table(frame, comp))} if frame.size else {}
    page_notes = {heading: summary_notes(frame, comp)} if frame.size else {}
    clicks = read_click_tables(folder) if frame.size else None
    if clicks is not None:
        if not clicks.comparison.empty:
            title = click_comparison_title(clicks.comparison)
            shown[title] = comparison_markdown(clicks.comparison, delta="delta")
            page_notes[title] = [CLICK_NOTE, *statistics_notes(frame, clicks.comparison)]
        shown.update(click_headings(clicks))
    page = render(
        title=str(meta.get("title", "Results")),
        intro=f"Headline: {name} = {value:.4f}. Run folder: {folder.run.path.resolve()}" if frame.size else "",
        tables={**shown, **(tables or {})},
        figures=figure_entries(folder.figures),
        overlays=overlays,
        settings=meta,
        config=config.read_text() if config.is_file() else "",
        notes=page_notes or None,
    )
    write_text(folder.report, page)
    return folder.report
