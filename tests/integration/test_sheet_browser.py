"""The SLA sheets in a real browser: what a person sees on the written and the served pages.

Headless Chromium from Debian's package (``make services-test`` installs it), driven by
playwright. A missing browser fails these tests: they are the check that the pages read
as an agreement, and a skip would pass unseen. Screenshots are left in
``build/test-artefacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from engine.cli import main
from engine.config import load_config, load_versioned
from engine.ops.http_port import HttpPort, Parts
from engine.running import ConfigInForce, RunningConfig
from tests.helpers import EXAMPLE_CONFIG, REPO

pytestmark = pytest.mark.integration
CHROMIUM = Path(os.environ.get("SLA_ENGINE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = REPO / "build" / "test-artefacts"
CONFIG = load_config(EXAMPLE_CONFIG)
RUNNING = RunningConfig(ConfigInForce(load_versioned(EXAMPLE_CONFIG), datetime.now(UTC)))
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.is_file(), (
        f"no browser at {CHROMIUM}: `make services-test` installs Debian's chromium "
        "(or set SLA_ENGINE_TEST_CHROMIUM)"
    )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        await launched.close()


async def screenshot(page: Page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(PNG)
    return path


async def expect_the_agreement(page: Page, department_id: str, *, english: bool) -> None:
    """What the department's reader must see: name, services with targets, contacts, prices."""
    department = CONFIG.departments[department_id]
    await expect(page.locator("h1")).to_contain_text(department.name)
    for service_id in department.services:
        service = CONFIG.services[service_id]
        section = page.locator("section.service").filter(
            has=page.get_by_role("heading", name=service.name, exact=True, level=3)
        )
        await expect(section).to_be_visible()
        # Each priority's targets as a sentence, the way the reader takes them in.
        sentences = section.locator("ul.sentences li")
        await expect(sentences).to_have_count(4)
        first = "P1: Response within" if english else "P1: Svar inden"
        await expect(sentences.first).to_contain_text(first)
        await expect(sentences.first).to_contain_text(re.compile(r"\d+ (minut|time|hour)"))
    contacts = page.get_by_role("table", name="The department's contacts" if english else
                                "Forvaltningens kontakter")  # fmt: skip
    await expect(contacts).to_be_visible()
    for tier in ("strategic", "tactical", "operational"):
        contact = department.contacts.for_tier(tier)
        assert contact is not None
        assert contact.email is not None
        await expect(contacts.get_by_role("row").filter(has_text=contact.email)).to_be_visible()
    prices = page.get_by_role(
        "table", name="Prices of the ordered services" if english else
        "Priser for de bestilte ydelser"
    )  # fmt: skip
    await expect(prices.get_by_role("row")).to_have_count(len(department.services) + 1)


async def test_the_written_pages_read_as_the_agreement(browser: Browser, tmp_path: Path) -> None:
    assert main(["sheet", "--config", str(EXAMPLE_CONFIG), "--out", str(tmp_path)]) == 0
    page = await browser.new_page(viewport={"width": 1000, "height": 1400})
    await page.goto((tmp_path / "index.html").as_uri())
    await expect(page.get_by_role("table", name="Servicekataloget")).to_be_visible()
    await page.get_by_role("link", name="Økonomiforvaltningen").click()
    await expect(page).to_have_url(re.compile(r"/okf\.html$"))

    await expect_the_agreement(page, "okf", english=False)
    opus = page.locator("section.service").filter(has_text="KMD Opus Løn").first
    await expect(opus).to_contain_text(
        "P1: Svar inden 15 minutter i åbningstiden og batchvinduerne, løsning inden 2 timer"
    )
    prices = page.get_by_role("table", name="Priser for de bestilte ydelser")
    await expect(
        prices.get_by_role("row", name="Datavarehus og ledelsesinformation")
    ).to_contain_text("36.000 kr.")
    await expect(page.get_by_role("table", name="Eskaleringstrin")).to_contain_text(
        "Systemejer, Opus Løn (for KMD Opus Løn)"
    )
    await screenshot(page, "sheet-okf-da.png")

    # On paper: A4 pages, and the page's own links left out.
    await page.emulate_media(media="print")
    await expect(page.locator("nav.contents")).to_be_hidden()
    pdf = await page.pdf(prefer_css_page_size=True)
    sizes = set(re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf))
    assert sizes, "a page size in the PDF"
    for width, height in sizes:  # A4 is 595 x 842 points
        assert (round(float(width)), round(float(height))) == (595, 842)


async def test_the_served_page_reads_as_the_agreement_in_english(browser: Browser) -> None:
    port = HttpPort(Parts(RUNNING, "postgresql://unused"), "127.0.0.1", 0)
    await port.start()
    try:
        # The browser's language chooses the page's.
        context = await browser.new_context(
            locale="en-GB", viewport={"width": 1000, "height": 1400}
        )
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port.port}/departments/")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await page.get_by_role("link", name="Sundheds- og Omsorgsforvaltningen").click()
        await expect(page).to_have_url(re.compile(r"/departments/sof$"))

        await expect_the_agreement(page, "sof", english=True)
        cura = page.locator("section.service").filter(has_text="Omsorgssystem (Cura)").first
        await expect(cura).to_contain_text(
            "P1: Response within 15 minutes round the clock, resolution within 2 hours, "
            "news to the requester at most 30 minutes after the last update."
        )
        prices = page.get_by_role("table", name="Prices of the ordered services")
        await expect(prices.get_by_role("row", name="Omsorgssystem (Cura)")).to_contain_text(
            "DKK 120,000"
        )
        await expect(page.get_by_text("The calendar has no holidays")).to_be_visible()
        await screenshot(page, "sheet-sof-en-served.png")
        await context.close()
    finally:
        await port.stop()
