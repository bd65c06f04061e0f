"""The forest plot: each variant's paired difference to the baseline, with its intervals."""

from __future__ import annotations

from ablation.report import tables
from ablation.report.figures.style import (
    VERDICT_COLOURS,
    WIDE,
    MarkedFigure,
    empty,
    finite,
    new_figure,
    styled,
)
from ablation.report.summary import Summary
from ablation.vocabulary.verdicts import BETTER, WORSE


@styled
def effect_figure(summary: Summary) -> MarkedFigure:
    """Forest plot: each variant's paired difference to the baseline with its intervals.

    Thick bar: the headline interval (`ci_low`/`ci_high`, the one the verdict agrees with);
    thin line: the BCa bootstrap where there are pairs enough for it; shaded band: +-min_effect
    when the study declares a decision.
    """
    rows = summary.comparisons.to_dict("records") if len(summary.comparisons) else []
    m = tables.metric_label(summary.metric)
    fig, ax = new_figure((WIDE[0], 0.9 + 0.32 * max(len(rows), 1)))
    ok = [r for r in rows if finite(r["mean_diff"])]
    if not ok:
        return empty(fig, ax, "no comparison with the baseline yet")
    core = [
        v for r in ok for v in (r["mean_diff"], r["boot_ci_low"], r["boot_ci_high"]) if finite(v)
    ]
    core.append(0.0)
    margin = summary.decision.min_effect if summary.decision is not None else None
    if margin:
        core += [-margin, margin]
    span = max(core) - min(core) or 1.0
    # The headline intervals may stretch the axis to 2x the core span; beyond that they are
    # clipped with an arrowhead, so one 2-seed variant cannot squash every other row.
    lo_cap, hi_cap = min(core) - span, max(core) + span
    wide = [
        min(max(v, lo_cap), hi_cap) for r in ok for v in (r["ci_low"], r["ci_high"]) if finite(v)
    ]
    x0, x1 = min(core + wide), max(core + wide)
    pad = (x1 - x0) * 0.06 or 0.5
    x0, x1 = x0 - pad, x1 + pad
    if margin:
        ax.axvspan(-margin, margin, color="#e8f0e8", zorder=0)
    ax.axvline(0.0, color="#333333", linestyle=(0, (4, 3)), linewidth=1)
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        klass = r["verdict"] if r["verdict"] in (BETTER, WORSE) else "none"
        c, v = VERDICT_COLOURS[klass], r["variant"]
        level = tables.ci_label(r["ci_level"])
        boot = ""
        if finite(r["boot_ci_low"], r["boot_ci_high"]):
            boot = f", BCa bootstrap 95% CI {tables.fmt_ci(r['boot_ci_low'], r['boot_ci_high'])}"
        tip = (
            f"{v} − {r['baseline']}: {tables.fmt_signed(r['mean_diff'])}, "
            f"{level} {tables.fmt_ci(r['ci_low'], r['ci_high'])}{boot}, "
            f"p_holm {tables.fmt_p(r['p_holm'])}, n={r['n_pairs']}: {r['verdict']}"
        )
        if finite(r["ci_low"], r["ci_high"]):
            a, b = max(r["ci_low"], x0), min(r["ci_high"], x1)
            fig.mark(ax.hlines(y, a, b, color=c, linewidth=4.5), tip, v)
            for end, clipped, arrow in (
                (a, r["ci_low"] < x0, "<"),
                (b, r["ci_high"] > x1, ">"),
            ):
                if clipped:
                    ax.plot([end], [y], marker=arrow, color=c, markersize=5, clip_on=False)
        if finite(r["boot_ci_low"], r["boot_ci_high"]):
            lo, hi = max(r["boot_ci_low"], x0), min(r["boot_ci_high"], x1)
            fig.mark(ax.hlines(y + 0.18, lo, hi, color=c, linewidth=1.2), tip, v)
        if finite(r["mean_diff"]):
            fig.mark(ax.plot([r["mean_diff"]], [y], "s", color=c, markersize=6)[0], tip, v)
    ax.set_xlim(x0, x1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), [r["variant"] for r in reversed(rows)])
    ax.tick_params(axis="y", length=0)
    ax.grid(False, axis="y")
    ax.set_xlabel(f"Δ {m} (variant − baseline)")
    return fig
