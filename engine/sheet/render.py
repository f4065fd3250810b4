"""Lay the worded sheet out as HTML or Markdown, through the Jinja2 templates of ``templates/``.

HTML is autoescaped, and Markdown passes every value through ``markdown_escape``: either
way a name from the configuration is shown as written and can never become markup.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Literal, get_args

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from engine.config import AgreementConfig
from engine.sheet.view import Href, department_sheet, index_sheet
from engine.sheet.words import Language, words

SheetFormat = Literal["html", "md"]
FORMATS: tuple[SheetFormat, ...] = get_args(SheetFormat)

# CommonMark's inline punctuation, and what would start a block at a value's beginning.
_MD_INLINE = re.compile(r"([\\`*_\[\]<>|#&~])")
# A backslash escapes punctuation only, so "1." is kept from a list as "1\.", not "\1.".
_MD_BLOCK_START = re.compile(r"^(\s*\d*)([-+=.)])(?=\s|$)")


class UnknownDepartment(LookupError):
    """The configuration has no department of that id."""

    def __init__(self, department_id: str, known: list[str]) -> None:
        super().__init__(
            f"no department {department_id!r} in the configuration "
            f"(known: {', '.join(known) or 'none'})"
        )


def markdown_escape(value: object) -> str:
    """A value as Markdown text that shows it literally, on one line (tables need that)."""
    text = " ".join(str(value).split()) if value is not None else ""
    text = _MD_INLINE.sub(r"\\\1", text)
    return _MD_BLOCK_START.sub(r"\1\\\2", text, count=1)


@cache
def _environment(fmt: SheetFormat) -> Environment:
    loader = PackageLoader("engine.sheet", "templates")
    if fmt == "html":
        return Environment(
            loader=loader,
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return Environment(
        loader=loader,
        autoescape=False,
        finalize=markdown_escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def file_href(fmt: SheetFormat) -> Href:
    """Links between the files ``sheet --out`` writes: ``<id>.<fmt>`` and ``index.<fmt>``."""
    return lambda department_id: f"{department_id or 'index'}.{fmt}"


def render_department(
    config: AgreementConfig,
    department_id: str,
    *,
    fmt: SheetFormat,
    language: Language,
    year: int,
    href: Href | None = None,
    at: datetime | None = None,
) -> str:
    """One department's SLA sheet in the version in force at ``at`` (None: the first),
    with the next version's date if one is coming; ``year`` chooses the holidays listed."""
    if department_id not in config.departments:
        raise UnknownDepartment(department_id, sorted(config.departments))
    sheet = department_sheet(config, department_id, language, year, href or file_href(fmt), at)
    template = _environment(fmt).get_template(f"department.{fmt}.j2")
    return template.render(sheet=sheet, w=words(language))


def render_index(
    config: AgreementConfig,
    *,
    fmt: SheetFormat,
    language: Language,
    href: Href | None = None,
    at: datetime | None = None,
) -> str:
    """The index of the departments and the service catalog, as in force at ``at``."""
    sheet = index_sheet(config.at(at), language, href or file_href(fmt))
    template = _environment(fmt).get_template(f"index.{fmt}.j2")
    return template.render(sheet=sheet, w=words(language))
