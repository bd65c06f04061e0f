"""A study file's YAML as plain data, with the line of every key and list item.

The YAML is composed into nodes (which carry the parser's marks) and built into plain data by
hand, so each problem found later can name the line it is about.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

Loc = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads `1e-3` as a float (YAML 1.2), as researchers write lr."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class Document:
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
