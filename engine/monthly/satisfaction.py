"""The monthly report's satisfaction section: what the requesters of the month's tickets
said, per service (the follow-up the seed gives the IT-ansvarlig: "opfølgning på
leverancerne og brugens tilfredshed").

Read once per department and month (``satisfaction_source``, the job's ``ExtraSource``)
and worded per language and scope, the system owner's part showing only their services.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.config import AgreementConfig
from engine.config.models import Department
from engine.monthly.document import ExtraSections, ServiceScope, TableSection
from engine.monthly.job import ExtraSource
from engine.monthly.period import Month
from engine.monthly.words import month_words, percent_words, words
from engine.reporting.names import Names
from engine.reporting.satisfaction import satisfaction_of_period
from engine.satisfaction import SCORES, RatingCounts, satisfaction_records
from engine.sheet.words import Language
from engine.store.reads import SatisfactionReads


def satisfaction_source(
    reads: SatisfactionReads, config: Callable[[], AgreementConfig]
) -> ExtraSource:
    """Reads a department's ratings of a month, in its calendar's zone, for its report."""

    async def source(department: Department, month: Month) -> ExtraSections:
        current = config()
        zone = current.calendar_for(department.id).zone
        counts = await satisfaction_of_period(
            reads, month.start(zone), month.end(zone), department.id
        )
        names = Names(current)

        def sections(language: Language, scope: ServiceScope) -> Sequence[TableSection]:
            return (satisfaction_section(counts, month, language, scope, names),)

        return sections

    return source


def satisfaction_section(
    counts: Sequence[RatingCounts],
    month: Month,
    language: Language,
    scope: ServiceScope,
    names: Names,
) -> TableSection:
    """The section: per service the rated tickets, mean score, share of 4-5, each score."""
    w = words(language)
    shown = [c for c in counts if scope is None or c.service in scope]
    records = sorted(satisfaction_records(shown), key=lambda r: names.service(r["service"]))
    decimal = w["decimal_point"]
    return TableSection(
        key="satisfaction",
        heading=w["satisfaction_heading"],
        intro=w["satisfaction_intro"],
        caption=w["satisfaction_caption"].format(month=month_words(month, language)),
        columns=(
            w["col_service"],
            w["col_ratings"],
            w["col_mean_score"],
            w["col_satisfied"],
            *(w["col_score"].format(score=s) for s in SCORES),
        ),
        numeric=(False, *(True,) * (3 + len(SCORES))),
        rows=tuple(
            (
                names.service(r["service"]),
                str(r["ratings"]),
                f"{r['mean_score']:.2f}".replace(".", decimal),
                percent_words(r["satisfied_pct"], language),
                *(str(r[f"score_{s}"]) for s in SCORES),
            )
            for r in records
        ),
        empty=w["satisfaction_none"],
        records=tuple({"section": "satisfaction", **r} for r in records),
    )
