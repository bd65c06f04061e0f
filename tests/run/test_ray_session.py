"""The quick look at a GCS before ray.init: silent wherever it cannot tell a refusal.

A refused token itself (missing or wrong, answered in seconds instead of ray.init's ~20 s of
retries) is tested on a real token-protected cluster in test_processes.py."""

from __future__ import annotations

import socket

from ablation.run import ray_private
from ablation.run.ray_session import _gcs_takes_the_token


def test_addresses_that_are_not_host_port_are_left_to_ray_init():
    for address in (None, "", "auto", "local", "ray://127.0.0.1:10001", "127.0.0.1"):
        assert _gcs_takes_the_token(address) is None


def test_only_a_listening_port_is_asked_and_a_closed_one_is_left_to_ray_init(monkeypatch):
    asked = []

    # Ray's client would wait about 12 s on a closed port
    monkeypatch.setattr(ray_private, "ask_gcs", lambda *args: asked.append(args))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        assert _gcs_takes_the_token(f"127.0.0.1:{port}") is None
        assert asked == [(f"127.0.0.1:{port}", 2000)]  # a listening port is asked
    asked.clear()
    assert _gcs_takes_the_token(f"127.0.0.1:{port}") is None  # now closed
    assert asked == []
