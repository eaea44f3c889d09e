"""``python -m sam4med.results.redraw RUN [RUN ...]``: redraw the figures and ``report.html`` of existing runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sam4med.command import user_errors_in_one_line
from sam4med.results.clicks import read_click_tables
from sam4med.results.comparison import comparison
from sam4med.results.finish import finish
from sam4med.run_files import ResultsFolder


def redraw(path: str | Path) -> Path:
    """Redraw the figures and ``report.html`` of an existing run (its results or run folder); returns the report.

    For a run made by an older version, or after the figure code changed. The comparison is read from
    ``comparison.csv`` when it holds the before/after columns and the unit-level statistics (``n_units``),
    else computed from ``metrics.csv`` with the default statistics settings (``statistics.unit=auto``: an
    older ``metrics.csv`` without a ``source`` column gets the image as its unit); the iterative-click tables
    are read from ``clicks.csv`` and its siblings where they exist; the tables and the overlays (which need
    the model) stay as they are.
    """
    folder = ResultsFolder.find(path)
    frame = pd.read_csv(folder.metrics, dtype={"source": str})
    saved = folder.comparison_csv
    comp = pd.read_csv(saved) if saved.is_file() and saved.stat().st_size else pd.DataFrame()
    if "dice_delta" not in comp or "n_units" not in comp:  # none yet, or one of before the unit-level statistics
        comp = comparison(frame)
    clicks = read_click_tables(folder)  # None without clicks.csv: computed from metrics.csv when it has I@k rows
    finish(folder, frame, {}, title="", comp=comp, write_tables=False, show=False, clicks=clicks)
    return folder.report


@user_errors_in_one_line
def main(argv: list[str] | None = None) -> None:
    """Redraw each run named on the command line and print its report's path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", help="a run folder or its results folder")
    for run in parser.parse_args(argv).runs:
        print(redraw(run))


if __name__ == "__main__":
    main()
