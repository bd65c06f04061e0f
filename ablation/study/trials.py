"""Variants, trials and trial ids.

A variant is one configuration (the base sections with some dotted keys overridden); a trial is
(variant, seed). A trial's id is a hash of everything that determines its result, so the same
trial is never run twice and any result-relevant change gives a new id:

    sha256(canonical JSON of {config, seed, data, code[, plugins]})[:16]

- config: the resolved sections dataset/model/train/metric (plain data);
- seed: the trial seed;
- data: the data identity (name, root, image size, sample counts, split seed, generator knobs);
- code: `code_version(backend)`, a hash of the source files that shape results plus the package
  version: the reference sources (RESULT_SOURCES) and those of the CBAM backend(s) the
  config's `train.cbam_backend` may run (BACKEND_SOURCES, C++ included), less any Python module
  that declares `RESULT_NEUTRAL = True` (speed-only code a named test proves equal);
- plugins (only for a config that uses code from outside the package): `plugin_code`, each
  "MODULE:NAME" plugin's sources (the .py files of its top-level package under the study's
  folder, or of an editable/path install) or its distribution's name and version, and a zoo
  attention's library and version. Editing a plugin changes the ids of exactly the trials
  that use it.

The study's name and description are not in it: the same trial in another study is the same
trial. Canonical JSON (sorted keys, fixed separators) and sha256 make ids equal across
processes and machines (no `hash()`, no dict order).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablation.data.identity import data_identity
from ablation.study.schema import (
    CONFIG_SECTIONS,
    TrialConfig,
    apply_overrides,
    fill_defaults,
    get_path,
)
from ablation.vocabulary.attention import ZOO_DISTRIBUTIONS
from ablation.vocabulary.plugins import (
    PLUGIN_KEYS,
    distribution_identity,
    is_plugin,
    plugin_identity,
)

if TYPE_CHECKING:
    from ablation.study.schema import Study

# Source files whose content decides every trial's result (relative to the package directory):
# the reference CBAM (attention/*.py, not attention/fast/), its knobs, models, data, training.
RESULT_SOURCES = ("attention/*.py", "vocabulary/*.py", "models/*.py", "data/*.py", "train.py")
# What each train.cbam_backend may run besides the reference; "auto" may pick the kernels
# (whose fallback is the stock-op fused path) or the reference (ablation.attention.cbam).
_KERNELS = ("attention/fast/*.py", "attention/fast/*.cpp")
BACKEND_SOURCES: dict[str, tuple[str, ...]] = {
    "reference": (),
    "fused": (
        "attention/fast/__init__.py",
        "attention/fast/fused.py",
        "attention/fast/torch_private.py",
    ),
    "kernels": _KERNELS,
    "auto": _KERNELS,
}
# A module-level `RESULT_NEUTRAL = True` leaves a Python file out of the hash.
_NEUTRAL = re.compile(rb"^RESULT_NEUTRAL\s*=\s*True\b", re.MULTILINE)
ID_LENGTH = 16


@dataclass(frozen=True)
class Variant:
    """One configuration of a study.

    `levels`: factor levels (dotted key -> level) of a design variant; empty for named variants.
    `overrides`: every dotted key the variant sets (for a design variant, its levels).
    `kind`: "design" or "named". `is_base`: the variant equals the base configuration (the
    default of every factor), which makes it the natural reference of a design.
    """

    name: str
    levels: dict[str, Any]
    overrides: dict[str, Any]
    kind: str = "design"
    is_base: bool = False
    description: str = ""


@dataclass(frozen=True)
class TrialSpec:
    """One trial: a variant run with one seed. `config` is what `train_trial` receives."""

    trial_id: str
    study: str
    variant: str
    seed: int
    levels: dict[str, Any]
    config: dict[str, Any] = field(repr=False)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal data, equal text, in any process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@functools.cache
def code_version(backend: str = "auto") -> str:
    """Hash of the package version and the sources a trial on CBAM `backend` may run.

    Computed once per process and backend. Training code changes -> new trial ids, so a stale
    result is never reused for changed code; an edit to a backend the trial cannot run keeps
    its id.
    """
    return source_hash(Path(__file__).resolve().parent.parent, _package_version(), backend)


def source_hash(root: Path, version: str, backend: str = "auto") -> str:
    """Hash of `version` and the result sources under the package directory `root`:
    RESULT_SOURCES and BACKEND_SOURCES[backend], less the RESULT_NEUTRAL Python modules."""
    if backend not in BACKEND_SOURCES:
        raise ValueError(f"cbam_backend must be one of {', '.join(BACKEND_SOURCES)}")
    paths = {p for pattern in RESULT_SOURCES + BACKEND_SOURCES[backend] for p in root.glob(pattern)}
    digest = hashlib.sha256(version.encode() + b"\0")
    for path in sorted(paths):
        if path.suffix == ".py" and _NEUTRAL.search(path.read_bytes()):
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(source_digest(path) + b"\0")
    return digest.hexdigest()[:ID_LENGTH]


def source_digest(path: Path) -> bytes:
    """The sha256 of one source file's bytes (what an edit to it changes)."""
    return hashlib.sha256(path.read_bytes()).digest()


def trial_backend(config: dict[str, Any]) -> str:
    """The CBAM backend whose sources shape `config`'s result: train.cbam_backend with CBAM
    attention, else "reference" (no CBAM module runs, so no backend can matter)."""
    if (config.get("model") or {}).get("attention", "cbam") != "cbam":
        return "reference"
    return (config.get("train") or {}).get("cbam_backend", "auto")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ablation")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def plugin_code(config: dict[str, Any], folder: str | Path | None = None) -> dict[str, Any]:
    """The identity of the code outside this package that shapes `config`'s result: each
    "MODULE:NAME" it uses (ablation.vocabulary.plugins.PluginSource: its sources' bytes, or an
    installed release's name and version) and the library of a zoo attention (its name and
    version). Empty for a config of built-ins only, so their trial ids keep their payload."""
    found: dict[str, Any] = {}
    for key in PLUGIN_KEYS:
        value = get_path(config, key)
        if is_plugin(value):
            found[value] = plugin_identity(value, folder)
    attention = config["model"]["attention"]
    library = ZOO_DISTRIBUTIONS.get(attention)
    if library:
        found[f"zoo:{attention}"] = distribution_identity(library)
    return found


def trial_id(config: dict[str, Any], seed: int, plugins: dict[str, Any] | None = None) -> str:
    """The deterministic id of running `config` (resolved sections) with `seed`; `plugins`:
    `plugin_code(config, study folder)`, for a config that uses code from outside the package."""
    payload = {
        "config": config,
        "seed": seed,
        "data": data_identity(config["dataset"]),
        "code": code_version(trial_backend(config)),
    }
    if plugins:
        payload["plugins"] = plugins
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:ID_LENGTH]


def resolve_config(study: Study, overrides: dict[str, Any]) -> dict[str, Any]:
    """The base sections with `overrides` applied, validated, as plain JSON-able data.

    Raises pydantic.ValidationError if the result is invalid (a loaded study's variants never
    are: `load_study` checked each one).
    """
    raw = apply_overrides(study.base_config(), overrides)
    checked = TrialConfig.model_validate(raw)
    return fill_defaults({s: getattr(checked, s).model_dump(mode="json") for s in CONFIG_SECTIONS})


def trials_for_variant(
    study: Study, variant: Variant, seeds: Sequence[int] | None = None
) -> list[TrialSpec]:
    """The variant's trials, one per seed of the study, in the order of `study.seeds`; or one
    per seed of `seeds` (sequential seeds: the seeds a look asks for beyond the first ones)."""
    config = resolve_config(study, variant.overrides)
    plugins = plugin_code(config, study.folder)
    return [
        TrialSpec(
            trial_id=trial_id(config, seed, plugins),
            study=study.study,
            variant=variant.name,
            seed=seed,
            levels=dict(variant.levels),
            config=config,
        )
        for seed in (study.seeds if seeds is None else seeds)
    ]
