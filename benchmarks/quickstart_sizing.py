"""Size a small study by measurement: per-trial seconds, validation curves, paired sds, and how
often the sequential rule decides every comparison with them.

    python benchmarks/quickstart_sizing.py STUDY.yaml [--seeds 0 1 2 3] [--pred-val 4000] \
        [--threads 1] [-o OUT.json]
    python benchmarks/quickstart_sizing.py --analyze OUT.json [OUT2.json ...]

The first form trains every variant of STUDY with each seed, one trial at a time in this
process (`ablation.train.train_trial`, the same function a Ray worker runs, with `--threads`
torch threads), and keeps per trial: the validation error per epoch, the seconds of the call
split into data, training, evaluation and the rest (model build, profiling), and whether each
image of a larger validation set (`--pred-val` images of the same generator, which the
trial's own validation images are the first of in distribution) is classified correctly by
the final model. The second form reads those files and prints, per comparison against the
baseline: the mean paired difference and its sd over seeds when validated on the first 500,
1000, 2000, ... of those images, and the share of simulated studies (normal paired
differences at that mean and sd) in which the study's sequential rule
(`ablation.stats.sequential.replay`) decides every comparison, with the trials it runs.

Validation noise: two models that differ on a fraction q of n images disagree by a binomial
amount; that is most of the seed-to-seed sd of a paired difference here, which is why the
paired sd is shown against the number of validation images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def measure(path: str, seeds: list[int], pred_val: int, threads: int) -> dict:
    """Train every variant x seed of the study at `path`; the figures `analyze` reads."""
    import torch

    from ablation.data.build import build_datasets
    from ablation.study import load_study
    from ablation.study.design import all_variants
    from ablation.study.schema import TrialConfig
    from ablation.study.trials import trials_for_variant
    from ablation.train import train_trial

    torch.set_num_threads(threads)
    study = load_study(path)
    out = {"study": path, "threads": threads, "pred_val": pred_val, "trials": []}
    for variant in all_variants(study):
        for spec in trials_for_variant(study, variant, seeds):
            config = TrialConfig.model_validate(spec.config).settings()
            data_cfg = config.dataset.as_dict()
            started = time.perf_counter()
            build_datasets(data_cfg)  # what a worker's first trial pays (cached after)
            data_seconds = time.perf_counter() - started
            curve, epochs, final_state = [], [], {}

            def report(m: dict, curve=curve, epochs=epochs, final_state=final_state) -> None:
                curve.append(m["val_top1_error"])
                epochs.append((m["epoch_seconds"], m["images_per_second"]))
                final_state["model"] = {k: v.clone() for k, v in m["state"]["model"].items()}

            started = time.perf_counter()
            final = train_trial(config, spec.seed, report)
            call_seconds = time.perf_counter() - started
            n_train = config.dataset.train_samples
            train_phase = sum(n_train / ips for _, ips in epochs)
            epoch_total = sum(s for s, _ in epochs)
            correct = _correct(config, final_state["model"], pred_val)
            out["trials"].append(
                {
                    "variant": spec.variant,
                    "seed": spec.seed,
                    "curve": curve,
                    "final_error": final["val_top1_error"],
                    "seconds": {
                        "call": round(call_seconds, 3),
                        "data": round(data_seconds, 3),
                        "train": round(train_phase, 3),
                        "eval": round(epoch_total - train_phase, 3),
                        "rest": round(call_seconds - epoch_total, 3),
                    },
                    "correct": "".join("1" if c else "0" for c in correct),
                }
            )
            print(
                f"{spec.variant} seed {spec.seed}: {final['val_top1_error']:.2f}% in "
                f"{call_seconds:.1f}s; curve {' '.join(f'{e:.1f}' for e in curve)}",
                file=sys.stderr,
                flush=True,
            )
    out["baseline"] = study.baseline
    out["decision"] = study.decision.model_dump() if study.decision else None
    seq = study.sequential_seeds
    out["sequential"] = {"start": seq.start, "max": seq.max} if seq else None
    out["mode"] = str(study.metric.mode)
    return out


def _correct(config, model_state: dict, n: int) -> np.ndarray:
    """Whether the final model classifies each of `n` validation images correctly."""
    import torch

    from ablation.data.build import build_datasets
    from ablation.models import build_model

    data_cfg = {**config.dataset.as_dict(), "val_samples": n}
    _, val_ds, info = build_datasets(data_cfg)
    m = config.model
    model = build_model(
        m.backbone,
        m.attention,
        dict(m.cbam),
        num_classes=info["num_classes"],
        in_channels=info["in_channels"],
    )
    model.load_state_dict(model_state)
    model.eval()
    x, y = val_ds.tensors
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return (pred == y).numpy()


def analyze(files: list[str], studies: int = 4000) -> None:
    """Print paired sds by validation size and the sequential rule's decision rate."""
    from ablation.stats.decide import Decision
    from ablation.stats.sequential import SequentialPlan

    for f in files:
        data = json.loads(Path(f).read_text())
        trials = data["trials"]
        base = data["baseline"]
        by = {(t["variant"], t["seed"]): t for t in trials}
        variants = list(dict.fromkeys(t["variant"] for t in trials))
        seeds = sorted({t["seed"] for t in trials})
        print(f"== {data['study']} ({f})")
        for v in variants:
            ts = [by[(v, s)] for s in seeds if (v, s) in by]
            curves = np.array([t["curve"] for t in ts])
            secs = {k: np.mean([t["seconds"][k] for t in ts]) for k in ts[0]["seconds"]}
            tail = curves[:, -3:].mean(axis=0)
            print(
                f"  {v}: final {curves[:, -1].mean():.2f}% (sd {curves[:, -1].std(ddof=1):.2f}); "
                f"last 3 epochs {' '.join(f'{e:.2f}' for e in tail)}; seconds "
                + ", ".join(f"{k} {s:.1f}" for k, s in secs.items())
            )
        n_pred = data["pred_val"]
        sizes = [s for s in (500, 1000, 2000, 3000, 4000, 6000) if s <= n_pred]
        compared = [v for v in variants if v != base]
        stats: dict[int, list[tuple[float, float]]] = {}
        for size in sizes:
            row = []
            for v in compared:
                d = [
                    100 * (_acc(by[(base, s)], size) - _acc(by[(v, s)], size))
                    for s in seeds
                    if (v, s) in by and (base, s) in by
                ]
                # variant - baseline in error points: baseline accuracy - variant accuracy.
                row.append((float(np.mean(d)), float(np.std(d, ddof=1))))
            stats[size] = row
            print(
                f"  val {size}: "
                + "; ".join(
                    f"{v} {m:+.2f} sd {s:.2f}" for v, (m, s) in zip(compared, row, strict=True)
                )
            )
        if data.get("sequential") and data.get("decision"):
            plan = SequentialPlan(
                data["sequential"]["start"],
                data["sequential"]["max"],
                decision=Decision(**data["decision"]),
                mode=data["mode"],
            )
            for size, row in stats.items():
                rate, trials_mean = decision_rate(plan, row, studies)
                print(
                    f"  val {size}: sequential {plan.start}..{plan.max} decides every "
                    f"comparison in {100 * rate:.1f}% of {studies} simulated studies, "
                    f"{trials_mean:.1f} trials on average"
                )


def _acc(trial: dict, size: int) -> float:
    c = trial["correct"][:size]
    return c.count("1") / len(c)


def decision_rate(
    plan, effects_sds: list[tuple[float, float]], studies: int, seed: int = 20261206
) -> tuple[float, float]:
    """Share of simulated studies whose every comparison ends decided (better, worse or
    equivalent) within the plan's seeds, and their mean trials (baseline included)."""
    from ablation.stats.sequential import replay

    rng = np.random.default_rng(seed)
    means = np.array([m for m, _ in effects_sds])[None, :, None]
    sds = np.array([max(s, 1e-6) for _, s in effects_sds])[None, :, None]
    x = means + sds * rng.standard_normal((studies, len(effects_sds), plan.max))
    rep, used = replay(plan, x)
    decided = rep.decision > 0
    undecided_code = _undecided_code()
    decided &= rep.decision != undecided_code
    trials = used.sum(axis=1) + used.max(axis=1)
    return float(decided.all(axis=1).mean()), float(trials.mean())


def _undecided_code() -> int:
    from ablation.stats import sequential

    return int(sequential._UNDECIDED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--analyze", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--pred-val", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--out", default=None)
    args = parser.parse_args(argv)
    if args.analyze:
        analyze(args.files)
        return 0
    figures = measure(args.files[0], args.seeds, args.pred_val, args.threads)
    text = json.dumps(figures)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
