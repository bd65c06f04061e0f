"""The CBAM ablation service.

`from ablation import open_study` is the notebook entry point (`ablation.report.notebook`); it
is imported on first use, so `import ablation` (every command) stays free of pandas and
matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_study"]


def __getattr__(name: str) -> Any:
    if name == "open_study":
        from ablation.report.notebook import open_study

        return open_study
    raise AttributeError(f"module 'ablation' has no attribute {name!r}")
