"""Study files: YAML in, a checked `Study` out, or every problem with its file, line and key.

`document.py` reads the YAML with the line of every key, `problems.py` turns errors into
`FILE:LINE: key: message`, `checks.py` checks the study as a whole; here the file is read,
the study handed to the commands, and `ablation validate` answers.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

import yaml

from ablation.study.checks import check_study
from ablation.study.document import Document
from ablation.study.plugins import plugin_problems
from ablation.study.problems import Problem, Problems, StudyError, key_path
from ablation.study.schema import Study
from ablation.vocabulary.datasets import DATASETS

__all__ = [
    "Problem",
    "StudyError",
    "data_problems",
    "load_for_command",
    "load_study",
    "parse_study",
    "validate_files",
]


def parse_study(text: str, file: str = "<study>") -> Study:
    """A checked Study from YAML text, or StudyError with every problem found."""
    try:
        doc = Document(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(s for s in (exc.context, exc.problem) if s)
        raise StudyError([Problem(file, line, "(yaml)", f"not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise StudyError([Problem(file, None, "(yaml)", f"not valid YAML: {exc}")]) from None
    problems = Problems(file, doc)
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
    study = check_study(doc.data, problems)
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
    if found := plugin_problems(study, file):
        raise StudyError(found)
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
        problems = Problems(file, Document(study.source.decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError):  # parsed before; kept safe all the same
        problems = Problems(file, None)
    problems.add(
        ("dataset", "root"),
        f"{str(root)!r} {what} on this machine (the {study.dataset.name} files go there; "
        "`ablation validate --no-data-check` skips this check for another machine's file)",
    )
    return problems.items


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
