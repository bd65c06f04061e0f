"""How often the quickstart's sequential rule decides every comparison, for the question sizes
its header weighs (min_effect x seeds), at the paired means and sds measured by
quickstart_sizing.py (and at pessimistic ones): 4000 simulated studies each, through the
service's own rule (`ablation.stats.sequential.replay`, exact t boundaries).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/quickstart_decisions.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quickstart_sizing import decision_rate  # noqa: E402

from ablation.stats.decide import Decision  # noqa: E402
from ablation.stats.sequential import SequentialPlan  # noqa: E402

# (mean, sd) of SE's and CBAM's paired differences to no attention, in error points.
# quickstart_sizing.py --analyze, 6 seeds, on the trials' own 2000 validation images.
MEASURED = {
    "measured, 10 epochs": [(0.30, 0.85), (1.02, 1.22)],
    "pessimistic": [(0.6, 1.1), (1.5, 1.6)],
    "measured, 15 epochs": [(0.27, 0.80), (0.65, 1.25)],
}


def main() -> None:
    for min_effect in (2.0, 2.5, 3.0):
        for start, most in ((3, 6), (3, 8), (2, 8)):
            plan = SequentialPlan(start, most, decision=Decision(min_effect=min_effect), mode="min")
            rates = []
            for name, effects in MEASURED.items():
                rate, trials = decision_rate(plan, effects, 4000)
                rates.append(f"{name} {100 * rate:.0f}% ({trials:.1f} trials)")
            print(f"min_effect {min_effect} seeds {start}..{most}: " + "; ".join(rates), flush=True)


if __name__ == "__main__":
    main()
