"""A study file's problems, each `FILE:LINE: key.path: message`: pydantic's error locations
mapped back to the lines of the YAML document."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ablation.study.document import Document, Loc
from ablation.study.schema import Study, submodel, suggest

NOT_CHECKED = "(not checked)"  # the key of a line naming checks an earlier problem held back


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a study file. `str()` is `FILE:LINE: key.path: message`; a line
    with the key `(not checked)` names the checks that could not run because of the others."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}"


class StudyError(Exception):
    """A study file that cannot be used; `.problems` lists every problem found, then the
    `(not checked)` lines."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    @property
    def found(self) -> list[Problem]:
        """The problems, without the `(not checked)` lines."""
        return [p for p in self.problems if p.key != NOT_CHECKED]


def key_path(loc: Iterable[str | int]) -> str:
    """('model', 'cbam', 'gates', 0) -> 'model.cbam.gates[0]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


class Problems:
    """The problems found in one file so far, each placed at the line of its key."""

    def __init__(self, file: str, doc: Document | None) -> None:
        self.file, self.doc = file, doc
        self.items: list[Problem] = []

    def add(self, loc: Loc, message: str) -> None:
        """Record `message` about the key at `loc`."""
        self.items.append(Problem(self.file, self.line(loc), key_path(loc), message))

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest written parent."""
        if self.doc is None:
            return None
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.doc.lines:
                return self.doc.lines[loc[:n]]
        return self.doc.root_line

    def add_validation(self, exc: ValidationError) -> None:
        """Record each of pydantic's errors on the study file."""
        for err in exc.errors():
            loc = _without_union_tag(tuple(err["loc"]), err)
            if loc is not None:
                self.add(loc, error_message({**err, "loc": loc}, Study))

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


def error_message(err: dict[str, Any], model: type[BaseModel]) -> str:
    """What a pydantic error says, in a researcher's words (a typo's likely key, the value)."""
    kind, loc = err["type"], tuple(err["loc"])
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        name = str(loc[-1])
        return f"unknown key{suggest(name, known)}; known here: {', '.join(known)}"
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if kind == "literal_error" and isinstance(value, str):
        allowed = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
        return f"{msg}; got {value!r}{suggest(value, allowed)}"
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
