"""simulate's notices per recipient: alone, digests, the busiest day; before and after
budgets; two configurations compared; the CLI's --no-budget and --compare."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from engine.cli import main
from engine.config import load_config
from engine.notify.compose import Composer
from engine.simulate.core import simulate
from engine.simulate.notices import check_every_notice_told_once, fired_step, notice_volume
from engine.simulate.render import print_comparison
from engine.sla_clock.meter import ClockMeter
from tests.helpers import EXAMPLE_CONFIG, unbudgeted
from tests.unit.test_simulate import at, created, ev

CONFIG = load_config(EXAMPLE_CONFIG)
UNTIL = at(60)  # the response steps of a P1 ØKF ticket (15 minutes), not its resolution's


def test_notices_over_the_budget_go_into_digests_and_each_is_told_once() -> None:
    run = simulate(ClockMeter(CONFIG), [created("A"), created("B")], UNTIL)
    volume = notice_volume(CONFIG, run.steps)
    before = notice_volume(CONFIG, run.steps, budget=False)
    assert volume.notices == before.notices == before.messages
    assert sum(len(Composer(CONFIG).notices(fired_step(CONFIG, s))) for s in run.steps) == (
        volume.notices
    )
    assert check_every_notice_told_once(volume) == []
    # The first step's e-mail: A's alone at 7.5 minutes, B's (same instant) held.
    [first] = [s for s in run.steps if (s.ticket_id, s.metric, s.step) == ("A", "response", 0.5)]
    email = next(
        n.recipient
        for n in Composer(CONFIG).notices(fired_step(CONFIG, first))
        if n.channel == "email"
    )
    [mine] = [r for r in volume.recipients if (r.channel, r.recipient) == ("email", email)]
    assert mine.alone >= 1
    assert mine.digests >= 1
    assert mine.held >= 1
    assert mine.messages < mine.notices
    assert mine.max_day <= mine.max_day_before
    # E-mail is budgeted, machines are not: they get every notice alone.
    for r in volume.recipients:
        if r.channel != "email":
            assert (r.messages, r.digests) == (r.notices, 0)
    assert volume.messages < before.messages


def test_without_budgets_every_notice_is_a_message() -> None:
    run = simulate(ClockMeter(CONFIG), [created("A"), created("B")], UNTIL)
    volume = notice_volume(unbudgeted(CONFIG), run.steps)
    assert all(r.messages == r.alone == r.notices for r in volume.recipients)
    assert all(r.max_day == r.max_day_before for r in volume.recipients)


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "table"])
def test_a_comparison_shows_notices_per_recipient_under_both(fmt: str) -> None:
    run = simulate(ClockMeter(CONFIG), [created("A"), created("B")], UNTIL)
    volumes = (notice_volume(unbudgeted(CONFIG), run.steps), notice_volume(CONFIG, run.steps))
    out = io.StringIO()
    print_comparison(run, run, ("a", "b"), fmt, out, volumes)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "messages_a" in text
    if fmt == "json":
        document = json.loads(text)
        rows = document["notices_compare"]
        assert document["totals"]["messages_a"] == volumes[0].messages
        assert document["totals"]["messages_b"] == volumes[1].messages
        assert sum(r["messages_a"] for r in rows) == volumes[0].messages
        assert sum(r["messages_b"] for r in rows) == volumes[1].messages
        assert any(r["messages_b"] < r["messages_a"] for r in rows)


def write_events(path: Path) -> None:
    path.write_text(
        "".join(e.model_dump_json() + "\n" for e in (created("A"), created("B"))), "utf-8"
    )


def test_the_cli_prints_notices_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events)
    until = UNTIL.isoformat()
    common = [str(events), "--config", str(EXAMPLE_CONFIG), "--until", until, "--workers", "1"]
    assert main(["simulate", *common, "--format", "json", "--summary-only"]) == 0
    budgeted = json.loads(capsys.readouterr().out)
    assert main(["simulate", *common, "--format", "json", "--summary-only", "--no-budget"]) == 0
    before = json.loads(capsys.readouterr().out)
    totals, before_totals = budgeted["totals"], before["totals"]
    assert totals["notices"] == before_totals["notices"] == before_totals["messages"]
    assert totals["messages"] < totals["notices"]
    assert totals["budgeted"] is True
    assert before_totals["budgeted"] is False
    assert {r["channel"] for r in budgeted["notices"]} >= {"email"}
    assert totals["recipients_over_daily"] == 0


def test_the_cli_compares_notices_of_two_configurations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events)
    other = tmp_path / "config"
    other.mkdir()
    for path in EXAMPLE_CONFIG.rglob("*.yaml"):
        target = other / path.relative_to(EXAMPLE_CONFIG)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text("utf-8"), "utf-8")
    notices = yaml.safe_load((other / "notices.yaml").read_text("utf-8"))
    notices["notices"]["email"] = {"window": "15m"}  # b: no e-mail budget
    (other / "notices.yaml").write_text(yaml.safe_dump(notices), "utf-8")
    argv = ["simulate", str(events), "--config", str(EXAMPLE_CONFIG), "--compare", str(other),
            "--until", UNTIL.isoformat(), "--format", "json", "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    totals = document["totals"]
    assert totals["notices_a"] == totals["notices_b"] == totals["messages_b"]
    assert totals["messages_a"] < totals["messages_b"]
    email = [r for r in document["notices_compare"] if r["channel"] == "email"]
    assert any(r["messages_a"] < r["messages_b"] for r in email)


def test_each_step_carries_the_assignment_the_ticket_had_when_it_fell_due() -> None:
    # Assigned at minute 10: between the 0.5 step (7.5) and the 0.75 step (11.25).
    assigned = ev("ticket.assigned", "A", 1, 10, function="pc-software")
    run = simulate(ClockMeter(CONFIG), [created("A"), assigned], UNTIL)
    response = {s.step: s.assigned_function for s in run.steps if s.clock_key == "response"}
    assert response[0.5] is None
    assert response[0.75] == "pc-software"
    assert response[2.0] == "pc-software"
    # The notices follow it as the daemon's would: the same Composer, the same step.
    late = next(s for s in run.steps if s.clock_key == "response" and s.step == 0.75)
    assert fired_step(CONFIG, late).assigned_function == "pc-software"
