"""Cost plots: variant labels never overlap; close values get a legend instead."""

from __future__ import annotations

import pytest

from ablation.report import summarize
from ablation.report.figures import cost_figure


def _summary(synthetic_study_frames, spread: bool):
    variants = [
        {
            "name": f"cbam-variant-{i}",
            "effect": (-3.0 * i) if spread else -0.01 * i,
            # Close costs: CBAM variants differ by a few hundred parameters.
            "params": 270_000 + (40_000 * i if spread else 50 * i),
        }
        for i in range(8)
    ]
    trials, history = synthetic_study_frames(variants, [0, 1, 2], noise=0.01, seed_sd=0.01)
    return summarize(
        trials, history, metric="val_top1_error", mode="min", baseline="cbam-variant-0"
    )


def _label_boxes(fig):
    fig.draw_without_rendering()
    texts = [t for t in fig.axes[0].texts if t.get_text().startswith("cbam-variant-")]
    return [t.get_window_extent() for t in texts]


@pytest.mark.parametrize("spread", [True, False], ids=["spread", "close"])
def test_no_two_labels_overlap(synthetic_study_frames, spread):
    fig = cost_figure(_summary(synthetic_study_frames, spread), "params")
    boxes = _label_boxes(fig)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)
    legend_names = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    if spread:  # far apart: labelled in place
        assert len(boxes) == 8 and not legend_names
    else:  # eight close variants: every name is in a legend
        assert not boxes
        assert legend_names == [f"cbam-variant-{i}" for i in range(8)]
