"""The trial table of `ablation run FILE --dry-run`: what a study would run, and at what cost;
with a `decision`, the power plan: the seeds each comparison needs.

One row per trial (variant x seed) with its factor levels, trial id, parameters and GFLOPs.
The cost is measured on the built model (ablation.profile.profile_model) at the study's image
size, once per distinct model (seeds do not change it). Nothing is trained or started.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.stats.decide import Decision, seeds_for_power
from ablation.stats.sequential import SequentialPlan, forecast
from ablation.study.design import (
    all_variants,
    factor_names,
    factor_space,
    fractional_design,
    level_label,
    sample_budget,
    trial_count,
)
from ablation.study.plugins import plugin_data_shape
from ablation.study.schema import Study
from ablation.study.trials import canonical_json, trials_for_variant
from ablation.vocabulary.datasets import DATASETS
from ablation.vocabulary.plugins import is_plugin


def trial_table(study: Study, *, cost: bool = True) -> pd.DataFrame:
    """One row per trial, in run order: variant, kind, `factor.<key>` (level labels), seed,
    trial_id, overrides (JSON, named variants), params, gflops.

    `df.attrs["notes"]` holds lines describing the design (trial count, baseline, a fraction's
    aliasing, an Optuna search space); `format_trial_table` prints them under the table.
    `cost=False` skips building models (params and gflops are then missing).
    """
    keys = list(study.factors)
    rows: list[dict[str, Any]] = []
    costs: dict[str, tuple[int, float]] = {}
    per_variant = []
    for variant in all_variants(study):
        per_variant.append((variant, trials_for_variant(study, variant)))
    for i in range(len(study.seeds)):
        for variant, trials in per_variant:
            trial = trials[i]
            row: dict[str, Any] = {
                "variant": variant.name,
                "kind": _kind(variant, study.baseline),
            }
            for key in keys:
                row[f"factor.{key}"] = (
                    level_label(variant.levels[key]) if key in variant.levels else ""
                )
            row["seed"] = trial.seed
            row["trial_id"] = trial.trial_id
            row["overrides"] = "" if variant.kind == "design" else canonical_json(variant.overrides)
            if cost:
                row["params"], row["gflops"] = _cost(trial.config, costs)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["notes"] = _notes(study, len(per_variant))
    return df


def _kind(variant: Any, baseline: str | None) -> str:
    """`design`, `named`, prefixed `baseline` and suffixed `(base)` for the base config."""
    kind = ("baseline " if variant.name == baseline else "") + variant.kind
    return kind + " (base)" if variant.is_base and variant.kind == "design" else kind


def _cost(config: dict[str, Any], cache: dict[str, tuple[int, float]]) -> tuple[int, float]:
    model_cfg, data_cfg = config["model"], config["dataset"]
    in_channels, num_classes, size = _shape(data_cfg)
    key = canonical_json([model_cfg, in_channels, num_classes, size])
    if key not in cache:
        import torch

        from ablation.models import build_model
        from ablation.profile import profile_model

        model = build_model(
            model_cfg["backbone"],
            model_cfg["attention"],
            model_cfg["cbam"],
            num_classes=num_classes,
            in_channels=in_channels,
            attention_args=model_cfg["attention_args"],
            backbone_args=model_cfg["backbone_args"],
        )
        # Counting, not timing: one thread gives the same counts and avoids OpenMP's spinning,
        # which makes a tiny forward pass take seconds on a busy machine.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            stats = profile_model(model, (1, in_channels, size, size), repeats=1)
        finally:
            torch.set_num_threads(threads)
        cache[key] = (int(stats["params"]), float(stats["gflops"]))
    return cache[key]


def _shape(data_cfg: dict[str, Any]) -> tuple[int, int, int]:
    """(in_channels, num_classes, image size) of a trial's data set; a plugin data set says
    its shape when called."""
    if is_plugin(data_cfg["name"]):
        return plugin_data_shape(data_cfg)
    return (*_data_shape(data_cfg), data_cfg["image_size"])


def _data_shape(data_cfg: dict[str, Any]) -> tuple[int, int]:
    """(in_channels, num_classes) of the data set, without loading it."""
    data = DATASETS[data_cfg["name"]]
    if data.num_classes is not None:
        return data.in_channels, data.num_classes
    root = Path(data_cfg["root"]).expanduser()
    tree = root / "train" if (root / "train").is_dir() else root
    classes = [p for p in tree.iterdir() if p.is_dir()] if tree.is_dir() else []
    return data.in_channels, max(len(classes), 1)


def _notes(study: Study, n_variants: int) -> list[str]:
    seeds = len(study.seeds)
    notes = [
        f"study {study.study}: design {study.design}, {trial_count(study)}; "
        f"baseline {study.baseline}; "
        f"metric {study.metric.name} ({study.metric.mode}, epoch "
        f"{study.metric.epoch or study.train.epochs})"
    ]
    if study.design == "fractional":
        notes.extend(fractional_design(study).describe().splitlines())
    if study.design == "optuna":
        space = factor_space(study)
        size = 1
        for levels in space.values():
            size *= len(levels)
        notes.append(
            f"optuna ({study.search.sampler}) proposes up to {study.search.n_trials} variants "
            f"from {size} level combinations, each x {seeds} seeds; the rows above are the "
            "baseline and the named variants"
        )
        short = factor_names(list(space))
        for key, levels in space.items():
            notes.append(f"  {short[key]}: {', '.join(level_label(v) for v in levels)}")
    return notes


def format_trial_table(df: pd.DataFrame) -> str:
    """The trial table as aligned text (factor columns by short name), then the notes."""
    shown = df.copy()
    factor_cols = [c for c in shown.columns if c.startswith("factor.")]
    short = factor_names([c.removeprefix("factor.") for c in factor_cols])
    shown = shown.rename(columns={f"factor.{k}": v for k, v in short.items()})
    if "overrides" in shown and not shown["overrides"].astype(bool).any():
        shown = shown.drop(columns="overrides")
    if "params" in shown:
        shown["params"] = shown["params"].map(lambda n: f"{n / 1e6:.3f}M")
    if "gflops" in shown:
        shown["gflops"] = shown["gflops"].map(lambda g: f"{g:.4f}")
    text = shown.to_string(index=False) if len(shown) else "(no trials)"
    notes = df.attrs.get("notes", [])
    return "\n".join([text, "", *notes]) if notes else text


# --- power planning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedSd:
    """A paired sd to plan with, and where it came from (said in the plan)."""

    sd: float
    source: str  # e.g. "study cbam-pilot (shares the baseline's trial ids)", "decision.pilot_sd"
    seconds_per_trial: float | None = None  # mean train time of the trials it came from
    pairs: int | None = None  # the paired differences it rests on (None: a declared sd)
    comparisons: int | None = None  # ... over this many comparisons

    def __str__(self) -> str:
        """`2.8 from this study's own finished trials, 12 pairs over 2 comparisons`."""
        rests = ""
        if self.pairs is not None:
            over = f" over {self.comparisons} comparisons" if (self.comparisons or 0) > 1 else ""
            rests = f", {self.pairs} pairs{over}"
        return f"{self.sd:.3g} from {self.source}{rests}"


def power_plan(study: Study, trials: pd.DataFrame, earlier: PairedSd | None = None) -> list[str]:
    """The lines `ablation run FILE --dry-run` prints under the trial table for a study with a
    `decision`: per comparison the seeds its declared power at min_effect needs (Holm's
    correction accounted for at its first step, alpha / m), the trials and time that implies.

    The paired sd comes from `earlier` (the study's own finished trials, else another study
    in the same store with its training setup: `ablation.report.pilot`), else
    `decision.pilot_sd`; with neither the plan says so and suggests a
    pilot. Empty without a `decision`.
    """
    d = study.decision
    if d is None:
        return []
    variants = list(pd.unique(trials["variant"])) if len(trials) else []
    compared = [v for v in variants if v != study.baseline]
    m = max(len(compared), 1)
    lines = [
        f"power plan: min_effect {d.min_effect:g} ({study.metric.name}), alpha {d.alpha:g} "
        f"(Holm over {m} comparison{'s' if m != 1 else ''}: planned at alpha / {m} = "
        f"{d.alpha / m:.4g}), power {d.power:g}"
    ]
    plan_sd = earlier
    if plan_sd is None and d.pilot_sd is not None:
        plan_sd = PairedSd(d.pilot_sd, "decision.pilot_sd")
    if plan_sd is None:
        return lines + [
            "  no paired sd to plan with: the study has no finished pairs yet, no other study "
            "in this store shares the baseline's trial ids or its training setup (data, "
            "backbone, epochs, optimizer, schedule), and decision.pilot_sd is not set;",
            "  run a pilot first (e.g. seeds: [0, 1, 2]) or set decision.pilot_sd "
            "(the sd of variant - baseline differences over seeds, in metric units)",
        ]
    n = seeds_for_power(plan_sd.sd, d.min_effect, alpha=d.alpha / m, power=d.power)
    lines.append(f"  paired sd {plan_sd}")
    for v in compared:
        lines.append(f"  {v} vs {study.baseline}: {n} seeds")
    total = n * len(variants)
    cost = f"  {n} seeds x {len(variants)} variants = {total} trials"
    if plan_sd.seconds_per_trial:
        minutes = total * plan_sd.seconds_per_trial / 60
        cost += (
            f", about {minutes:.0f} min of trial time (at {plan_sd.seconds_per_trial:.0f} s each)"
        )
    lines.append(cost)
    seq = study.sequential_seeds
    if seq is not None and compared:
        lines += sequential_forecast(study, plan_sd.sd, len(compared), n)
    elif seq is None:
        have = len(study.seeds)
        if have < n:
            lines.append(f"  the study runs {have} seeds: fewer than the {n} planned")
    return lines


def sequential_plan(study: Study) -> SequentialPlan:
    """The group-sequential plan of a study with `seeds: {start, max}` and `decision`."""
    seq, decision = study.sequential_seeds, study.decision
    if seq is None or decision is None:
        raise ValueError(f"study {study.study!r} has no sequential seeds with a decision")
    return SequentialPlan(
        seq.start,
        seq.max,
        decision=Decision(**decision.model_dump()),
        mode=study.metric.mode,
    )


def sequential_forecast(study: Study, sd: float, comparisons: int, fixed_n: int) -> list[str]:
    """What the study's sequential seeds are expected to cost and find, against the fixed-n
    plan of `fixed_n` seeds: simulated at the plan's paired sd through the driver's own rule."""
    plan = sequential_plan(study)
    f = forecast(plan, sd, comparisons, fixed_n)
    variants = comparisons + 1
    t = f.trials
    lines = [
        f"  sequential seeds {plan.start}..{plan.max}: at most {plan.max * variants} trials; "
        f"simulated at paired sd {sd:.3g} ({f.studies} studies per case,",
        "  every comparison at the same true effect):",
        f"    power at min_effect {f.power:.2f} (fixed {fixed_n} seeds: {f.fixed_power:.2f}), "
        f"equivalent at 0 {f.equivalent:.2f} (fixed: {f.fixed_equivalent:.2f})",
        f"    mean trials: {t['0']:.0f} if every effect is 0, {t['min_effect']:.0f} at min_effect, "
        f"{t['2 x min_effect']:.0f} at 2 x min_effect (fixed: {f.fixed_trials})",
    ]
    if f.power < plan.decision.power:
        lines.append(
            f"    power {f.power:.2f} is below the declared {plan.decision.power:g}: raise max "
            f"(1.3-1.4 x the {fixed_n} planned seeds matched the fixed plan's power in "
            "simulation, docs/study-file.md)"
        )
    return lines


# --- time estimate ----------------------------------------------------------------------------

# What a trial costs beyond its epochs' training and evaluation, and a run beyond its trials,
# on the embedded Ray: split by `python benchmarks/study_overhead.py` (data, model build and
# profiling inside the trial; scheduling and recording between trials; Ray and store start-up
# once). The epochs themselves are measured on the built model by `measure_throughput`.
# Measured on the quickstart on the idle 2-core machine (2026-12-06): 15 epochs, 13 trials,
# twice: 5.2 and 5.6 s per trial, 18.2 and 22.4 s per run; 10 epochs, 19 trials: 5.6 and 16.2.
# Per trial: model and profiling 0.3-0.4 s, data under 0.1, the rest scheduling, recording and
# the slot left idle while a look waits for its last trial (with tiny trials, where no trial
# waits long, the per-trial part was 1.2 s).
TRIAL_EXTRA_SECONDS = 5.5
RUN_STARTUP_SECONDS = 19.0
# A timing step of a big model at its full batch can take minutes on a CPU: the measured batch
# is cut so one training step is about this much work (per-image speed barely changes).
_TIMED_GFLOP = 20.0


@dataclass(frozen=True)
class Throughput:
    """Images per second of one model, training (forward, backward, step) and evaluating;
    `params`: the parameters of the model timed (built as the trial builds it)."""

    train: float
    evaluate: float
    threads: int
    batch: int
    params: int | None = None


def measure_throughput(
    config: dict[str, Any], *, threads: int = 1, gflops: float | None = None
) -> Throughput:
    """Time a few training steps and evaluation batches of the trial's model on random images
    of its data set's shape, at its batch size (smaller for big models), on `threads` CPU
    threads. Seconds, not minutes: the dry run calls it once per distinct model."""
    import torch
    from torch import nn

    from ablation.models import build_model

    model_cfg, data_cfg = config["model"], config["dataset"]
    in_channels, num_classes, size = _shape(data_cfg)
    batch = int(config["train"]["batch_size"])
    if gflops:
        batch = max(2, min(batch, int(_TIMED_GFLOP / (3 * gflops))))
    model = build_model(  # as the trial builds it: its arguments change its cost
        model_cfg["backbone"],
        model_cfg["attention"],
        model_cfg["cbam"],
        num_classes=num_classes,
        in_channels=in_channels,
        attention_args=model_cfg.get("attention_args"),
        backbone_args=model_cfg.get("backbone_args"),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, in_channels, size, size)
    y = torch.randint(0, num_classes, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def train_step() -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(step: Any, budget: float = 1.0) -> float:
        """Images per second of the fastest of up to 5 steps (after a warm-up): the least
        disturbed by whatever else the machine runs, as on the idle machine a study wants."""
        step()  # warm-up: allocation, kernel choice
        started, fastest = time.perf_counter(), math.inf
        for _ in range(5):
            t = time.perf_counter()
            step()
            fastest = min(fastest, time.perf_counter() - t)
            if time.perf_counter() - started > budget:
                break
        return batch / fastest

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.train()
        train = timed(train_step)
        model.eval()
        with torch.inference_mode():
            evaluate = timed(lambda: model(x))
    finally:
        torch.set_num_threads(before)
    params = sum(p.numel() for p in model.parameters())
    return Throughput(train=train, evaluate=evaluate, threads=threads, batch=batch, params=params)


def trial_seconds(config: dict[str, Any], sizes: tuple[int, int], speed: Throughput) -> float:
    """A trial's expected seconds: its epochs at `speed` over (train, val) images, plus
    TRIAL_EXTRA_SECONDS. Training drops a ragged last batch, as the trial's loader does."""
    n_train, n_val = sizes
    batch = int(config["train"]["batch_size"])
    trained = n_train - n_train % batch if n_train > batch else n_train
    epoch = trained / speed.train + n_val / speed.evaluate
    return config["train"]["epochs"] * epoch + TRIAL_EXTRA_SECONDS


def data_sizes(data_cfg: dict[str, Any]) -> tuple[int, int] | None:
    """(train, val) images of a trial: the section's sizes, else those of an in-memory data
    set (built: cheap for them) or of a plugin data set (called, once per process, as the
    validation did); None for a file-backed set without both sizes given."""
    train, val = data_cfg.get("train_samples"), data_cfg.get("val_samples")
    if train and val:
        return int(train), int(val)
    if is_plugin(data_cfg["name"]):
        from ablation.data.build import plugin_datasets

        args = json.dumps(data_cfg.get("args") or {}, sort_keys=True)
        train_ds, val_ds, _ = plugin_datasets(data_cfg["name"], args)
        return len(train_ds), len(val_ds)
    if not DATASETS[data_cfg["name"]].in_memory:
        return None
    from ablation.data.build import build_datasets

    train_ds, val_ds, _ = build_datasets(data_cfg)
    return len(train_ds), len(val_ds)


def time_estimate(study: Study, trials: pd.DataFrame, *, cpus: int | None = None) -> list[str]:
    """The lines `--dry-run` prints about time: each distinct model's measured speed on this
    machine, the seconds per trial that implies, and the study's wall time on the embedded
    Ray (`cpus` CPUs, default this machine's) for the trials it plans (a sequential study:
    its first look and its most). Empty where nothing can be estimated here."""
    res = study.resources
    if res.gpus_per_trial or not len(trials):
        return []  # measured on this CPU, it would say nothing of a GPU trial
    threads = max(1, int(res.cpus_per_trial))
    cpus = cpus or os.cpu_count() or 1
    slots = max(1, res.max_concurrent or int(cpus // res.cpus_per_trial))
    by_variant = {v.name: trials_for_variant(study, v)[0].config for v in all_variants(study)}
    speeds: dict[str, Throughput] = {}
    seconds: dict[str, float] = {}
    lines = []
    for name, config in by_variant.items():
        if name not in set(trials["variant"]):
            continue
        sizes = data_sizes(config["dataset"])
        if sizes is None:
            return ["time: no estimate (the data set's size is known only by reading it)"]
        key = canonical_json([config["model"], config["dataset"], config["train"]["batch_size"]])
        if key not in speeds:
            gflops = _cost(config, {})[1]
            speeds[key] = measure_throughput(config, threads=threads, gflops=gflops)
        speed = speeds[key]
        seconds[name] = trial_seconds(config, sizes, speed)
        lines.append(
            f"  {name}: {speed.train:.0f} images/s training, {speed.evaluate:.0f} evaluating "
            f"-> about {seconds[name]:.0f} s per trial"
        )
    counts = trials["variant"].value_counts()
    work = sum(seconds[v] * n for v, n in counts.items())
    longest = max(seconds.values())
    # Design optuna: the table holds the fixed variants only; the sampler's (trial_count's
    # "up to") are estimated at the slowest fixed variant's seconds per trial.
    sampled = sample_budget(study) * len(study.seeds)
    work += sampled * longest
    count = len(trials) + sampled
    wall = RUN_STARTUP_SECONDS + max(work / slots, longest)
    head = (
        f"time, measured here (batch {next(iter(speeds.values())).batch}, {threads} thread(s) "
        f"per trial, {slots} trial slot(s); plus {TRIAL_EXTRA_SECONDS:g} s per trial and "
        f"{RUN_STARTUP_SECONDS:g} s per run of data, start-up and recording):"
    )
    total = f"  {'up to ' * bool(sampled)}{count} trial{'s' * (count != 1)}: about {wall:.0f} s"
    seq = study.sequential_seeds
    if seq is not None:
        per_seed = sum(seconds.values())
        most = RUN_STARTUP_SECONDS + max(per_seed * seq.max / slots, longest)
        total += f" at the first look; at most {seq.max * len(seconds)} trials, about {most:.0f} s"
    rounds = math.ceil(count / slots)
    lines.append(total + f" ({rounds} round{'s' * (rounds != 1)} of {slots})")
    return [head, *lines]
