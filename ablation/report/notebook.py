"""The notebook API: a study in a store as the report's summary, DataFrames and figures.

    from ablation import open_study
    s = open_study("quickstart", tracking_uri="sqlite:///runs/mlflow.db")
    s.variants, s.comparisons, s.effects, s.trials, s.curves   # pandas DataFrames
    s.figure("forest")                                         # a matplotlib Figure
    s.to("latex")                                              # what `ablation report` writes

`s.summary` is the same `Summary` object `ablation report` and the dashboard render.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from ablation.report import StudyRuns, Summary, study_summary
from ablation.report.export import FORMATS, render
from ablation.report.figures import charts
from ablation.track import stores

# Names a reader may try that are no figure's, and which figures they may mean: the
# figure names are the dashboard's (its element ids) and `ablation report --figures`' files.
NEAR_MISSES = {
    "effects": "s.effects is the main-effects table; its plots are 'effect-0', 'effect-1', ... "
    "(one per factor), and the effects against the baseline are 'forest'",
}
NEAR_MISSES["effect"] = NEAR_MISSES["main-effects"] = NEAR_MISSES["effects"]


@dataclass
class StudyView:
    """One study of a store, loaded once (call `open_study` again to see newer trials)."""

    summary: Summary
    runs: StudyRuns

    @property
    def name(self) -> str:
        return self.summary.study

    @property
    def variants(self) -> pd.DataFrame:
        """One row per variant: status counts, n/mean/std/CI of each metric."""
        return self.summary.variants

    @property
    def comparisons(self) -> pd.DataFrame:
        """One row per non-baseline variant: the paired effect on the study metric."""
        return self.summary.comparisons

    @property
    def effects(self) -> pd.DataFrame:
        """One row per (factor, non-reference level): the factor's main effect."""
        return self.summary.main_effects

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (every status), as read from MLflow."""
        return self.runs.trials

    @property
    def curves(self) -> pd.DataFrame:
        """Learning curves: (variant, metric, epoch) -> n, mean, std."""
        return self.summary.curves

    def figure_names(self) -> list[str]:
        """The names of this study's figures: the dashboard's (`forest`, `curve-val_loss`,
        `effect-0`, ...), the files `ablation report --figures DIR` writes."""
        return [c.name for c in charts(self.summary)]

    def figure(self, name: str) -> Figure:
        """A figure of the dashboard by name: `forest` (each variant's effect against the
        baseline), `curve-val_top1_error`, `effect-0` (a factor's main effect), ...;
        `figure_names()` lists this study's."""
        for chart in charts(self.summary):
            if chart.name == name:
                return chart.figure
        hint = f" ({NEAR_MISSES[name]})" if name in NEAR_MISSES else ""
        raise KeyError(
            f"no figure {name!r}{hint}; this study has: {', '.join(self.figure_names())}"
        )

    def to(self, fmt: str) -> str | bytes:
        """The report in one of `ablation report`'s formats (md, csv, latex, html, json,
        parquet); bytes for parquet."""
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
        return render(self.summary, fmt)


def open_study(study: str, tracking_uri: str | None = None) -> StudyView:
    """The study named `study` in the MLflow store (default: MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db); raises `ablation.report.StudyNotFound` when it is not there, and
    `ablation.track.reader.NoStore` when the store itself is not (none is created)."""
    summary, runs = study_summary(stores.tracking_uri(tracking_uri, None), study)
    return StudyView(summary, runs)
