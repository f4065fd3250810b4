"""The SLA sheet rendered from a configuration: what each section says, in both languages and
both formats, and that nothing from the configuration becomes markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from engine.config import AgreementConfig, load_config
from engine.sheet import UnknownDepartment, render_department, render_index
from engine.sheet.render import markdown_escape
from tests.helpers import EXAMPLE_CONFIG, EditYaml

CONFIG = load_config(EXAMPLE_CONFIG)
DASH = "\N{EN DASH}"  # the sheet writes spans as 08:00\N{EN DASH}16:00
HOSTILE = '<script>alert("x")</script> & <b>Co</b>'


class Page(HTMLParser):
    """The parts of a page the checks read: text, tags with their attributes, tables."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(html)
        self.text = re.sub(r"\s+", " ", " ".join(self.chunks))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for name, _ in self.tags if name == tag)


def department(
    config: AgreementConfig = CONFIG, dep: str = "okf", lang: Any = "da", fmt: Any = "html"
) -> str:
    return render_department(config, dep, fmt=fmt, language=lang, year=2026)


def test_a_page_is_static_accessible_html() -> None:
    for lang in ("da", "en"):
        html = department(lang=lang)
        page = Page(html)
        assert html.startswith("<!DOCTYPE html>")
        assert ("html", {"lang": lang}) in page.tags
        assert page.count("script") == 0
        assert page.count("table") == page.count("caption") > 10
        headers = [attrs for tag, attrs in page.tags if tag == "th"]
        assert headers
        assert all(attrs.get("scope") in ("col", "row") for attrs in headers)
        assert page.count("h1") == 1
        assert "@page { size: A4" in html
        assert "break-inside: avoid" in html


def test_each_ordered_service_with_owner_targets_and_price() -> None:
    page = Page(department(dep="okf")).text
    assert "Serviceaftale (SLA) for Økonomiforvaltningen" in page
    # Its own targets: Opus Løn P1 15m/2h, a batch service counted in the batch windows too.
    assert (
        "P1: Svar inden 15 minutter i åbningstiden og batchvinduerne, løsning inden 2 timer, "
        "nyt til brugeren senest 1 time efter seneste opdatering." in page
    )
    # A target left out comes from the contract: fakturering P1 30m/4h, P3 its own 2h/16h.
    assert "P3: Svar inden 2 timer i åbningstiden, løsning inden 16 timer." in page
    assert "Ansvarlig funktion Administration og Økonomi" in page
    assert "Pris 36.000 kr." in page  # datavarehus
    order = [page.index(name) for name in ("KMD Opus Løn", "Datavarehus og", "Udviklingsbest")]
    assert order == sorted(order), "services in the order the department lists them"


def test_english_page_says_the_same() -> None:
    page = Page(department(dep="okf", lang="en")).text
    assert "Service level agreement (SLA) for Økonomiforvaltningen" in page
    assert (
        "P1: Response within 15 minutes in opening hours and batch windows, "
        "resolution within 2 hours, news to the requester at most 1 hour after the last "
        "update." in page
    )
    assert "Price DKK 36,000" in page


def test_the_calendar_hours_holidays_and_batch_windows() -> None:
    page = Page(department(dep="okf")).text
    assert f"mandag 08:00{DASH}16:00" in page
    assert f"fredag 08:00{DASH}15:00" in page
    assert "lørdag lukket" in page
    # The office calendar observes the 'optional' days too.
    assert "fredag 5. juni 2026: Grundlovsdag" in page
    assert "torsdag 24. december 2026: Juleaftensdag" in page
    assert f"søndag 22:00{DASH}06:00 (til næste morgen)" in page
    assert "Batchvinduerne gælder også på helligdage og lukkedage." in page
    assert (
        "er også dækket i batchvinduerne: KMD Opus Løn, Datavarehus og ledelsesinformation, "
        "Backup og gendannelse." in page
    )
    # KFF's extended calendar keeps statutory holidays only, and has no batch windows.
    kff = Page(department(dep="kff")).text
    assert "Grundlovsdag" not in kff
    assert "Juledag" in kff
    assert "Kalenderen har ingen batchvinduer." in kff
    # Care: open every minute, so its targets count round the clock.
    sof = Page(department(dep="sof", lang="en")).text
    assert "The calendar has no holidays: it is open every day of the year." in sof
    assert "Response within 15 minutes round the clock" in sof


def test_closure_days_and_days_kept_open(config_dir: Path, edit_yaml: EditYaml) -> None:
    def change(data: Any) -> None:
        office = data["calendars"][0]
        office["holidays"]["dates"] = ["2026-07-17"]
        office["holidays"]["open_dates"] = ["2026-05-14"]  # Kristi himmelfartsdag

    edit_yaml("calendars.yaml", change)
    page = Page(department(load_config(config_dir), dep="okf")).text
    assert "Ekstra lukkedage: fredag 17. juli 2026" in page
    assert "Holder åbent trods helligdag eller lukkedag: torsdag 14. maj 2026" in page
    assert "torsdag 14. maj 2026: Kristi himmelfartsdag" not in page


def test_escalation_steps_say_who_is_told_at_each_tier() -> None:
    page = Page(department(dep="okf")).text
    holder = "Den, der har sagen hos leverandøren (Servicedeskleder, mens sagen ikke er tildelt)"
    assert "Eskaleringsforløbet »Standard eskalering«" in page
    # A warning goes to those who can still act: the provider side only.
    assert (
        f"Ved 50 % af målet Advarsel: målet nærmer sig Operationelt niveau {holder} "
        "Kundeteam ØKF Ved 75 %"
    ) in page
    # The breach: the department's tactical tier too, a service's system owner for their own.
    assert (
        f"Ved 100 % af målet Målet er overskredet Taktisk niveau {holder} Kundeteam ØKF "
        "Økonomisystemteam, ØKF Systemejer, Opus Løn (for KMD Opus Løn) "
        "Systemejer, ledelsesinformation (for Datavarehus og ledelsesinformation)"
    ) in page
    assert (
        f"Ved 200 % af målet Overskridelsen eskaleres Strategisk niveau {holder} Kundeteam ØKF "
        "IT-chef, Koncernservice IT-ansvarlig, ØKF"
    ) in page
    sof = Page(department(dep="sof", lang="en")).text
    assert "The escalation policy “Kritisk eskalering (omsorg)”" in sof
    # SOF's policy names the department as an audience of its 75% warning.
    assert "At 75% of the target Warning: the target is near Tactical tier Whoever" in sof
    assert "Kundeteam SOF Fagsystemteam, SOF Systemejer, Cura (for Omsorgssystem (Cura))" in sof


def test_contacts_customer_team_matrix_defaults_and_prices() -> None:
    page = Page(department(dep="sf")).text
    assert "IT-ansvarlig (strategisk niveau) IT-ansvarlig, SF it-ansvarlig@sf.kk.dk" in page
    assert "Systemejer for ESDH og journalsystem Systemejer, journalsystem" in page
    assert "Kundeteam hos leverandøren Kundeteam Socialforvaltningen team-sf@" in page
    assert "Påvirkning høj P1 P2 P3" in page
    assert "Påvirkning lav P3 P4 P4" in page
    assert "Sager om andre ydelser følges efter rammeaftalens standardmål" in page
    assert "P4: Svar inden 8 timer i åbningstiden, løsning inden 80 timer." in page
    assert "Hosting af fagsystemer 48.000 kr." in page
    assert "PC-arbejdsplads ingen særskilt pris (indgår i rammeaftalen)" in page


def test_the_index_lists_departments_and_the_catalog_with_the_positive_list() -> None:
    page = Page(render_index(CONFIG, fmt="html", language="da"))
    assert ("a", {"href": "okf.html"}) in page.tags
    assert "Økonomiforvaltningen Kontortid (hverdage) 11" in page.text
    assert "Sikkerhedsgennemgang (ekstern audit) sikkerhedsaudit Salg og Kunderådgivning" in (
        page.text
    )
    assert "65.000 kr. Nej" in page.text
    assert f"Netværk og VPN netvaerk-vpn Server og Netværk {DASH} Ja" in page.text
    markdown = render_index(CONFIG, fmt="md", language="en")
    assert "| [Økonomiforvaltningen](okf.md) |" in markdown
    assert (
        "| GIS-konsulentbistand | gis-konsulent | Salg og Kunderådgivning | DKK 1,150 | No |"
        in (markdown)
    )


def test_markdown_says_the_same_as_html() -> None:
    markdown = department(dep="okf", fmt="md")
    assert markdown.startswith("# Serviceaftale (SLA) for Økonomiforvaltningen\n")
    assert "| P1 | 15 minutter | 2 timer | 1 time | svar og løsning |" in markdown
    assert "- **P3:** Svar inden 2 timer i åbningstiden, løsning inden 16 timer." in markdown
    assert "| Datavarehus og ledelsesinformation | 36.000 kr. |" in markdown
    assert "[Alle forvaltninger og servicekataloget](index.md)" in markdown


def test_an_unknown_department_is_refused() -> None:
    with pytest.raises(UnknownDepartment, match=r"no department 'nope'.*known: bif, buf"):
        department(dep="nope")


@pytest.fixture
def hostile(config_dir: Path, edit_yaml: EditYaml) -> AgreementConfig:
    """The example with markup in every name a department's page shows."""

    def catalog(data: Any) -> None:
        data["services"][3]["name"] = HOSTILE + " | *Løn* [x](y)"  # opus-loen
        data["services"][3]["description"] = "# heading\n- item\n1. first"

    def okf(data: Any) -> None:
        dep = data["departments"][0]
        dep["name"] = HOSTILE
        dep["contacts"]["strategic"]["name"] = "<img src=x onerror=alert(1)>"

    edit_yaml("catalog.yaml", catalog)
    edit_yaml("departments/okf.yaml", okf)
    edit_yaml("calendars.yaml", lambda data: data["calendars"][0].update(name="</title><i>"))
    return load_config(config_dir)


def test_html_escapes_everything_from_the_configuration(hostile: AgreementConfig) -> None:
    for html in (department(hostile, "okf"), render_index(hostile, fmt="html", language="en")):
        page = Page(html)
        assert page.count("script") == page.count("img") == page.count("i") == 0
        assert page.count("b") == 0
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;" in html
        assert HOSTILE in page.text  # shown as written
    page = Page(department(hostile, "okf"))
    assert "<img src=x onerror=alert(1)>" in page.text
    assert "</title><i>" in page.text


def test_markdown_escapes_everything_from_the_configuration(hostile: AgreementConfig) -> None:
    markdown = department(hostile, "okf", fmt="md")
    assert re.findall(r"(?<!\\)[<>]", markdown) == [], "every angle bracket escaped"
    assert "\\<script\\>" in markdown
    assert "\\<img src=x onerror=alert(1)\\>" in markdown
    assert "\\| \\*Løn\\* \\[x\\](y)" in markdown
    # A multi-line description stays on its line, and starts no heading or list.
    assert "- Beskrivelse: \\# heading - item 1. first" in markdown
    for line in markdown.splitlines():
        if line.startswith("|"):
            assert line.count("|") - line.count("\\|") in (3, 4, 5, 6), line


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a|b", "a\\|b"),
        ("*x* _y_ `z`", "\\*x\\* \\_y\\_ \\`z\\`"),
        ("[l](u)", "\\[l\\](u)"),
        ("<b>&amp;", "\\<b\\>\\&amp;"),
        ("- item", "\\- item"),
        ("1. first", "1\\. first"),
        ("36.000 kr.", "36.000 kr."),
        ("two\nlines", "two lines"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_markdown_escape(value: str, escaped: str) -> None:
    assert markdown_escape(value) == escaped
