"""The keys a trial's Tune results carry besides its metrics.

Shared by the trainable (in the worker) and the driver's callbacks, and kept apart from both so
the driver side reads them without importing torch.
"""

FINAL = "ablation_final"  # on the last report: it carries the final metrics
FAILED = "ablation_failed"  # the trial's own failure (TrialFailed), with its message
