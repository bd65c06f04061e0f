"""SIGTERM and SIGHUP stop a run the way Ctrl-C does.

`docker stop`, Kubernetes, Slurm preemption and `timeout` send SIGTERM; a closed terminal
sends SIGHUP. Ray's driver handler for SIGTERM exits from inside the signal handler, and the
process then aborts (SIGABRT) with a native stack dump, leaving the runs RUNNING. Each of the
two signals is instead handed to whatever handles SIGINT at that moment: Tune's handler while
trials run (it ends the Tuner cleanly), else Python's, which raises KeyboardInterrupt. Either
way the driver marks running trials and the parent KILLED and the command prints the resume
command (exit 1).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
STOPPING = (
    "stopping: ending the running trials (marked KILLED, rerun next time) and closing the "
    "study run; Ctrl-C again to stop at once"
)
# What Tune's SIGINT handler logs, through this logger, the moment it takes the signal.
_TUNE_LOGGER = "ray.tune.tune"
_TUNE_STOP = "Stop signal received"


def _like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIG_IGN or SIG_DFL set by someone else: still stop like Ctrl-C
        raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """Route SIGTERM and SIGHUP to the SIGINT handler. Call it after `ray.init` (which installs
    a SIGTERM handler of its own); a no-op outside the main thread (signals go there only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        signal.signal(sig, _like_ctrl_c)


class _SayStopping(logging.Handler):
    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith(_TUNE_STOP):
            return
        # This runs inside Tune's SIGINT handler, possibly while the progress line is being
        # redrawn: a reentrant write to the same stream can raise (RuntimeError on a buffered
        # stream, OSError on a closed pipe). The stop matters more than the message, so an
        # error here must not escape into the handler and lose it.
        with contextlib.suppress(Exception):
            self.say(STOPPING)


@contextlib.contextmanager
def say_when_stopping(say: Callable[[str], None]) -> Iterator[None]:
    """While Tune runs, `say(STOPPING)` the moment its SIGINT handler takes Ctrl-C (or a
    SIGTERM/SIGHUP handed to it): ending the running trials takes seconds, and Tune's own
    word goes to the Ray log file, so the terminal would otherwise stay silent meanwhile."""
    logger = logging.getLogger(_TUNE_LOGGER)
    handler = _SayStopping(say)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
