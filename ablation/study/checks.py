"""The checks of a whole study file beyond its schema, each problem at its own line.

Factor and variant keys are dotted paths: each is checked against the schema and each level /
override is applied to the base configuration and validated, so a typo or a wrong-typed level
is reported at its own line, before anything runs. Then the design, the decision and the set of
variants (distinct names and configurations, a known baseline).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ablation.study.design import (
    DesignError,
    base_variant,
    design_variants,
    fractional_design,
    named_variants,
)
from ablation.study.document import Loc
from ablation.study.problems import Problems, error_message, key_path
from ablation.study.schema import (
    Study,
    TrialConfig,
    apply_overrides,
    config_problems,
    get_path,
    path_problem,
    suggest,
)
from ablation.study.trials import canonical_json, resolve_config
from ablation.vocabulary.metrics import COMPARABLE_EPOCH

VARIANT_KEYS = ("name", "description")


def check_study(data: dict[str, Any], problems: Problems) -> Study | None:
    """The Study in `data` if the file has no problem, else None with each one in `problems`."""
    study: Study | None = None
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        problems.add_validation(exc)
    # Factors and variants are checked against the base configuration whenever it is valid,
    # even if other parts of the file are not, so one run of `validate` shows everything.
    base = _base_config(data, problems)
    factors, variants = data.get("factors"), data.get("variants")
    if isinstance(factors, dict):
        _check_factors(
            {k: v for k, v in factors.items() if isinstance(k, str) and isinstance(v, list)},
            base,
            problems,
        )
    if isinstance(variants, list):
        _check_variants(variants, base, problems)
    if study is None or problems:
        return None
    _check_design(study, problems)
    if problems:
        return None
    _check_variant_set(study, problems)
    return None if problems else study


def _base_config(data: dict[str, Any], problems: Problems) -> dict[str, Any] | None:
    """The validated base sections as plain data, or None if they have problems (reported)."""
    sections = {s: data[s] for s in ("dataset", "model", "train", "metric") if s in data}
    try:
        config = TrialConfig.model_validate(sections)
    except ValidationError:
        return None  # reported by the validation of the whole file
    found = config_problems(config)
    for loc, message in found:
        problems.add(loc, message)
    return None if found else config.model_dump(mode="json")


def _validate_config(
    raw: dict[str, Any], problems: Problems, where: dict[str, Loc], fallback: Loc, what: str
) -> dict[str, Any] | None:
    """Validate a base config with overrides applied, as plain data, or None on problems.

    `where` maps each overridden dotted key to the study key its problems are reported at; a
    problem elsewhere (one the override causes in another key) is reported at `fallback`.
    """
    found: list[tuple[Loc, str]] = []
    checked = None
    try:
        checked = TrialConfig.model_validate(raw)
    except ValidationError as exc:
        found = [(tuple(err["loc"]), error_message(err, TrialConfig)) for err in exc.errors()]
    else:
        found = [(tuple(loc), msg) for loc, msg in config_problems(checked)]
    for inner, msg in found:
        owner = next((k for k in where if inner[: k.count(".") + 1] == tuple(k.split("."))), None)
        sub = key_path(inner)
        tail = "" if sub == owner else f" ({sub})"
        problems.add(where[owner] if owner else fallback, f"{what}{tail}: {msg}")
    return None if found or checked is None else checked.model_dump(mode="json")


def _check_factors(
    factors: dict[str, list[Any]], base: dict[str, Any] | None, problems: Problems
) -> None:
    for key, levels in factors.items():
        at: Loc = ("factors", key)
        why = path_problem(key)
        if why:
            problems.add(at, why)
            continue
        if not levels:
            problems.add(at, "a factor needs at least one level")
            continue
        if base is None:  # levels are checked against a valid base configuration only
            continue
        seen: list[tuple[int, str]] = []
        for i, level in enumerate(levels):
            config = _validate_config(
                apply_overrides(base, {key: level}),
                problems,
                {key: at + (i,)},
                at + (i,),
                f"level {i} ({level!r})",
            )
            if config is None:
                continue
            value = canonical_json(get_path(config, key))
            twin = next((j for j, v in seen if v == value), None)
            if twin is not None:
                problems.add(
                    at + (i,),
                    f"level {i} ({level!r}) is the same as level {twin}; list each level once",
                )
            seen.append((i, value))


def _check_variants(variants: list[Any], base: dict[str, Any] | None, problems: Problems) -> None:
    names: dict[str, int] = {}
    for i, item in enumerate(variants):
        if not isinstance(item, dict):
            continue  # reported by the validation of the whole file
        at: Loc = ("variants", i)
        name = item.get("name")
        if "name" not in item:
            problems.add(at, "a variant needs a name")
        elif not isinstance(name, str) or not name.strip():
            problems.add(at + ("name",), f"must be a non-empty string; got {name!r}")
        elif name in names:
            problems.add(
                at + ("name",), f"variant {name!r} is defined twice (also variants[{names[name]}])"
            )
        else:
            names[name] = i
        if "description" in item and not isinstance(item["description"], str):
            problems.add(at + ("description",), "must be a string")
        overrides: dict[str, Any] = {}
        for key, value in item.items():
            if key in VARIANT_KEYS:
                continue
            if not isinstance(key, str) or "." not in key:
                problems.add(
                    at + (key,),
                    f"unknown key{suggest(str(key), VARIANT_KEYS)}; a variant has name, "
                    "description and dotted keys into the configuration (e.g. model.attention)",
                )
                continue
            why = path_problem(key)
            if why:
                problems.add(at + (key,), why)
                continue
            overrides[key] = value
        if overrides and base is not None:
            _validate_config(
                apply_overrides(base, overrides),
                problems,
                {k: at + (k,) for k in overrides},
                at,
                f"variant {name!r}",
            )


def _check_design(study: Study, problems: Problems) -> None:
    if study.fractional is not None and study.design != "fractional":
        problems.add(
            ("fractional",), f"applies only to design: fractional (design is {study.design})"
        )
    if study.design == "optuna":
        if not study.factors:
            problems.add(("design",), "design optuna needs factors for the sampler to choose among")
        if study.search.n_trials is None:
            problems.add(("search",), "design optuna needs search.n_trials (the trial budget)")
    elif study.design == "fractional":
        if not study.factors:
            problems.add(("design",), "design fractional needs two-level factors")
        else:
            try:
                fractional_design(study)
            except DesignError as exc:
                problems.add(exc.key, exc.message)
    _check_decision(study, problems)
    es = study.early_stopping
    if es is not None:
        if study.metric.name not in COMPARABLE_EPOCH:
            problems.add(
                ("early_stopping",),
                f"needs a per-epoch metric to stop on; metric.name is {study.metric.name}",
            )
        if es.grace_epochs > study.train.epochs:
            problems.add(
                ("early_stopping", "grace_epochs"),
                f"{es.grace_epochs} is past train.epochs = {study.train.epochs}; "
                "nothing would stop early",
            )


def _check_decision(study: Study, problems: Problems) -> None:
    """Sequential seeds need a decision to stop on, start <= max, and no ASHA."""
    seq = study.sequential_seeds
    if seq is None:
        return
    if study.decision is None:
        problems.add(
            ("seeds",),
            "{start, max} adds seeds until each comparison is decided, so it needs a "
            "decision section: decision: {min_effect: ..., alpha: 0.05, power: 0.8}",
        )
    if seq.start > seq.max:
        problems.add(("seeds", "start"), f"start {seq.start} is past max = {seq.max}")
    if study.early_stopping is not None:
        problems.add(
            ("early_stopping",),
            "cannot be used with sequential seeds (seeds: {start, max}): ASHA stops trials "
            "by their early epochs, so the final-epoch pairs the sequential looks test would "
            "be missing; remove early_stopping or give seeds as a list",
        )
    if study.design == "optuna":
        problems.add(
            ("seeds",),
            "sequential seeds need the variants fixed in advance; design optuna samples them",
        )


def _check_variant_set(study: Study, problems: Problems) -> None:
    """Names and configurations distinct across design and named variants; baseline known."""

    designed, named = design_variants(study), named_variants(study)
    design_names = {v.name for v in designed}
    seen: dict[str, str] = {}
    for v in designed:
        seen[canonical_json(resolve_config(study, v.overrides))] = v.name
    for i, v in enumerate(named):
        if v.name in design_names:
            problems.add(
                ("variants", i, "name"), f"{v.name!r} is also the name of a design variant"
            )
            continue
        config = canonical_json(resolve_config(study, v.overrides))
        if config in seen:
            problems.add(
                ("variants", i),
                f"variant {v.name!r} has the same configuration as variant {seen[config]!r} "
                "(same trials); drop it, or set baseline to that variant's name",
            )
        seen.setdefault(config, v.name)
    names = [v.name for v in designed + named]
    space_base = base_variant(study) if study.design == "optuna" else None
    if space_base is not None:
        names.append(space_base.name)
    if study.baseline is not None:
        if study.baseline not in names:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            problems.add(
                ("baseline",),
                f"{study.baseline!r} is not a variant of this study"
                f"{suggest(study.baseline, names)}; variants: {shown}",
            )
        return
    base_variants = [v.name for v in designed + named if v.is_base]
    if not base_variants and space_base is not None:
        base_variants = [space_base.name]
    if base_variants:
        study.baseline = base_variants[0]
    else:
        problems.add(
            ("baseline",),
            "required here: no variant equals the base configuration, so name the reference "
            "variant (a named variant or a design variant name)",
        )
