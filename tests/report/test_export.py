"""Every report format written and read back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from pooling_study import pooling_summary

from ablation.report import export, tables


@pytest.fixture(scope="module")
def summary(synthetic_study_frames):
    names = ("no_attention", "cbam_k3", "cbam_k7", "cbam_k3_max", "cbam_k7_max")
    return pooling_summary(synthetic_study_frames, names, study="cbam_50%_&_more")


def test_paper_table(summary):
    t = tables.paper_table(summary)
    assert t.columns.tolist() == ["Description", "Params", "GFLOPs", "Top-1 err", "Top-5 err"]
    row = t.set_index("Description").loc["no_attention (baseline)"]
    assert row["Params"] == "0.27M"
    assert row["GFLOPs"] == "0.041"
    v = summary.variants.set_index("variant").loc["no_attention"]
    assert row["Top-1 err"] == f"{v['val_top1_error.mean']:.2f} ± {v['val_top1_error.std']:.2f}"


def test_every_format_written_and_read_back(summary, tmp_path):
    paths = {p.suffix: p for p in export.write_all(summary, tmp_path)}
    assert set(paths) == {".md", ".csv", ".tex", ".html", ".json", ".parquet"}
    numeric = tables.variants_numeric(summary)

    for df in (pd.read_csv(paths[".csv"]), pd.read_parquet(paths[".parquet"])):
        assert df["variant"].tolist() == numeric["variant"].tolist()
        assert df["n_failed"].tolist() == numeric["n_failed"].tolist()
        pd.testing.assert_series_equal(
            df["val_top1_error.mean"], numeric["val_top1_error.mean"], check_names=False
        )
        pd.testing.assert_series_equal(
            df["vs_baseline.p_holm"], numeric["vs_baseline.p_holm"], check_names=False
        )

    data = json.loads(paths[".json"].read_text())
    assert data["format"] == "ablation-report/1"
    assert data["baseline"] == "no_attention"
    assert [c["variant"] for c in data["comparisons"]] == summary.comparisons.variant.tolist()
    assert data["comparisons"][0]["mean_diff"] == pytest.approx(summary.comparisons.mean_diff[0])
    assert len(data["trials"]) == 15
    assert {t["status"] for t in data["trials"]} == {"FINISHED", "FAILED", "STOPPED"}
    assert data["interactions"] and data["main_effects"]

    md = paths[".md"].read_text()
    assert "| Description | Params | GFLOPs | Top-1 err | Top-5 err |" in md
    assert "Trials not finished" in md and "loss is nan" in md

    page = paths[".html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert len(re.findall(r"<table\b", page)) == len(tables.sections(summary))


def _check_latex_structure(tex: str) -> None:
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") >= 3
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == tex.count(r"\begin{tabular}")
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    body = [re.sub(r"\\(label|begin|end)\{[^}]*\}", "", line) for line in body]
    assert not any(
        re.search(
            r"(?<!\\)[_%#$^~]",
            line.replace("$\\pm$", "")
            .replace("$\\times$", "")
            .replace("$\\Delta$", "")
            .replace("$\\alpha$", ""),
        )
        for line in body
    )
    # Every row has exactly one unescaped & per column boundary.
    ncols = 0
    for line in tex.splitlines():
        if m := re.match(r"\\begin\{tabular\}\{([lr]+)\}", line):
            ncols = len(m.group(1))
        elif line.endswith(r"\\"):
            assert len(re.findall(r"(?<!\\)&", line)) == ncols - 1, line
    assert r"no\_attention" in tex and r"cbam\_50\%\_\&\_more" in tex


def test_latex_compiles_or_is_well_formed(summary, tmp_path):
    tex = export.to_latex(summary)
    _check_latex_structure(tex)
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex not installed: structure checked only")
    (tmp_path / "report.tex").write_text(tex)
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{report.tex}\n\\end{document}\n"
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "main.pdf").stat().st_size > 1000


def test_verdict_lines_and_paper_markdown(summary):
    text = export.paper_markdown(summary)
    assert text.splitlines()[0].startswith("| Description |")
    for variant in summary.comparisons.variant:
        assert f"{variant} vs no_attention:" in text
    assert "1 failed, 1 stopped" in text


def test_unknown_format_is_an_error(summary):
    with pytest.raises(ValueError, match="unknown report format"):
        export.render(summary, "xlsx")
