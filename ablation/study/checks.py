"""The checks of a study file, in stages, each problem at its own line.

A `Draft` carries the file through the stages (`load.STAGES`): the schema first, then the base
configuration's rules across keys, the factors' and variants' keys and values (each level and
override is applied to the base configuration and validated), the design and decision, the
variant names and the baseline, and whether the variants differ. Every stage runs, so one
`ablation validate` shows every problem; a check that cannot run because of a problem found
before it (a factor level cannot be checked against a base configuration that is itself
invalid) is named once, in a `(not checked)` line, rather than silently left out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
from ablation.study.problems import NOT_CHECKED, Problem, Problems, error_message, key_path
from ablation.study.schema import (
    CONFIG_SECTIONS,
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

# Why a check could not run, as the `(not checked)` line says it.
NEEDS_BASE = (
    "they need a valid base configuration (dataset, model, train, metric); fix the problems "
    "above and validate again"
)
NEEDS_ABOVE = "they need the file to pass the checks above; fix those and validate again"


@dataclass
class Draft:
    """A study file on its way through the stages: what each found, and what it left.

    `study` is the file's Study once the schema passes; when it does not, the Study of the
    file with each key that has a problem left out (taking its default), so that checks
    that do not read those keys still run. `unsound` holds the top-level keys with a problem
    at or below them: a check that reads one of them is not run, and is named instead.
    """

    problems: Problems
    data: dict[str, Any]
    study: Study | None = None
    base: dict[str, Any] | None = None
    unsound: set[str] = field(default_factory=set)
    harmless: set[str] = field(default_factory=set)  # unknown keys: left out, they mean nothing
    not_checked: dict[str, list[str]] = field(default_factory=dict)

    def sound(self, *keys: str) -> bool:
        """Whether none of these top-level keys has a problem (so far)."""
        return not self.unsound.intersection(keys)

    def skip(self, what: str, why: str) -> None:
        """Say (once, at the end) that `what` was not checked, and why."""
        names = self.not_checked.setdefault(why, [])
        if what not in names:
            names.append(what)

    def record(self, found: Iterable[Problem]) -> None:
        """Add a stage's problems, and mark the keys they are about as unsound."""
        for problem in found:
            self.problems.items.append(problem)
            if problem.key not in self.harmless:
                self.unsound.add(top_key(problem.key))

    def skipped_lines(self) -> list[Problem]:
        """One `(not checked)` line per reason, naming the checks it held back."""
        return [
            Problem(self.problems.file, None, NOT_CHECKED, f"{', '.join(what)}: {why}")
            for why, what in self.not_checked.items()
        ]


Stage = Callable[[Draft], "list[Problem] | None"]
"""One stage of the checks: it adds its problems to the draft (`draft.problems.add`) or
returns them; either way their keys then count as unsound for the stages after it."""


def top_key(key: str) -> str:
    """'model.cbam.kernel_size' -> 'model'; 'variants[0].name' -> 'variants'."""
    return key.split(".", 1)[0].split("[", 1)[0]


def run_stages(draft: Draft, stages: Iterable[Stage]) -> list[Problem]:
    """Run every stage on `draft`; its problems sorted by line, then the `(not checked)` lines."""
    for stage in stages:
        before = len(draft.problems.items)
        returned = stage(draft) or []
        added = draft.problems.items[before:]
        del draft.problems.items[before:]
        draft.record([*added, *returned])
    found = sorted(draft.problems.items, key=lambda p: p.line or 0)
    return found + (draft.skipped_lines() if found else [])


# -- the schema -------------------------------------------------------------------------------


def check_schema(draft: Draft) -> None:
    """The file against the schema; on problems, the Study without the keys that have them."""
    try:
        draft.study = Study.model_validate(draft.data)
        return
    except ValidationError as exc:
        draft.problems.add_validation(exc)
        errors = exc.errors()
    for err in errors:
        if err["type"] == "extra_forbidden":
            draft.harmless.add(key_path(err["loc"]))
    draft.study = _without_problems(draft.data, errors)


def _without_problems(data: dict[str, Any], errors: list[Any]) -> Study | None:
    """The Study of `data` with the keys of these errors left out, if that is valid."""
    data = copy.deepcopy(data)
    for _ in range(3):  # leaving a key out may show a problem below it; a few rounds settle
        for err in errors:
            _drop(data, tuple(err["loc"]))
        try:
            return Study.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
    return None


def _drop(data: dict[str, Any], loc: Loc) -> None:
    """Delete the deepest mapping key on `loc` that is in `data` (a list item: its list)."""
    node: Any = data
    deepest: tuple[dict[str, Any], Any] | None = None
    for part in loc:
        if isinstance(node, dict) and part in node:
            deepest = (node, part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
    if deepest is not None:
        del deepest[0][deepest[1]]


# -- the base configuration, the factors, the variants ------------------------------------------


def check_base(draft: Draft) -> None:
    """The base sections' rules across keys (warm-up, milestones, data root, ...)."""
    if not draft.sound(*CONFIG_SECTIONS):
        draft.skip("the base configuration's rules across keys", NEEDS_BASE)
        return
    # The sections as validated (unknown keys left out), else as written.
    sections = (
        draft.study.base_config()
        if draft.study is not None
        else {s: draft.data[s] for s in CONFIG_SECTIONS if s in draft.data}
    )
    try:
        config = TrialConfig.model_validate(sections)
    except ValidationError:  # reported by the schema
        draft.skip("the base configuration's rules across keys", NEEDS_BASE)
        return
    found = config_problems(config)
    for loc, message in found:
        draft.problems.add(loc, message)
    if not found:
        draft.base = config.model_dump(mode="json")


def check_factors(draft: Draft) -> None:
    """Each factor's key is a path into the configuration; each level, applied, is valid."""
    factors = draft.data.get("factors")
    if not isinstance(factors, dict):
        return  # reported by the schema
    for key, levels in factors.items():
        if isinstance(key, str) and isinstance(levels, list):
            _check_factor(draft, key, levels)


def _check_factor(draft: Draft, key: str, levels: list[Any]) -> None:
    problems = draft.problems
    at: Loc = ("factors", key)
    why = path_problem(key)
    if why:
        problems.add(at, why)
        return
    if not levels:
        problems.add(at, "a factor needs at least one level")
        return
    if draft.base is None:  # levels are checked against a valid base configuration only
        draft.skip("the factors' levels", NEEDS_BASE)
        return
    seen: list[tuple[int, str]] = []
    for i, level in enumerate(levels):
        config = _validate_config(
            apply_overrides(draft.base, {key: level}),
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


def check_variants(draft: Draft) -> None:
    """Each named variant: a name, a description, and dotted overrides that, applied, are valid."""
    variants = draft.data.get("variants")
    if not isinstance(variants, list):
        return  # reported by the schema
    names: dict[str, int] = {}
    for i, item in enumerate(variants):
        if isinstance(item, dict):  # else reported by the schema
            _check_variant(draft, i, item, names)


def _check_variant(draft: Draft, i: int, item: dict[str, Any], names: dict[str, int]) -> None:
    problems = draft.problems
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
    if not overrides:
        return
    if draft.base is None:
        draft.skip("the variants' overrides", NEEDS_BASE)
        return
    _validate_config(
        apply_overrides(draft.base, overrides),
        problems,
        {k: at + (k,) for k in overrides},
        at,
        f"variant {name!r}",
    )


# -- the design, the decision, the variant set -----------------------------------------------


def check_design(draft: Draft) -> None:
    """The design's needs (factors, a trial budget), the decision and the early stopping."""
    study, problems = draft.study, draft.problems
    if study is None:
        draft.skip("the design, the seeds and the decision", NEEDS_ABOVE)
        return
    fractional_elsewhere = study.fractional is not None and study.design != "fractional"
    if fractional_elsewhere and draft.sound("fractional", "design"):
        problems.add(
            ("fractional",), f"applies only to design: fractional (design is {study.design})"
        )
    if study.design == "optuna" and draft.sound("design"):
        if not draft.data.get("factors"):
            problems.add(("design",), "design optuna needs factors for the sampler to choose among")
        if draft.sound("search") and study.search.n_trials is None:
            problems.add(("search",), "design optuna needs search.n_trials (the trial budget)")
    elif study.design == "fractional" and draft.sound("design"):
        if not draft.data.get("factors"):
            problems.add(("design",), "design fractional needs two-level factors")
        elif not draft.sound("factors"):
            draft.skip("the fractional design", NEEDS_ABOVE)
        else:
            try:
                fractional_design(study)
            except DesignError as exc:
                problems.add(exc.key, exc.message)
    _check_decision(draft, study)
    _check_early_stopping(draft, study)


def _check_early_stopping(draft: Draft, study: Study) -> None:
    es = draft.study.early_stopping if draft.study is not None else None
    if es is None or not draft.sound("early_stopping"):
        return
    if draft.sound("metric") and study.metric.name not in COMPARABLE_EPOCH:
        draft.problems.add(
            ("early_stopping",),
            f"needs a per-epoch metric to stop on; metric.name is {study.metric.name}",
        )
    if draft.sound("train") and es.grace_epochs > study.train.epochs:
        draft.problems.add(
            ("early_stopping", "grace_epochs"),
            f"{es.grace_epochs} is past train.epochs = {study.train.epochs}; "
            "nothing would stop early",
        )


def _check_decision(draft: Draft, study: Study) -> None:
    """Sequential seeds need a decision to stop on, start <= max, and no ASHA."""
    seq = study.sequential_seeds
    if seq is None or not draft.sound("seeds"):
        return
    problems = draft.problems
    if study.decision is None and draft.sound("decision"):
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
    if study.design == "optuna" and draft.sound("design"):
        problems.add(
            ("seeds",),
            "sequential seeds need the variants fixed in advance; design optuna samples them",
        )


def check_names(draft: Draft) -> None:
    """Named variants do not reuse a design variant's name; the baseline is a variant (when the
    file names none, the variant equal to the base configuration becomes it)."""
    study = draft.study
    what = "the variant names and the baseline"
    if study is None or not draft.sound("factors", "design", "fractional", "baseline"):
        draft.skip(what, NEEDS_ABOVE)
        return
    try:
        designed = design_variants(study)
    except (ValidationError, DesignError):
        draft.skip(what, NEEDS_ABOVE)
        return
    design_names = {v.name for v in designed}
    named = [
        (i, item["name"])
        for i, item in enumerate(study.variants)
        if isinstance(item.get("name"), str) and item["name"].strip()
    ]
    for i, name in named:
        if name in design_names:
            draft.problems.add(
                ("variants", i, "name"), f"{name!r} is also the name of a design variant"
            )
    names = [v.name for v in designed] + [name for _, name in named]
    if study.baseline is not None:
        if study.baseline not in names and not _is_space_base(study, study.baseline):
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            draft.problems.add(
                ("baseline",),
                f"{study.baseline!r} is not a variant of this study"
                f"{suggest(study.baseline, names)}; variants: {shown}",
            )
        return
    if draft.base is None or not draft.sound("variants"):
        draft.skip("which variant is the baseline (the file names none)", NEEDS_BASE)
        return
    _choose_baseline(draft, study, designed)


def _is_space_base(study: Study, name: str) -> bool:
    """Design optuna: the factor space's point at the base configuration is a variant too."""
    if study.design != "optuna":
        return False
    space_base = base_variant(study)
    return space_base is not None and space_base.name == name


def _choose_baseline(draft: Draft, study: Study, designed: list[Any]) -> None:
    base_variants = [v.name for v in designed + named_variants(study) if v.is_base]
    space_base = base_variant(study) if study.design == "optuna" else None
    if not base_variants and space_base is not None:
        base_variants = [space_base.name]
    if base_variants:
        study.baseline = base_variants[0]
    else:
        draft.problems.add(
            ("baseline",),
            "required here: no variant equals the base configuration, so name the reference "
            "variant (a named variant or a design variant name)",
        )


def check_distinct(draft: Draft) -> None:
    """No named variant has the configuration of another variant (it would run the same
    trials)."""
    study = draft.study
    sound = draft.sound("factors", "variants", "design", "fractional")
    if study is None or draft.base is None or not sound:
        draft.skip("whether the variants differ", NEEDS_BASE if draft.base is None else NEEDS_ABOVE)
        return
    seen = {
        canonical_json(resolve_config(study, v.overrides)): v.name for v in design_variants(study)
    }
    for i, v in enumerate(named_variants(study)):
        config = canonical_json(resolve_config(study, v.overrides))
        if config in seen and seen[config] != v.name:
            draft.problems.add(
                ("variants", i),
                f"variant {v.name!r} has the same configuration as variant {seen[config]!r} "
                "(same trials); drop it, or set baseline to that variant's name",
            )
        seen.setdefault(config, v.name)
