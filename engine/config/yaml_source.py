"""Read a YAML file into plain data, remembering the line of every key and item.

PyYAML keeps the last of two equal keys without a word; an administrator who pastes a
service twice deserves to hear of it, so duplicate keys are refused here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[str | int, ...]


class YamlError(Exception):
    """A file that is not valid YAML, or has a duplicate key."""

    def __init__(self, message: str, loc: Loc = (), line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.line = line


@dataclass
class YamlDocument:
    """A file's data and the 1-based line of every location in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest enclosing location that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def read_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file; raise ``YamlError`` with the line on a syntax or duplicate-key error."""
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        document = YamlDocument(path, None)
        document.data = {} if root is None else _build(loader, root, (), document.lines)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlError(f"not valid YAML: {exc.problem or exc}", line=line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        loader.flatten_mapping(node)  # resolves '<<' merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                key = str(key)
            child: Loc = (*loc, key)
            if key in result:
                raise YamlError(
                    f"duplicate key {key!r} (first on line {lines[child]})",
                    loc=child,
                    line=key_node.start_mark.line + 1,
                )
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, child, lines)
        return result
    if isinstance(node, SequenceNode):
        return [
            _build(loader, item, (*loc, index), lines) for index, item in enumerate(node.value)
        ]
    assert isinstance(node, ScalarNode)
    return loader.construct_object(node, deep=True)
