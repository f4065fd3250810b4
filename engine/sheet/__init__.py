"""The SLA sheet: a department's agreement in plain words, as HTML or Markdown.

Pure: the configuration goes in, text comes out. The CLI (``sla-engine sheet``) writes
the pages to files and the HTTP port serves them; neither adds to what they say.
"""

from engine.sheet.render import (
    FORMATS,
    SheetFormat,
    UnknownDepartment,
    file_href,
    render_department,
    render_index,
)
from engine.sheet.words import DEFAULT_LANGUAGE, LANGUAGES, Language, choose_language

__all__ = [
    "DEFAULT_LANGUAGE",
    "FORMATS",
    "LANGUAGES",
    "Language",
    "SheetFormat",
    "UnknownDepartment",
    "choose_language",
    "file_href",
    "render_department",
    "render_index",
]
