"""Load ``config/``: read every YAML file, validate it, merge the files and cross-check them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from engine.config.agreement import AgreementConfig
from engine.config.checks import Located, VersionOrigins, cross_check
from engine.config.models import ConfigFile
from engine.config.problems import ConfigError, Origin, Problem, format_loc
from engine.config.yaml_source import Loc, YamlDocument, YamlError, read_yaml

_LIST_SECTIONS = ("calendars", "services", "escalation_policies", "olas", "departments")
_SINGLE_SECTIONS = ("general_contract", "provider")
_OPTIONAL_SECTIONS = ("notices",)  # at most once, like the single ones; defaults without it


@dataclass(frozen=True)
class LoadedConfig:
    """A checked configuration and its version: a hash of the files it was loaded from."""

    config: AgreementConfig
    version: str


def load_config(directory: str | Path) -> AgreementConfig:
    """Load and check the configuration in ``directory``; raise ``ConfigError`` listing problems."""
    return load_versioned(directory).config


def load_versioned(directory: str | Path) -> LoadedConfig:
    """``load_config``, with the version of the files loaded.

    The version hashes each file's path under ``directory`` and its bytes, so it is the
    same on every host given the same files (``check-config`` prints it, ``/readyz``
    shows the one an engine runs), and a file moved, added or edited changes it.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError([Problem(str(root), "", "no such configuration directory")])
    paths = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not paths:
        raise ConfigError([Problem(str(root), "", "no .yaml files in the directory")])

    problems: list[Problem] = []
    files: list[tuple[YamlDocument, ConfigFile]] = []
    for path in paths:
        parsed = _read_file(path, problems)
        if parsed is not None:
            files.append(parsed)
    if problems:  # cross-checks over a partial configuration would only add noise
        raise ConfigError(problems)

    items, versions, config = _merge(root, files, problems)
    if config is not None:
        problems.extend(cross_check(config, items, versions))
    if problems or config is None:
        raise ConfigError(problems)
    return LoadedConfig(config, _version(root, [document for document, _ in files]))


def _version(root: Path, documents: Iterable[YamlDocument]) -> str:
    """12 hex digits of a SHA-256 over each file's relative path and digest, in path order."""
    listing = sorted(
        (document.path.relative_to(root).as_posix(), document.digest) for document in documents
    )
    text = "".join(f"{path}\0{digest}\n" for path, digest in listing)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _read_file(path: Path, problems: list[Problem]) -> tuple[YamlDocument, ConfigFile] | None:
    try:
        document = read_yaml(path)
    except YamlError as exc:
        problems.append(Problem(str(path), format_loc(exc.loc), exc.message, exc.line))
        return None
    except OSError as exc:
        problems.append(Problem(str(path), "", f"cannot be read: {exc.strerror or exc}"))
        return None
    if document.data is None or document.data == {}:
        # An emptied file would otherwise drop a department's SLA without a word.
        problems.append(Problem(str(path), "", "the file holds no sections", 1))
        return None
    if not isinstance(document.data, dict):
        kind = "a list" if isinstance(document.data, list) else "a single value"
        problems.append(
            Problem(
                str(path),
                "",
                f"the file must hold a mapping of sections, not {kind}",
                document.line_of(()),
            )
        )
        return None
    try:
        return document, ConfigFile.model_validate(document.data)
    except ValidationError as exc:
        problems.extend(_validation_problems(document, exc.errors()))
        return None


def _validation_problems(document: YamlDocument, errors: Iterable[ErrorDetails]) -> list[Problem]:
    problems = []
    for error in errors:
        loc: Loc = tuple(part for part in error["loc"] if part != "[key]")
        problems.append(
            Problem(
                file=str(document.path),
                key=format_loc(loc),
                message=_message(error),
                line=document.line_of(loc),
            )
        )
    return problems


def _message(error: ErrorDetails) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind != "value_error" and isinstance(value, str | int | float | bool):
        message += f" (got {value!r})"
    return message


def _merge(
    root: Path, files: list[tuple[YamlDocument, ConfigFile]], problems: list[Problem]
) -> tuple[Located, VersionOrigins, AgreementConfig | None]:
    """Key every section's items by id across files; report ids and sections seen twice.

    Departments, OLAs and the general contract may come in versions: items of one id
    (or several ``general_contract`` sections) that differ in ``valid_from``.
    """
    items: Located = {}
    versions: VersionOrigins = {}
    collected: dict[str, dict[str, list[Any]]] = {name: {} for name in _VERSIONED}
    merged: dict[str, Any] = {name: {} for name in _LIST_SECTIONS}
    for document, parsed in files:
        for section in _LIST_SECTIONS:
            for index, item in enumerate(getattr(parsed, section)):
                key = item.function if section == "olas" else item.id
                origin = Origin(document, (section, index))
                if section in _VERSIONED:
                    if _versioned(section, key, item, origin, versions, problems):
                        collected[section].setdefault(key, []).append(item)
                        items.setdefault((section, key), origin)
                    continue
                first = items.get((section, key))
                if first is not None:
                    problems.append(
                        origin.problem(
                            f"duplicate id {key!r}, first defined at "
                            f"{first.document.path}:{first.document.line_of(first.loc)}"
                        )
                    )
                    continue
                items[(section, key)] = origin
                merged[section][key] = item
        for section in _SINGLE_SECTIONS + _OPTIONAL_SECTIONS:
            value = getattr(parsed, section)
            if value is None:
                continue
            origin = Origin(document, (section,))
            if section in _VERSIONED:
                if _versioned(section, "", value, origin, versions, problems):
                    collected[section].setdefault("", []).append(value)
                    items.setdefault((section, ""), origin)
                continue
            first = items.get((section, ""))
            if first is not None:
                problems.append(
                    origin.problem(f"{section} is defined twice; first in {first.document.path}")
                )
                continue
            items[(section, "")] = origin
            merged[section] = value
    for section, by_key in collected.items():
        for key, found in by_key.items():
            ordered = tuple(sorted(found, key=_start_order))
            # The versions' origins by key alone point at the first version.
            items[(section, key)] = versions[(section, key, ordered[0].valid_from)]
            problems.extend(_first_version(section, key, ordered[0], items[(section, key)]))
            if section == "general_contract":
                merged[section] = ordered[0]
                if len(ordered) > 1:
                    merged["contract_versions"] = ordered
                continue
            if ordered[0].valid_from is None:
                merged[section][key] = ordered[0]
            if len(ordered) > 1 or ordered[0].valid_from is not None:
                merged.setdefault(_VERSIONS_FIELD[section], {})[key] = ordered
    for section in _SINGLE_SECTIONS:
        if section not in merged:
            problems.append(Problem(str(root), section, "no file defines this section"))
    if any(section not in merged for section in _SINGLE_SECTIONS):
        return items, versions, None
    return items, versions, AgreementConfig.model_validate(merged)


# The sections whose items come in versions, each in force from its valid_from.
_VERSIONED = ("departments", "olas", "general_contract")
_VERSIONS_FIELD = {"departments": "department_versions", "olas": "ola_versions"}
_WHAT = {"departments": "department", "olas": "OLA of function", "general_contract": ""}
_BEGINNING = datetime.min.replace(tzinfo=UTC)


def _start_order(version: Any) -> datetime:
    start: datetime | None = version.valid_from
    return _BEGINNING if start is None else start


def _versioned(
    section: str,
    key: str,
    item: Any,
    origin: Origin,
    versions: VersionOrigins,
    problems: list[Problem],
) -> bool:
    """Note a version of a versioned item; False (reported) when one of the same id is
    already in force from the same instant."""
    start: datetime | None = item.valid_from
    first = versions.get((section, key, start))
    if first is None:
        versions[(section, key, start)] = origin
        return True
    where = f"{first.document.path}:{first.document.line_of(first.loc)}"
    if start is None and section == "general_contract":
        message = f"general_contract is defined twice; first in {first.document.path}"
    elif start is None:
        what = "a second OLA for function" if section == "olas" else "duplicate id"
        message = f"{what} {key!r}, first defined at {where}"
    else:
        name = f"{_WHAT[section]} {key!r}" if key else "the general contract"
        message = (
            f"two versions of {name} are valid from the same instant "
            f"({start.isoformat()}), first at {where}; give each version its own valid_from"
        )
    problems.append(origin.problem(message, *(("valid_from",) if start is not None else ())))
    return False


def _first_version(section: str, key: str, first: Any, origin: Origin) -> list[Problem]:
    """A department or the general contract must be in force from the beginning of time."""
    if first.valid_from is None or section == "olas":
        return []  # an OLA may begin later: before it, its function has no OLA clocks
    name = f"department {key!r}" if key else "the general contract"
    return [
        origin.problem(
            f"the first version of {name} has a valid_from, but some version must be in "
            "force before it too: leave valid_from out of the first version",
            "valid_from",
        )
    ]
