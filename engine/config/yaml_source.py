"""Read a YAML file into plain data, remembering the line of every key and item.

PyYAML keeps the last of two equal keys without a word; an administrator who pastes a
service twice deserves to hear of it, so duplicate keys are refused here. A merge key
(``<<: *base``) follows YAML's rule instead: a key written out overrides a merged one.
Whatever the bytes, reading ends in data or a ``YamlError`` naming the line, never in
another exception: ``check-config`` must list problems, not print a traceback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[str | int, ...]

MAX_NODES = 1_000_000
"""Values one file may expand to: aliases of aliases would otherwise fill the memory."""
MAX_DEPTH = 100
"""Levels of nesting one file may have; the configuration needs fewer than ten."""
MAX_FILE_BYTES = 1024 * 1024
"""Size of one file: the example's largest is 5 kB, and PyYAML reads about 150 kB a second."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """A file that is not valid YAML, or has a duplicate key."""

    def __init__(self, message: str, loc: Loc = (), line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.line = line


@dataclass
class YamlDocument:
    """A file's data (``None`` when it holds no document) and the line of every location."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    # SHA-256 of the bytes parsed: the configuration's version is made of these, so it
    # names exactly what was loaded, even if the file changes while it is being read.
    digest: str = ""

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest enclosing location that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def read_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file; raise ``YamlError`` with the line on anything it cannot read."""
    with path.open("rb") as file:
        # Read one byte past the limit rather than trust a size from stat: a FIFO or a
        # file still growing has none worth trusting.
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError(f"the file is larger than {MAX_FILE_BYTES:,} bytes, the most read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded"
        raise YamlError(message, line=line) from None
    document = YamlDocument(path, None, digest=hashlib.sha256(raw).hexdigest())
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # the reader refuses control characters up front
        raise YamlError(
            f"not valid YAML: character U+{exc.character:04X} is not allowed",
            line=text.count("\n", 0, exc.position) + 1,
        ) from None
    try:
        root = _compose(loader)
        if root is not None:
            document.data = _Builder(loader).build(root, (), document.lines)
        return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(
            f"not valid YAML: {exc.problem or exc}",
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _compose(loader: yaml.SafeLoader) -> Node | None:
    try:
        node: Node | None = loader.get_single_node()
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        line = loader.get_mark().line + 1
        raise YamlError(f"nested deeper than {MAX_DEPTH} levels", line=line) from None
    return node


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else f"{text[:37]}...")


class _Builder:
    """Turn a node graph into plain data, node by node, so each value keeps its line."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.count = 0
        self.open: set[int] = set()  # ids of the nodes being built: an alias to one is a cycle

    def build(self, node: Node, loc: Loc, lines: dict[Loc, int]) -> Any:
        """The data of ``node`` at ``loc``, recording lines in ``lines``."""
        line = node.start_mark.line + 1
        lines.setdefault(loc, line)
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                f"the file expands to more than {MAX_NODES:,} values "
                "(aliases that repeat aliases?)",
                loc,
                line,
            )
        if id(node) in self.open:
            raise YamlError("recursive alias: a value contains an alias of itself", loc, line)
        if len(self.open) >= MAX_DEPTH:
            raise YamlError(f"nested deeper than {MAX_DEPTH} levels", loc, line)
        self.open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                self._expect_tag(node, _MAP_TAG, loc)
                return self._mapping(node, loc, lines)
            if isinstance(node, SequenceNode):
                self._expect_tag(node, _SEQ_TAG, loc)
                return [self.build(item, (*loc, i), lines) for i, item in enumerate(node.value)]
            return self._scalar(node, loc)
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: MappingNode, loc: Loc, lines: dict[Loc, int]) -> dict[Any, Any]:
        merges = [(key, value) for key, value in node.value if key.tag == _MERGE_TAG]
        if len(merges) > 1:
            raise YamlError(
                "duplicate key '<<': merge several mappings with '<<: [*a, *b]'",
                loc,
                merges[1][0].start_mark.line + 1,
            )
        merged, merged_lines = self._merged(merges[0][1], loc) if merges else ({}, {})
        written: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, loc)
            child: Loc = (*loc, key)
            if key in written:
                raise YamlError(
                    f"duplicate key {key!r} (first on line {lines[child]})",
                    loc=child,
                    line=key_node.start_mark.line + 1,
                )
            lines[child] = key_node.start_mark.line + 1
            written[key] = self.build(value_node, child, lines)
        for sub, line in merged_lines.items():
            if sub[len(loc)] not in written:
                lines.setdefault(sub, line)
        return {**{k: v for k, v in merged.items() if k not in written}, **written}

    def _merged(self, source: Node, loc: Loc) -> tuple[dict[Any, Any], dict[Loc, int]]:
        """The keys ``<<`` merges in, the first mapping winning, and the lines they come from."""
        bases = source.value if isinstance(source, SequenceNode) else [source]
        merged: dict[Any, Any] = {}
        merged_lines: dict[Loc, int] = {}
        for base in bases:
            if not isinstance(base, MappingNode):
                raise YamlError(
                    "'<<' merges a mapping or a list of mappings", loc, base.start_mark.line + 1
                )
            base_lines: dict[Loc, int] = {}
            data = self.build(base, loc, base_lines)
            supplied = {key for key in data if key not in merged}
            merged.update((key, value) for key, value in data.items() if key in supplied)
            merged_lines.update(
                (sub, line)
                for sub, line in base_lines.items()
                if len(sub) > len(loc) and sub[len(loc)] in supplied
            )
        return merged, merged_lines

    def _key(self, node: Node, loc: Loc) -> str | int:
        if not isinstance(node, ScalarNode):
            raise YamlError(
                "a key must be a plain name, not a list or mapping", loc, node.start_mark.line + 1
            )
        key = self._scalar(node, loc)
        return key if isinstance(key, str | int) else str(key)

    def _scalar(self, node: Node, loc: Loc) -> Any:
        line = node.start_mark.line + 1
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise YamlError(f"not valid YAML: {exc.problem or exc}", loc, line) from None
        except (ValueError, TypeError, OverflowError, LookupError, AttributeError) as exc:
            # PyYAML checks a scalar's form, not its value: 2026-02-30 looks like a date.
            # An explicit tag (`!!bool maybe`) skips even the form, and the constructor
            # then fails with whatever error comes first.
            kind = node.tag.rsplit(":", 1)[-1].replace("timestamp", "date")
            message = f"{_short(str(node.value))} is not a valid {kind}"
            if isinstance(exc, ValueError | OverflowError):  # the others explain nothing
                message += ": " + str(exc).split("; use sys.", 1)[0]  # sys: Python's advice
            raise YamlError(message, loc, line) from None

    @staticmethod
    def _expect_tag(node: Node, tag: str, loc: Loc) -> None:
        if node.tag != tag:  # !!set, !!omap and local tags would slip through as plain data
            raise YamlError(f"the tag {node.tag} is not supported", loc, node.start_mark.line + 1)
