"""The private PyTorch switch of ablation/attention/fast/torch_private.py is where it expects it.

When PyTorch is upgraded these fail first and say which name moved; nothing else in the
package reaches into torch's privates, so fixing torch_private.py is the whole upgrade.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

import ablation
from ablation.attention.fast import torch_private

PACKAGE = Path(ablation.__file__).resolve().parent
PRIVATE = re.compile(r"\btorch\._[A-Za-z]")


def test_the_installed_torch_is_the_release_the_adapter_was_written_for():
    assert torch_private.written_for(), (
        f"PyTorch {torch.__version__} is installed; ablation/attention/fast/torch_private.py "
        f"was written for {torch_private.WRITTEN_FOR}: check its switch, then bump WRITTEN_FOR"
    )
    assert torch_private.written_for("2.14.1+cu130") and not torch_private.written_for("2.15.0")


@pytest.mark.parametrize(("module", "name"), torch_private.REACHES)
def test_every_private_name_exists(module, name):
    assert callable(getattr(importlib.import_module(module), name, None)), f"{module}.{name}"


def test_onednn_is_off_inside_and_back_on_after_and_an_off_switch_is_left_off():
    assert torch.backends.mkldnn.is_available()
    assert torch._C._get_mkldnn_enabled()
    with torch_private.onednn_off():
        assert not torch._C._get_mkldnn_enabled()
        assert not torch.backends.mkldnn.enabled  # the same switch as the public flag's
    assert torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        with torch_private.onednn_off():
            pass
        assert not torch._C._get_mkldnn_enabled()
    finally:
        torch._C._set_mkldnn_enabled(True)


def test_another_torch_without_the_switch_leaves_onednn_alone(monkeypatch):
    monkeypatch.delattr(torch._C, "_set_mkldnn_enabled")
    # The pinned torch must have it.
    with pytest.raises(RuntimeError, match="torch_private.py"), torch_private.onednn_off():
        pass
    monkeypatch.setattr(torch, "__version__", "3.0.0")
    with torch_private.onednn_off():
        assert torch._C._get_mkldnn_enabled()


def test_no_other_module_reaches_into_torch_privates():
    reaching = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "torch_private.py" and PRIVATE.search(path.read_text(encoding="utf-8"))
    )
    assert reaching == [], "move these reaches into ablation/attention/fast/torch_private.py"
