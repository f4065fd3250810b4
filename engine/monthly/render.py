"""The monthly report laid out: static HTML (the e-mail's and ``report --format html``),
its CSV, and the e-mail notice that carries both. Pure.

HTML through Jinja2 with autoescape, so a name from the configuration is shown as
written and never becomes markup; the SLA sheet's stylesheet, so the two read alike
and print on A4.
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources
from uuid import UUID, uuid5

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from engine.monthly.document import MONTHLY_COLUMNS, MonthlyDocument
from engine.monthly.words import month_words, words
from engine.notify.notice import Attachment, ChannelName, Notice

# Fixed for ever: report notice ids are derived from it, and receivers dedupe on them.
MONTHLY_NAMESPACE = UUID("9c3e4f0a-51d7-4b8e-a2c6-7f1d0e8b3a95")


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("engine.monthly", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _css() -> str:
    return (
        resources.files("engine.sheet")
        .joinpath("templates")
        .joinpath("sheet.css")
        .read_text(encoding="utf-8")
    )


def render_html(document: MonthlyDocument) -> str:
    """The report as one static HTML page: no scripts, semantic tables, a lang attribute."""
    template = _environment().get_template("monthly.html.j2")
    return template.render(doc=document, w=words(document.language), css=_css())


def render_csv(document: MonthlyDocument) -> str:
    """Every section's rows as one CSV table, told apart by its ``section`` column."""
    extra = [k for r in document.records for k in r if k not in MONTHLY_COLUMNS]
    columns = [*MONTHLY_COLUMNS, *dict.fromkeys(extra)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in document.records:
        writer.writerow(["" if record.get(c) is None else record[c] for c in columns])
    return out.getvalue()


def render_text(document: MonthlyDocument) -> str:
    """The plain-text part of the e-mail: the facts, and where the rest is."""
    w = words(document.language)
    lines = [
        w["text_intro"].format(
            department=document.department_name,
            month=month_words(document.month, document.language),
        ),
        "",
        document.lead,
    ]
    if document.scope_note:
        lines += ["", document.scope_note]
    lines += ["", *(f"{name}: {value}" for name, value in document.facts), ""]
    lines.append(w["text_attachment"].format(filename=document.csv_name))
    return "\n".join(lines) + "\n"


def report_notice_id(department: str, month: str, channel: ChannelName, recipient: str) -> UUID:
    """The stable id of one report to one recipient: the same month, the same id."""
    return uuid5(MONTHLY_NAMESPACE, f"{department}/{month}/{channel}/{recipient}")


def report_notice(document: MonthlyDocument, recipient: str, recipient_name: str) -> Notice:
    """The e-mail of a report: plain text, the HTML beside it, the CSV attached."""
    return Notice(
        notice_id=report_notice_id(document.department_id, str(document.month), "email", recipient),
        channel="email",
        recipient=recipient,
        recipient_name=recipient_name,
        subject=document.subject,
        body=render_text(document),
        payload={
            "kind": "monthly_report",
            "department": document.department_id,
            "month": str(document.month),
        },
        language=document.language,
        html=render_html(document),
        attachments=(Attachment(document.csv_name, "text/csv", render_csv(document)),),
    )
