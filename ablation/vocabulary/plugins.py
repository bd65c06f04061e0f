"""A researcher's own code named in a study: `"MODULE:NAME"`, parsed, imported and identified.

`model.attention`, `model.backbone` and `dataset.name` accept `"MODULE:NAME"` besides their
built-in names. This is the one place such a reference is parsed (`parse_plugin`), imported
(`load_plugin`: the study file's folder first on the import path, then installed packages) and
identified for trial ids (`plugin_identity`: the bytes of its sources, or an installed
distribution's name and version). Plain stdlib: models/ and data/ import the callable here, the
study validates and hashes it here, and nothing here imports the plugin to identify it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# `package.module:callable`: dotted identifiers, one colon.
_REFERENCE = re.compile(r"^(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<name>[A-Za-z_]\w*)$")

# The keys whose values may be a plugin, and the keyword mapping each one's callable takes.
PLUGIN_KEYS: dict[str, str] = {
    "model.attention": "model.attention_args",
    "model.backbone": "model.backbone_args",
    "dataset.name": "dataset.args",
}


class PluginError(ValueError):
    """A plugin reference that cannot be used; the message is one line, for the study's key."""


@dataclass(frozen=True)
class PluginRef:
    """`module:name` of a study file."""

    module: str
    name: str

    @property
    def top_level(self) -> str:
        """The importable top-level package or module (`labgates` of `labgates.eca:ECA`)."""
        return self.module.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"


def is_plugin(value: object) -> bool:
    """Whether a study value has the plugin form `MODULE:NAME` (a colon marks it)."""
    return isinstance(value, str) and ":" in value


def parse_plugin(value: str) -> PluginRef:
    """The reference in `MODULE:NAME`; raises PluginError when it is not of that form."""
    match = _REFERENCE.match(value)
    if match is None:
        raise PluginError(
            f"{value!r} is not MODULE:NAME (a dotted Python module, a colon, a callable's "
            "name, e.g. my_gates:ECA)"
        )
    return PluginRef(match["module"], match["name"])


# -- importing ---------------------------------------------------------------------------------


def load_plugin(value: str, folder: str | Path | None = None) -> Callable[..., Any]:
    """The callable `value` names, imported with `folder` (the study file's) first on the path.

    The folder stays on `sys.path`, so the plugin's own imports of its siblings work later too.
    A module of that name imported earlier from elsewhere is imported again from `folder`.
    Raises PluginError with one line: what failed to import, and Python's reason.
    """
    ref = parse_plugin(value)
    if folder is not None:
        _first_on_path(Path(folder).resolve(), ref.top_level)
    try:
        module = importlib.import_module(ref.module)
    except Exception as err:  # the module's own code may raise anything while importing
        reason = str(err) if isinstance(err, ImportError) else f"{type(err).__name__}: {err}"
        raise PluginError(f"cannot import {ref.module!r} ({reason})") from err
    try:
        found = getattr(module, ref.name)
    except AttributeError:
        raise PluginError(
            f"cannot import {str(ref)!r} (module {ref.module!r} has no attribute {ref.name!r})"
        ) from None
    if not callable(found):
        raise PluginError(f"{str(ref)!r} is a {type(found).__name__}, not a callable")
    return found


def _first_on_path(folder: Path, top_level: str) -> None:
    entry = str(folder)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()  # files written since the interpreter looked at the folder
    loaded = sys.modules.get(top_level)
    here = _spec_in(folder, top_level)
    if loaded is not None and here is not None and _origin(loaded) != here.origin:
        # Another study's module of the same name: forget it and its submodules.
        for name in [m for m in sys.modules if m == top_level or m.startswith(f"{top_level}.")]:
            del sys.modules[name]


def _origin(module: Any) -> str | None:
    spec = getattr(module, "__spec__", None)
    return getattr(spec, "origin", None)


def _spec_in(folder: Path, top_level: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of `top_level` in `folder` itself, or None when the folder has no such module."""
    return importlib.machinery.PathFinder.find_spec(top_level, [str(folder)])


# -- where the code comes from, and its identity -------------------------------------------------


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin's code lives. `kind`: "folder" (under the study's folder), "editable" (an
    editable or path install), "distribution" (an installed release) or "path" (elsewhere on
    the import path, outside any distribution). `files`: the sources hashed (not for a
    release); `root` the folder they are named relative to."""

    ref: str
    kind: str
    root: Path | None = None
    files: tuple[Path, ...] = ()
    distribution: str | None = None
    version: str | None = None

    def identity(self) -> dict[str, Any]:
        """What trial ids hash: a release's name and version, else every source file's bytes."""
        if self.kind == "distribution":
            return {"distribution": self.distribution, "version": self.version}
        digests = {
            path.relative_to(self.root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in self.files
        }
        return {"sources": digests}


def plugin_source(value: str, folder: str | Path | None = None) -> PluginSource:
    """Where the code of `value` lives, found as `load_plugin` would import it (the study's
    folder first), without importing it. Raises PluginError when it is nowhere."""
    ref = parse_plugin(value)
    if folder is not None:
        spec = _spec_in(Path(folder).resolve(), ref.top_level)
        if spec is not None:
            return _from_files(str(ref), "folder", spec)
    try:
        # Every finder on sys.meta_path, not just the path's: setuptools' editable installs
        # (`pip install -e`) are found by a finder of their own. A top-level name imports no
        # parent package to be looked up.
        spec = importlib.util.find_spec(ref.top_level)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise PluginError(f"cannot import {ref.top_level!r} (No module named {ref.top_level!r})")
    names = _distributions().get(ref.top_level, [])
    if not names:
        return _from_files(str(ref), "path", spec)
    dist = importlib.metadata.distribution(names[0])
    # Every record of that name, not just the first on the path: an editable install's source
    # tree holds setuptools' NAME.egg-info too (no direct_url.json), and it comes first where
    # the tree itself is on the path (`python -m pytest` from a checkout).
    if any(_installed_from_a_path(d) for d in importlib.metadata.distributions(name=names[0])):
        return _from_files(str(ref), "editable", spec, distribution=dist.metadata["Name"])
    return PluginSource(
        str(ref), "distribution", distribution=dist.metadata["Name"], version=dist.version
    )


def plugin_identity(value: str, folder: str | Path | None = None) -> dict[str, Any]:
    """What a trial using `value` hashes of its code (PluginSource.identity)."""
    return plugin_source(value, folder).identity()


def distribution_identity(name: str) -> dict[str, Any]:
    """An installed distribution's name and version (a zoo module's library), as hashed."""
    return {"distribution": name, "version": importlib.metadata.version(name)}


def _from_files(
    ref: str, kind: str, spec: importlib.machinery.ModuleSpec, distribution: str | None = None
) -> PluginSource:
    """Every .py file of a package (its whole tree); a module file alone, or, for a module file
    in the study's folder (`kind` "folder"), every .py file directly in that folder: the module
    may import any of its neighbours, which then travel and are hashed with it."""
    if spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        files = tuple(sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts))
        return PluginSource(ref, kind, package.parent, files, distribution)
    origin = Path(spec.origin or "")
    files = tuple(sorted(origin.parent.glob("*.py"))) if kind == "folder" else (origin,)
    return PluginSource(ref, kind, origin.parent, files, distribution)


def _installed_from_a_path(dist: importlib.metadata.Distribution) -> bool:
    """An editable (`pip install -e DIR`) or path (`pip install DIR`) install: its sources
    change without a new version. PEP 610's direct_url.json says where it came from: a
    directory (`dir_info`), rather than an index or an archive."""
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        return "dir_info" in json.loads(text)
    except ValueError:
        return False


@functools.cache
def _distributions() -> dict[str, list[str]]:
    """Top-level module -> installed distributions; read once per process (a third of a
    second: every distribution's metadata)."""
    return importlib.metadata.packages_distributions()
