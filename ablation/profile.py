"""Cost of a model: parameters, GFLOPs and inference latency (`ablation profile`, trials, dry runs).

Counting rule: FLOPs are counted by torch.utils.flop_counter.FlopCounterMode, which counts
matrix products and convolutions (2 FLOPs per multiply-add) and nothing else (no pooling,
activations, elementwise products or normalisation). We halve its count, so one multiply-add
= 1 FLOP, the convention of the CBAM paper's table, and report per image. CBAM is counted
through its reference composition (the equations), not the fast path, which pools with matrix
products. The paper used its own counter, so our numbers are ours, not the paper's.
"""

from __future__ import annotations

import difflib
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ablation.attention.fast import reference_path
from ablation.vocabulary.cbam import KINDS

FLOPS_RULE = (
    "one multiply-add = 1 FLOP, per image; convolutions and matrix products only "
    "(torch.utils.flop_counter.FlopCounterMode count / 2)"
)
WARMUP = 3


def profile_model(
    model: nn.Module, input_shape: tuple[int, ...], *, repeats: int = 10
) -> dict[str, Any]:
    """Params (int), GFLOPs per image (float), median latency (ms) of a batch of `input_shape`.

    The model runs in eval mode under torch.inference_mode on the device of its parameters;
    its training mode is restored afterwards. Latency is the median of `repeats` timed forward
    passes after WARMUP untimed ones, for the whole batch as given.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    params = sum(p.numel() for p in model.parameters())
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.randn(input_shape, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            counter = FlopCounterMode(display=False)
            with counter, reference_path():
                model(x)
            gflops = counter.get_total_flops() / 2 / input_shape[0] / 1e9
            for _ in range(WARMUP):
                model(x)
            times = []
            for _ in range(repeats):
                _synchronize(device)
                start = time.perf_counter()
                model(x)
                _synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return {"params": params, "gflops": gflops, "latency_ms": statistics.median(times) * 1e3}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _as_list(value: str) -> list[str]:
    # channel_pool=avg,max or channel_pool=[avg,max]
    return [item.strip() for item in value.strip().strip("[]").split(",") if item.strip()]


def _as_int(value: str) -> int:
    return int(value)


def _as_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError


# How each kind of knob value (ablation.vocabulary.cbam.KINDS) is read from text.
_CONVERTERS = {
    "int": (_as_int, "an integer"),
    "list": (_as_list, "a comma-separated list"),
    "str": (str, "a string"),
    "bool": (_as_bool, "true or false"),
}
_KNOB_TYPES = {name: _CONVERTERS[kind] for name, kind in KINDS.items()}


def parse_knobs(pairs: list[str]) -> dict[str, Any]:
    """CBAM knobs from `k=v` words, `k` bare or spelled as in a study file
    (`model.cbam.kernel_size=3`); raises ValueError naming the bad word."""
    knobs: dict[str, Any] = {}
    for pair in pairs:
        key, value = _split(pair)
        key = key.removeprefix(f"{_CBAM}.")
        if key not in _KNOB_TYPES:
            raise ValueError(
                f"unknown CBAM knob {key!r}{_did_you_mean(key, list(_KNOB_TYPES))}; "
                f"allowed: {', '.join(_KNOB_TYPES)}"
            )
        if key in knobs:
            raise ValueError(f"CBAM knob {key!r} given twice")
        convert, kind = _KNOB_TYPES[key]
        try:
            knobs[key] = convert(value)
        except ValueError:
            raise ValueError(f"{key} must be {kind}; got {value!r}") from None
    return knobs


# The study file's spellings of what `ablation profile` takes as k=v words.
_CBAM, _ATTENTION_ARGS, _BACKBONE_ARGS = "model.cbam", "model.attention_args", "model.backbone_args"


@dataclass(frozen=True)
class ModelWords:
    """What the k=v words of `ablation profile` set: CBAM's knobs, a zoo or plugin attention's
    keywords, a plugin backbone's keywords."""

    cbam: dict[str, Any]
    attention_args: dict[str, Any]
    backbone_args: dict[str, Any]


def parse_model_words(pairs: list[str], attention: str) -> ModelWords:
    """Split `k=v` words as a study file would spell them: `model.cbam.K=V` (or a bare CBAM
    knob, with attention cbam), `model.attention_args.K=V` (or a bare `K=V`, with any other
    attention), `model.backbone_args.K=V`. Values of arguments are read as YAML scalars
    (`3`, `0.5`, `true`, `[a, b]`). Raises ValueError naming the bad word, with the key meant."""
    cbam_words, attention_args, backbone_args = [], {}, {}
    for pair in pairs:
        key, value = _split(pair)
        head, _, leaf = key.rpartition(".")
        if head in (_ATTENTION_ARGS, _BACKBONE_ARGS) and leaf:
            (attention_args if head == _ATTENTION_ARGS else backbone_args)[leaf] = _scalar(value)
        elif head == _CBAM or (not head and attention == "cbam"):
            cbam_words.append(pair)
        elif not head:
            attention_args[key] = _scalar(value)
        else:
            spelled = [f"{_CBAM}.{k}" for k in _KNOB_TYPES] + [
                f"{_ATTENTION_ARGS}.{leaf}",
                f"{_BACKBONE_ARGS}.{leaf}",
            ]
            raise ValueError(
                f"unknown key {key!r}{_did_you_mean(key, spelled)}; give model.cbam.KNOB, "
                "model.attention_args.KEY or model.backbone_args.KEY"
            )
    return ModelWords(parse_knobs(cbam_words), attention_args, backbone_args)


def _split(pair: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise ValueError(f"expected k=v, got {pair!r}")
    return key, value


def _scalar(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
