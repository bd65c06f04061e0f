"""Ray's private APIs that ablation/run/ray_private.py uses are where it expects them.

When Ray is upgraded, these fail first and say which name moved; nothing else in the package
reaches into Ray's privates, so fixing ray_private.py is the whole upgrade.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from pathlib import Path

import pytest
import ray

import ablation
from ablation.run import ray_private

PACKAGE = Path(ablation.__file__).resolve().parent
# `ray._x`, `from ray._x import`, `ray.init(_system_config=...)`: a reach into Ray's privates.
PRIVATE = re.compile(r"\bray\._\w|\bfrom ray\._\w|_system_config")


def test_the_installed_ray_is_the_release_the_adapter_was_written_for():
    assert ray_private.written_for(), (
        f"Ray {ray.__version__} is installed; ablation/run/ray_private.py was written for "
        f"{ray_private.WRITTEN_FOR}: check each of its reaches against this Ray, then bump "
        "WRITTEN_FOR"
    )


@pytest.mark.parametrize(("module", "name"), ray_private.REACHES)
def test_every_private_name_exists(module, name):
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone"


def test_the_private_calls_take_the_arguments_given_them():
    from ray._private import ray_constants, worker
    from ray._raylet import AuthenticationTokenLoader, Config, InnerGcsClient

    params = list(inspect.signature(InnerGcsClient.standalone).parameters)
    assert params == ["gcs_address", "cluster_id", "timeout_ms"]
    assert list(inspect.signature(Config.initialize).parameters) == ["config_list"]
    assert callable(AuthenticationTokenLoader.instance().reset_cache)
    assert isinstance(ray_constants.ENABLE_RAY_CLUSTER, bool)
    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    # ray.init takes _system_config through **kwargs, and the C++ core knows the key.
    assert 'kwargs.pop("_system_config"' in inspect.getsource(worker.init)
    raylet = Path(importlib.import_module("ray._raylet").__file__).read_bytes()
    assert b"preload_python_modules" in raylet


def test_no_other_module_reaches_into_ray_privates():
    root = PACKAGE.parent
    sources = [*PACKAGE.rglob("*.py"), *(root / "benchmarks").glob("*.py")]
    reaching = sorted(
        str(path.relative_to(root))
        for path in sources
        if path.name != "ray_private.py" and PRIVATE.search(path.read_text(encoding="utf-8"))
    )
    assert reaching == [], "move these reaches into ablation/run/ray_private.py"


def test_single_machine_mode_is_put_back(monkeypatch):
    from ray._private import ray_constants

    env = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    monkeypatch.delenv(env, raising=False)
    before = ray_constants.ENABLE_RAY_CLUSTER
    with ray_private.single_machine_mode():
        assert os.environ[env] == "0" and ray_constants.ENABLE_RAY_CLUSTER is False
    assert env not in os.environ and ray_constants.ENABLE_RAY_CLUSTER is before
    monkeypatch.setenv(env, "1")
    with ray_private.single_machine_mode():
        assert os.environ[env] == "0"
    assert os.environ[env] == "1"


def test_another_ray_gets_no_preload_and_a_clear_error_where_a_reach_moved(monkeypatch):
    assert ray_private.preload_options(["torch"]) == {
        "_system_config": {"preload_python_modules": ["torch"]}
    }
    assert ray_private.written_for("2.60.3") and not ray_private.written_for("2.61.0")
    monkeypatch.setattr(ray, "__version__", "3.0.0")
    assert ray_private.preload_options(["torch"]) == {}
    monkeypatch.delattr(importlib.import_module("ray._raylet"), "Config")
    with pytest.raises(ray_private.RayInternalsMoved, match=r"Ray 3\.0\.0 has no ray\._raylet"):
        ray_private.reread_auth_mode()
