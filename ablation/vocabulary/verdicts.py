"""The words a comparison with the baseline ends in, defined once for every page and export.

With a study's ``decision:`` a comparison is `BETTER`, `WORSE`, `EQUIVALENT` (within
+-min_effect) or `UNDECIDED`; at a sequential look it may `CONTINUE` (another seed is run).
Without ``decision:`` a significant comparison is `BETTER`/`WORSE`, else `NO_DIFFERENCE`; below
two paired seeds it is `NOT_ENOUGH_SEEDS`.
"""

from __future__ import annotations

BETTER = "better"
WORSE = "worse"
EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
# The four ends of a decided comparison (a study with ``decision:``).
DECISIONS = (BETTER, WORSE, EQUIVALENT, UNDECIDED)
# At a sequential look: not decided yet, another seed is run.
CONTINUE = "continue"
# Without ``decision:``: a test that did not reject says only this much.
NO_DIFFERENCE = "no detectable difference at this n"
NOT_ENOUGH_SEEDS = "not enough seeds"
