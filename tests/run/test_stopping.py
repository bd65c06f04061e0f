"""Ctrl-C says at once that the run is stopping (a real `ablation run` with embedded Ray)."""

from __future__ import annotations

import logging
import signal
import threading
import time

from helpers import ablation_env, trial_runs, write_study

from ablation.run import signals
from ablation.run.signals import STOPPING


def test_ctrl_c_says_stopping_at_once_then_how_to_resume(tmp_path, ablation_processes):
    path = write_study(
        tmp_path,
        "stopped",
        train={"epochs": 20, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        seeds=[0],
        resources={"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = ablation_processes(
        "run", str(path), "--tracking-uri", uri, env=ablation_env(tmp_path / "home")
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append((time.monotonic(), line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r.info.status == "RUNNING" for r in trial_runs(uri, "stopped")):
            break
        time.sleep(0.3)
    assert proc.poll() is None, "\n".join(t for _, t in lines)
    time.sleep(1.0)  # inside Tune's loop, its SIGINT handler installed
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    out = "\n".join(t for _, t in lines)
    assert proc.returncode == 1, out
    said = [at for at, text in lines if STOPPING in text]
    assert said, out
    print(f"'stopping' {said[0] - sent:.2f}s after SIGINT; exit {lines[-1][0] - sent:.2f}s after")
    assert said[0] - sent < 1.0, out
    assert "continue the study with:" in out


def test_a_failing_stopping_message_does_not_lose_the_stop():
    """The message is written from inside Tune's SIGINT handler: a write that raises there
    (a reentrant write while the progress line redraws) must not escape into the handler."""

    def broken_say(message: str) -> None:
        raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")

    logger = logging.getLogger(signals._TUNE_LOGGER)
    with signals.say_when_stopping(broken_say):
        logger.warning(signals._TUNE_STOP + " (test)")  # raised before the fix
    said = []
    with signals.say_when_stopping(said.append):
        logger.warning(signals._TUNE_STOP + " (test)")
    assert said == [STOPPING]
