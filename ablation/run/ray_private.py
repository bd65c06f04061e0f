"""Every use of Ray's private APIs, in one place: what each does, why no public API serves.

Ray 2.60 has no public call for five things a run needs: preloading modules in every worker,
asking a GCS about a token before `ray.init`'s retries, switching a client to token mode,
re-reading the auth token, and binding a local cluster to loopback. Each function below
reaches for one of them and says why. They were written against Ray `WRITTEN_FOR` (the
version pyproject.toml pins); on another Ray, the two that only save time fall back to doing
nothing, and the three a run cannot do without raise `RayInternalsMoved`, which names what
moved and what to do. tests/run/test_ray_private.py checks every name and signature used
here, and that no other module of the package reaches into Ray's privates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import ray

# The Ray release (major, minor) whose private names and behaviour this module was written for.
WRITTEN_FOR = (2, 60)

# Every private name used below (module, attribute), for the test that checks they exist.
REACHES = (
    ("ray._raylet", "InnerGcsClient"),
    ("ray._raylet", "Config"),
    ("ray._raylet", "AuthenticationTokenLoader"),
    ("ray._private.ray_constants", "ENABLE_RAY_CLUSTER"),
    ("ray._private.ray_constants", "ENABLE_RAY_CLUSTERS_ENV_VAR"),
)


class RayInternalsMoved(RuntimeError):
    """A private Ray API that a run needs is not where Ray `WRITTEN_FOR` keeps it."""


def written_for(version: str | None = None) -> bool:
    """Whether `version` (default: the installed Ray's) is the release this module knows."""
    major, minor, *_ = (version or ray.__version__).split(".")
    return (int(major), int(minor)) == WRITTEN_FOR


def preload_options(modules: Sequence[str]) -> dict[str, Any]:
    """`ray.init` keyword arguments that make every worker of a cluster started here import
    `modules` as it starts, so a trial's first epoch does not wait for `import torch`.

    Ray's only way is the private `_system_config` (its `preload_python_modules` key); an
    unknown key there stops the cluster from starting, so another Ray gets no preload.
    """
    if not written_for():
        return {}
    return {"_system_config": {"preload_python_modules": list(modules)}}


def ask_gcs(address: str, timeout_ms: int) -> None:
    """Connect a client of the GCS alone to HOST:PORT `address`; raises Ray's
    AuthenticationError at once when the GCS refuses this process's token.

    `ray.init` retries a refused token for about 20 s before it gives up; Ray has no public
    client of the GCS alone. Another Ray skips the question (ray.init then reports, slower).
    """
    try:
        from ray._raylet import InnerGcsClient
    except ImportError as err:
        if written_for():
            raise _moved("ray._raylet.InnerGcsClient", err) from None
        return
    InnerGcsClient.standalone(address, None, timeout_ms)


def reread_auth_mode() -> None:
    """Make Ray read `RAY_AUTH_MODE` again: it caches its config when first read, and sends a
    token only in token mode. Ray's own switch to token mode
    (authentication_token_setup._enable_token_auth) re-reads it the same way."""
    _raylet("Config").initialize("")


def reload_auth_token() -> None:
    """Make Ray read the auth token from the environment again.

    Ray caches the token it first read in this process; a process that starts or joins a second
    cluster (a notebook, a test session) must read the current one. Ray's own
    `ray get-auth-token` CLI calls the same private loader.
    """
    _raylet("AuthenticationTokenLoader").instance().reset_cache()


@contextlib.contextmanager
def single_machine_mode() -> Iterator[None]:
    """While a local cluster starts: Ray's single-machine mode, every socket on loopback.

    `_node_ip_address="127.0.0.1"` alone still leaves the GCS, raylet and agents listening on
    every interface (Ray 2.60). Ray's own one-machine mode (its default on macOS and Windows,
    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`) binds them all to loopback; the processes it starts
    read the environment variable, this one reads `ray_constants.ENABLE_RAY_CLUSTER`, fixed
    when ray was imported, hence the private attribute set here. Both are put back once the
    cluster is up: joining a real cluster (`--address`) later in the process is unchanged.
    """
    try:
        from ray._private import ray_constants

        env, before = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, ray_constants.ENABLE_RAY_CLUSTER
    except (ImportError, AttributeError) as err:
        # Starting without it would listen on every interface: refuse rather than fall back.
        raise _moved("ray._private.ray_constants.ENABLE_RAY_CLUSTER", err) from None
    before_env = os.environ.get(env)
    os.environ[env] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = before_env


def _raylet(name: str) -> Any:
    """`ray._raylet.<name>`, or RayInternalsMoved saying what to do."""
    try:
        import ray._raylet as raylet

        return getattr(raylet, name)
    except (ImportError, AttributeError) as err:
        raise _moved(f"ray._raylet.{name}", err) from None


def _moved(what: str, err: BaseException) -> RayInternalsMoved:
    known = ".".join(map(str, WRITTEN_FOR))
    return RayInternalsMoved(
        f"Ray {ray.__version__} has no {what}, which ablation uses as Ray {known}.x has it "
        f"({err}): install ray=={known}.* or update ablation/run/ray_private.py"
    )
