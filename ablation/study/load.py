"""Study files: YAML in, a checked `Study` out, or every problem with its file, line and key.

The YAML is composed into nodes (which carry the parser's marks) and built into plain data by
hand, recording the line of every key and list item; pydantic's error locations are then
mapped back to those lines. Factor and variant keys are dotted paths: each is checked against
the schema and each level / override is applied to the base configuration and validated, so a
typo or a wrong-typed level is reported at its own line, before anything runs.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ablation.study.schema import (
    Study,
    TrialConfig,
    _suggest,
    apply_overrides,
    config_problems,
    get_path,
    path_problem,
    submodel,
)
from ablation.study.trials import canonical_json
from ablation.vocabulary.datasets import DATASETS
from ablation.vocabulary.metrics import COMPARABLE_EPOCH

Loc = tuple[str | int, ...]
VARIANT_KEYS = ("name", "description")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a study file. `str()` is `FILE:LINE: key.path: message`."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}"


class StudyError(Exception):
    """A study file that cannot be used; `.problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# -- YAML with lines -------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads `1e-3` as a float (YAML 1.2), as researchers write lr."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _Document:
    """Plain data built from a YAML document, with the line of every key and list item."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[tuple[Loc, int]] = []
        self.loader = _Loader(text)
        try:
            root = self.loader.get_single_node()
            self.root_line = root.start_mark.line + 1 if root is not None else 1
            self.data = self._build(root, ()) if root is not None else None
        finally:
            self.loader.dispose()

    def _build(self, node: yaml.Node, path: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # YAML merge keys (<<)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    key = str(key)
                line = key_node.start_mark.line + 1
                if key in out:
                    self.duplicates.append((path + (key,), line))
                self.lines[path + (key,)] = line
                out[key] = self._build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                self.lines[path + (i,)] = child.start_mark.line + 1
                items.append(self._build(child, path + (i,)))
            return items
        return self.loader.construct_object(node, deep=True)


# -- errors as problems ------------------------------------------------------------------------


def key_path(loc: Iterable[str | int]) -> str:
    """('model', 'cbam', 'gates', 0) -> 'model.cbam.gates[0]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


class _Problems:
    def __init__(self, file: str, doc: _Document | None) -> None:
        self.file, self.doc, self.items = file, doc, []

    def add(self, loc: Loc, message: str) -> None:
        self.items.append(Problem(self.file, self.line(loc), key_path(loc), message))

    def line(self, loc: Loc) -> int | None:
        if self.doc is None:
            return None
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.doc.lines:
                return self.doc.lines[loc[:n]]
        return self.doc.root_line

    def add_validation(
        self, exc: ValidationError, prefix: Loc = (), model: type[BaseModel] = Study
    ) -> None:
        for err in exc.errors():
            loc = _without_union_tag(prefix + tuple(err["loc"]), err)
            if loc is None:
                continue
            err = {**err, "loc": loc[len(prefix) :]}
            self.add(loc, _message(err, model))

    def __bool__(self) -> bool:
        return bool(self.items)


def _without_union_tag(loc: Loc, err: dict[str, Any]) -> Loc | None:
    """`seeds` is a list or {start, max}: name the problem by the form that was written (drop
    pydantic's union member from the key path, and the other member's complaint)."""
    if len(loc) < 2 or loc[0] != "seeds" or not isinstance(loc[1], str):
        return loc
    if loc[1].startswith("list["):
        return None if len(loc) == 2 and isinstance(err.get("input"), dict) else (loc[0], *loc[2:])
    if loc[1] == "SequentialSeeds":
        return (
            None if len(loc) == 2 and not isinstance(err.get("input"), dict) else (loc[0], *loc[2:])
        )
    return loc


def _message(err: dict[str, Any], model: type[BaseModel]) -> str:
    kind, loc = err["type"], tuple(err["loc"])
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        name = str(loc[-1])
        return f"unknown key{_suggest(name, known)}; known here: {', '.join(known)}"
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if kind == "literal_error" and isinstance(value, str):
        allowed = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
        return f"{msg}; got {value!r}{_suggest(value, allowed)}"
    if kind != "value_error" and not isinstance(value, dict | list):
        return f"{msg}; got {value!r}"
    return msg


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at `loc` (a path into `model`), for "known here" hints."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = submodel(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


# -- the checks ---------------------------------------------------------------------------------


def parse_study(text: str, file: str = "<study>") -> Study:
    """A checked Study from YAML text, or StudyError with every problem found."""
    try:
        doc = _Document(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(s for s in (exc.context, exc.problem) if s)
        raise StudyError([Problem(file, line, "(yaml)", f"not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise StudyError([Problem(file, None, "(yaml)", f"not valid YAML: {exc}")]) from None
    problems = _Problems(file, doc)
    if doc.data is None:
        problems.add(
            (),
            "the file is empty; a study file is a mapping with at least study, dataset and model",
        )
        raise StudyError(problems.items)
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__
        problems.add(
            (), f"a study file is a mapping of keys (study:, dataset:, ...); this one is a {kind}"
        )
        raise StudyError(problems.items)
    for loc, line in doc.duplicates:
        problems.items.append(
            Problem(file, line, key_path(loc), "key given twice; give each key once")
        )
    study = _check(doc.data, problems)
    if problems or study is None:
        raise StudyError(sorted(problems.items, key=lambda p: p.line or 0))
    study._path = file
    study._source = text.encode("utf-8")
    return study


def load_study(path: str | os.PathLike[str]) -> Study:
    """The checked Study in a YAML file, or StudyError (missing file, bad YAML, bad keys...)."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
        # As read_text did (universal newlines); the raw bytes stay the study's source.
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise StudyError([Problem(file, None, "(file)", "no such file")]) from None
    except IsADirectoryError:
        raise StudyError(
            [Problem(file, None, "(file)", "is a directory, not a study file")]
        ) from None
    except UnicodeDecodeError as exc:
        raise StudyError([Problem(file, None, "(file)", f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise StudyError([Problem(file, None, "(file)", f"cannot read: {exc.strerror}")]) from None
    study = parse_study(text, file)
    study._source = raw
    return study


def load_for_command(path: str | os.PathLike[str], *, check_data: bool = False) -> Study | None:
    """The checked Study for a command (`run`, `submit`), or None after printing its problems
    to stderr, one `FILE:LINE: key.path: message` line each (the caller then exits 2).
    `check_data`: also require `dataset.root` to exist here (`data_problems`)."""
    try:
        study = load_study(path)
        if check_data and (found := data_problems(study)):
            raise StudyError(found)
        return study
    except StudyError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return None


def data_problems(study: Study) -> list[Problem]:
    """`dataset.root` of a data set read from files, when it is no directory on this machine.

    Apart from the schema's checks: a file written for another machine is valid there, so
    `validate --no-data-check` skips this. Relative roots are read from the current directory,
    as the trials read them.
    """
    spec = DATASETS.get(study.dataset.name)
    if spec is None or not spec.needs_root or not study.dataset.root:
        return []
    root = Path(study.dataset.root).expanduser()
    if root.is_dir():
        return []
    what = "is not a directory" if root.exists() else "does not exist"
    file = study.path or "<study>"
    try:
        problems = _Problems(file, _Document(study.source.decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError):  # parsed before; kept safe all the same
        problems = _Problems(file, None)
    problems.add(
        ("dataset", "root"),
        f"{str(root)!r} {what} on this machine (the {study.dataset.name} files go there; "
        "`ablation validate --no-data-check` skips this check for another machine's file)",
    )
    return problems.items


def _check(data: dict[str, Any], problems: _Problems) -> Study | None:
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


def _base_config(data: dict[str, Any], problems: _Problems) -> dict[str, Any] | None:
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
    raw: dict[str, Any], problems: _Problems, where: dict[str, Loc], fallback: Loc, what: str
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
        found = [(tuple(err["loc"]), _message(err, TrialConfig)) for err in exc.errors()]
    else:
        found = [(tuple(loc), msg) for loc, msg in config_problems(checked)]
    for inner, msg in found:
        owner = next((k for k in where if inner[: k.count(".") + 1] == tuple(k.split("."))), None)
        sub = key_path(inner)
        tail = "" if sub == owner else f" ({sub})"
        problems.add(where[owner] if owner else fallback, f"{what}{tail}: {msg}")
    return None if found or checked is None else checked.model_dump(mode="json")


def _check_factors(
    factors: dict[str, list[Any]], base: dict[str, Any] | None, problems: _Problems
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


def _check_variants(variants: list[Any], base: dict[str, Any] | None, problems: _Problems) -> None:
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
                    f"unknown key{_suggest(str(key), VARIANT_KEYS)}; a variant has name, "
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


def _check_design(study: Study, problems: _Problems) -> None:
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
            from ablation.study.design import DesignError, fractional_design

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


def _check_decision(study: Study, problems: _Problems) -> None:
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


def _check_variant_set(study: Study, problems: _Problems) -> None:
    """Names and configurations distinct across design and named variants; baseline known."""
    from ablation.study.design import base_variant, design_variants, named_variants
    from ablation.study.trials import resolve_config

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
                f"{_suggest(study.baseline, names)}; variants: {shown}",
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


# -- `ablation validate` ----------------------------------------------------------------------


def validate_files(paths: Iterable[str], *, check_data: bool = True) -> int:
    """`ablation validate`: problems to stderr as FILE:LINE: key: message, an OK line per good
    file to stdout. Returns 2 if any file has a problem, else 0. `check_data`: also require
    `dataset.root` to exist on this machine (`data_problems`)."""
    status = 0
    for path in paths:
        try:
            study = load_study(path)
            if check_data and (found := data_problems(study)):
                raise StudyError(found)
            print(f"{path}: OK ({_summary(study)})")
        except StudyError as exc:
            status = 2
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        except Exception as exc:  # a bug of ours, not the user's: say so, briefly
            status = 2
            print(
                f"{path}: internal error while validating: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            if os.environ.get("ABLATION_DEBUG"):
                traceback.print_exc()
    return status


def _summary(study: Study) -> str:
    from ablation.study.design import design_variants

    seeds: int | str = len(study.seeds)
    if study.sequential_seeds is not None:
        seeds = f"{study.sequential_seeds.start}-{study.sequential_seeds.max} (sequential)"
    named = len(study.variants)
    if study.design == "optuna":
        return (
            f"study {study.study}, design optuna: up to {study.search.n_trials} sampled "
            f"+ {named} named variants x {seeds} seeds, baseline {study.baseline}"
        )
    n = len(design_variants(study)) + named
    total = n * len(study.seeds)
    if study.sequential_seeds is not None:
        total = f"{total}-{n * study.sequential_seeds.max}"
    return (
        f"study {study.study}, {study.design}: {n} variants x {seeds} seeds = {total} "
        f"trials, baseline {study.baseline}"
    )
