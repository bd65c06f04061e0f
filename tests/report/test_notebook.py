"""The notebook API, and the README's example of it executed as written."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from ablation.report import StudyNotFound, study_summary
from ablation.report.export import render
from ablation.report.figures import charts

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if "open_study" in b]
    assert len(found) == 1, "the README has one open_study example"
    # The block is indented inside a list item.
    return "\n".join(line[3:] if line.startswith("   ") else line for line in found[0].splitlines())


@pytest.fixture
def quickstart_here(
    tmp_path, monkeypatch, fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    variants = [
        {"name": "none", "effect": 0.0, "levels": {"model.attention": "none"}},
        {"name": "cbam", "effect": -2.0, "levels": {"model.attention": "cbam"}},
        {"name": "se", "effect": -1.0, "levels": {"model.attention": "se"}},
    ]
    trials, history = synthetic_study_frames(variants, [0, 1, 2])
    # The README's store: sqlite:///mlflow.db in the working directory.
    db = Path(fresh_mlflow_uri.removeprefix("sqlite:///"))
    monkeypatch.chdir(db.parent)
    # Written through the absolute URI: MLflow caches a store per URI string, so a relative
    # one would reach the previous test's file.
    log_synthetic_study(fresh_mlflow_uri, "quickstart", trials, history, baseline="none")
    return db.parent


def test_the_readme_example_runs_and_gives_frames_and_figures(quickstart_here):
    scope: dict = {}
    exec(compile(_readme_example(), str(README), "exec"), scope)
    s = scope["s"]
    for name in ("variants", "comparisons", "effects", "trials", "curves"):
        assert isinstance(getattr(s, name), pd.DataFrame) and not getattr(s, name).empty, name
    assert set(s.variants["variant"]) == {"none", "cbam", "se"}
    assert set(s.comparisons["variant"]) == {"cbam", "se"}
    assert len(s.trials) == 9
    assert isinstance(scope["fig"], Figure) and scope["fig"].axes
    # One vocabulary: the README's figure is the dashboard's forest plot, under its name there.
    forest = next(c for c in charts(s.summary) if c.name == "forest")
    assert forest.kind == "effect" and "forest" in s.figure_names()
    assert scope["fig"].axes[0].get_title() == forest.figure.axes[0].get_title()
    assert "\\toprule" in scope["table"]
    # The summary is the report's: the same Markdown as `ablation report` renders.
    assert s.to("md") == render(study_summary("sqlite:///mlflow.db", "quickstart")[0], "md")


def test_open_study_says_what_is_missing(quickstart_here):
    from ablation import open_study

    s = open_study("quickstart", tracking_uri="sqlite:///mlflow.db")
    with pytest.raises(KeyError, match="forest"):
        s.figure("nope")
    # `s.effects` is the main-effects table: "effects" as a figure says which figures are whose.
    with pytest.raises(KeyError) as info:
        s.figure("effects")
    assert "'forest'" in str(info.value) and "'effect-0'" in str(info.value)
    assert "main-effects table" in str(info.value)
    with pytest.raises(ValueError, match="latex"):
        s.to("docx")
    with pytest.raises(StudyNotFound):
        open_study("absent", tracking_uri="sqlite:///mlflow.db")
