"""Fixtures of the run tests: one Ray shared by the in-process runs, and a Ray head started
with `ray start --head` on loopback ports for driver processes (tiny study files are
`helpers.write_study`)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile

import pytest
from helpers import BIN, end_processes, free_port, processes_marked, ray_start


@pytest.fixture(scope="session", autouse=True)
def _ray_token_of_our_own():
    """In-process Ray clusters get a token from the environment, never ~/.ray."""
    if not os.environ.get("RAY_AUTH_TOKEN"):
        # RAY_AUTH_MODE stays unset: ray.init then turns token mode on by itself.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A token-protected Ray head of our own on loopback: its GCS and dashboard addresses, and
    the environment its clients use (the token alone). One for the whole session: the tests
    that drive it use stores of their own, and a head costs a cluster start each."""
    temp = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # short: Ray's sockets live under it
    home = tmp_path_factory.mktemp("home")
    gcs, dashboard = free_port(), free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        # Ray's single-machine mode: the head's GCS, raylet and agents bind loopback only.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    env.pop("RAY_ADDRESS", None)
    ray_start(
        temp,
        env,
        "--head",
        "--port",
        str(gcs),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard),
        "--include-dashboard",
        "true",
        "--num-cpus",
        "2",
        "--ray-client-server-port",
        str(free_port()),
    )
    try:
        # The clients get the token alone, as docs/commands.md says: no RAY_AUTH_MODE.
        client_env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
        yield {
            "gcs": f"127.0.0.1:{gcs}",
            "dashboard": f"http://127.0.0.1:{dashboard}",
            "env": client_env,
        }
    finally:
        # Never `ray stop`, which ends every Ray process on the machine.
        end_processes(processes_marked(temp))
        shutil.rmtree(temp, ignore_errors=True)
