"""Starting (or joining) Ray for a run, quietly: Ray's and Tune's own messages go to a log file.

A cluster started here listens on loopback only, has no dashboard, gets an auth token of its
own (never one written into ~/.ray), and preloads torch and the trial code in every worker
process as it starts: the workers import while the driver opens the stores, and a trial's first
epoch does not wait for `import torch` (seconds per worker). A study's `"MODULE:NAME"` plugins
found under its folder go to every worker, local or a cluster's, as the job's runtime env
(`py_modules`, docs/study-file.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import AuthenticationError

from ablation.run import ray_private

# Imported by every worker of a cluster the driver starts, before any trial reaches it.
PRELOAD = ("torch", "ablation.run.trainable")

# Where a Ray cluster's auth token comes from (Ray's own variables), and its mode switch.
TOKEN_ENV = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
AUTH_MODE_ENV = "RAY_AUTH_MODE"


class RayAuthRefused(Exception):
    """A token-protected cluster refused this client: no token, or not the cluster's. Its
    message is one line naming the variable to set and what the cluster said."""


# The session directory of the cluster this process started (RayContext.address_info), kept
# for later runs in the same process that find Ray already initialised.
_started_session: Path | None = None
# The plugin modules the Ray this process started carries (None: not started here).
_started_modules: tuple[str, ...] | None = None


def start_ray(address: str | None, log_file: Path, py_modules: Sequence[Path] = ()) -> Path | None:
    """Start (or join) Ray; returns the Ray session directory when there is a local one.

    `py_modules`: the study's plugin packages and module files under its folder; they travel
    to every worker (embedded or a cluster's) in the job's runtime env, so a worker imports
    the plugin as the study's validation did. Ray started earlier in this process by this
    function with other modules is started (or joined) again; Ray started by someone else
    cannot take them, and RuntimeError says so.
    """
    global _started_session, _started_modules
    log_file.parent.mkdir(parents=True, exist_ok=True)
    wanted = tuple(str(p) for p in py_modules)
    if ray.is_initialized() and wanted != (_started_modules or ()):
        if _started_modules is None:
            raise RuntimeError(
                "Ray was started in this process before, without the study's plugin folder: "
                "call ray.shutdown() first (or run the study with `ablation run`)"
            )
        ray.shutdown()
    if not ray.is_initialized():
        if address is None and not (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        ):
            # A fresh local cluster with token auth: give it a token of its own, so Ray does
            # not write one into ~/.ray (Ray turns token mode on, RAY_AUTH_MODE being unset).
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        use_token_from_env()
        options: dict[str, Any] = {}
        if wanted:
            options["runtime_env"] = {"py_modules": list(wanted)}
        if address is None:
            options["include_dashboard"] = False
            options.update(ray_private.preload_options(PRELOAD))
        # ray.init resets Ray's loggers and warns through Python's last-resort handler; its
        # C++ core writes to file descriptor 2 directly: both go to the log file.
        with (
            open(log_file, "a") as sink,
            contextlib.redirect_stderr(sink),
            _fd2_to(sink),
            ray_private.single_machine_mode() if address is None else contextlib.nullcontext(),
        ):
            start = sink.tell()
            try:
                _gcs_takes_the_token(address)
                context = ray.init(
                    address=address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                    **options,
                )
            except (ConnectionError, AuthenticationError) as err:
                sink.flush()
                said = _read_from(log_file, start)
                refused = auth_refusal(address or "", err, said)
                if refused is not None:
                    raise refused from None
                raise
        # A ray:// client context has no address_info: no local session.
        info = getattr(context, "address_info", None) or {}
        _started_session = Path(info["session_dir"]) if info.get("session_dir") else None
        _started_modules = wanted
    _log_ray_to(log_file)
    return _current_session()


def _gcs_takes_the_token(address: str | None) -> None:
    """Ask the GCS at HOST:PORT for its cluster id before ray.init, which retries a refused
    token for about 20 s before it gives up; a client of the GCS alone is answered at once.
    Raises AuthenticationError on a refusal; says nothing when the address is not HOST:PORT,
    accepts no connection within a second, or does not answer as a GCS (Ray's client gives up
    on that after about 12 s): ray.init then reports it as before."""
    host, sep, port = (address or "").rpartition(":")
    if not (sep and host and port.isdigit()) or "://" in host:
        return
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    except OSError:
        return
    try:
        ray_private.ask_gcs(f"{host}:{port}", 2000)
    except (AuthenticationError, ray_private.RayInternalsMoved):
        raise
    except Exception:  # not a GCS, or one too slow to answer: left to ray.init
        return


def use_token_from_env() -> None:
    """A token in the environment is enough: turn Ray's token mode on for this client.

    Ray sends its token only in token mode, and only turns that on by itself for a cluster it
    starts or finds locally; joining `--address HOST:PORT` or submitting to a Jobs API with
    `RAY_AUTH_TOKEN` alone fails. `RAY_AUTH_MODE` set by the user is left as it is.
    """
    if os.environ.get(AUTH_MODE_ENV) is None and any(os.environ.get(v) for v in TOKEN_ENV):
        os.environ[AUTH_MODE_ENV] = "token"
        ray_private.reread_auth_mode()
    ray_private.reload_auth_token()


def auth_refusal(address: str, err: BaseException, said: str = "") -> RayAuthRefused | None:
    """The one line for a cluster that refused our token, or None when `err` is not that.

    `said` is what Ray's core logged while connecting (a GCS refusal is only there); an
    AuthenticationError of the Jobs API carries the cluster's answer itself.
    """
    text = f"{err}\n{said}"
    if not any(k in text for k in ("Unauthenticated", "InvalidAuthToken", "Authentication")):
        return None
    answer = next(
        (
            line.split("Unauthenticated:", 1)[-1].strip()
            for line in said.splitlines()
            if "Unauthenticated" in line
        ),
        str(getattr(err, "message", err)).split("\n", 1)[0],
    )
    given = next((v for v in TOKEN_ENV if os.environ.get(v)), None)
    at = f" at {address}" if address else ""
    if given is None:
        return RayAuthRefused(
            f"the Ray cluster{at} wants an auth token: set RAY_AUTH_TOKEN (or "
            f"RAY_AUTH_TOKEN_PATH) to the cluster's token (the cluster said: {answer})"
        )
    return RayAuthRefused(
        f"the Ray cluster{at} refused the token in {given}: set it to the cluster's token "
        f"(the cluster said: {answer})"
    )


def slots(resources: Any) -> int:
    """How many trials the cluster holds at once with each trial's CPUs and GPUs."""
    total = ray.cluster_resources()
    n = int(total.get("CPU", 1) // resources.cpus_per_trial)
    if resources.gpus_per_trial:
        n = min(n, int(total.get("GPU", 0) // resources.gpus_per_trial))
    return max(1, n)


def _current_session() -> Path | None:
    """The session directory of the Ray this process is connected to, if this process made it.

    Ray has no public call for a session's directory; its session name is public, and is the
    directory's name, so a later ray.init (by the caller) is not mistaken for ours.
    """
    if _started_session is None:
        return None
    try:
        name = ray.get_runtime_context().get_session_name()
    except Exception:  # joined through ray:// (no local node)
        return None
    return _started_session if _started_session.name == name else None


@contextlib.contextmanager
def _fd2_to(sink: Any) -> Iterator[None]:
    """File descriptor 2 (what C++ writes to) goes to `sink` for a while, then comes back."""
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            stream.flush()
    saved = os.dup(2)
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_from(path: Path, offset: int) -> str:
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read()


def _log_ray_to(log_file: Path) -> None:
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
