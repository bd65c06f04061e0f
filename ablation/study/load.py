"""Study files: YAML in, a checked `Study` out, or every problem with its file, line and key.

`document.py` reads the YAML with the line of every key, `problems.py` turns errors into
`FILE:LINE: key: message`, `checks.py` checks the study as a whole; here the file is read,
the study handed to the commands, and `ablation validate` answers.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from ablation.study.checks import (
    NEEDS_ABOVE,
    Draft,
    Stage,
    check_base,
    check_design,
    check_distinct,
    check_factors,
    check_names,
    check_schema,
    check_variants,
    run_stages,
)
from ablation.study.document import Document
from ablation.study.plugins import plugin_problems
from ablation.study.problems import NOT_CHECKED, Problem, Problems, StudyError, key_path
from ablation.study.schema import Study
from ablation.vocabulary.datasets import DATASETS

__all__ = [
    "STAGES",
    "Problem",
    "StudyError",
    "check_data_root",
    "data_problems",
    "load_for_command",
    "load_study",
    "parse_study",
    "validate_files",
]


# The stages of the checks, in order: each sees what the ones before it found (a check that
# cannot run because of an earlier problem says so in one `(not checked)` line). A stage is a
# function of the `Draft` that adds its problems or returns them (`checks.Stage`); add one here.
STAGES: tuple[Stage, ...] = (
    check_schema,
    check_base,
    check_factors,
    check_variants,
    check_design,
    check_names,
    check_distinct,
)


def parse_study(text: str, file: str = "<study>", stages: Sequence[Stage] = STAGES) -> Study:
    """A checked Study from YAML text, or StudyError with every problem found."""
    try:
        doc = Document(text)
    except yaml.YAMLError as exc:
        not_parsed = "every key and value: the file must be valid YAML first"
        raise StudyError(
            [_yaml_problem(file, exc), Problem(file, None, NOT_CHECKED, not_parsed)]
        ) from None
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
    draft = Draft(problems, doc.data)
    draft.record(
        Problem(file, line, key_path(loc), "key given twice; give each key once")
        for loc, line in doc.duplicates
    )
    found = run_stages(draft, stages)
    if found or draft.study is None:
        raise StudyError(found)
    study = draft.study
    study._path = file
    study._source = text.encode("utf-8")
    return study


def _yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(s for s in (exc.context, exc.problem) if s)
        return Problem(file, line, "(yaml)", f"not valid YAML: {what}")
    return Problem(file, None, "(yaml)", f"not valid YAML: {exc}")


def load_study(path: str | os.PathLike[str], *, check_data: bool = False) -> Study:
    """The checked Study in a YAML file, or StudyError (missing file, bad YAML, bad keys...).
    `check_data`: also require `dataset.root` to exist here (`check_data_root`) and call a
    plugin data set to check what it gives (without: only its keywords are checked)."""
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
    study = parse_study(text, file, (*STAGES, check_data_root) if check_data else STAGES)
    study._source = raw
    if found := plugin_problems(study, file, call_data=check_data):
        raise StudyError(found)
    return study


def load_for_command(path: str | os.PathLike[str], *, check_data: bool = False) -> Study | None:
    """The checked Study for a command (`run`, `submit`), or None after printing its problems
    to stderr, one `FILE:LINE: key.path: message` line each (the caller then exits 2).
    `check_data`: also require `dataset.root` to exist here (`check_data_root`)."""
    try:
        return load_study(path, check_data=check_data)
    except StudyError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return None


def check_data_root(draft: Draft) -> None:
    """The stage that checks `dataset.root` of a data set read from files is a directory on
    this machine.

    Apart from the schema's checks: a file written for another machine is valid there, so
    `validate --no-data-check` skips this. Relative roots are read from the current directory,
    as the trials read them.
    """
    if draft.study is None or not draft.sound("dataset"):
        draft.skip("whether dataset.root is on this machine", NEEDS_ABOVE)
        return
    _root_problem(draft.study, draft.problems)


def data_problems(study: Study) -> list[Problem]:
    """`check_data_root` for a loaded study: its `dataset.root`'s problem, if any."""
    file = study.path or "<study>"
    try:
        problems = Problems(file, Document(study.source.decode("utf-8")))
    except (AttributeError, UnicodeDecodeError, yaml.YAMLError):  # no source, or parsed before
        problems = Problems(file, None)
    _root_problem(study, problems)
    return problems.items


def _root_problem(study: Study, problems: Problems) -> None:
    spec = DATASETS.get(study.dataset.name)
    if spec is None or not spec.needs_root or not study.dataset.root:
        return
    root = Path(study.dataset.root).expanduser()
    if root.is_dir():
        return
    what = "is not a directory" if root.exists() else "does not exist"
    problems.add(
        ("dataset", "root"),
        f"{str(root)!r} {what} on this machine (the {study.dataset.name} files go there; "
        "`ablation validate --no-data-check` skips this check for another machine's file)",
    )


# -- `ablation validate` ----------------------------------------------------------------------


def validate_files(paths: Iterable[str], *, check_data: bool = True) -> int:
    """`ablation validate`: problems to stderr as FILE:LINE: key: message, an OK line per good
    file to stdout. Returns 2 if any file has a problem, else 0. `check_data`: also require
    `dataset.root` to exist on this machine (`check_data_root`)."""
    status = 0
    for path in paths:
        try:
            study = load_study(path, check_data=check_data)
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
    from ablation.study.design import trial_count

    return f"study {study.study}, {study.design}: {trial_count(study)}, baseline {study.baseline}"
