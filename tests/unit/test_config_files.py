"""Odd files: whatever a file holds, loading ends in problems naming it, never a traceback."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.business_time.spec import HolidaySpec
from engine.config import load_config, yaml_source
from engine.config.durations import parse_duration
from tests.helpers import EditYaml
from tests.unit.test_config import line_of, only_problem, problems_of


def write(config_dir: Path, text: str | bytes, name: str = "odd.yaml") -> Path:
    """Add a file to the copied configuration."""
    path = config_dir / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return path


class TestShapes:
    @pytest.mark.parametrize("text", ["", "# nothing here yet\n", "---\n", "{}\n"])
    def test_file_without_sections(self, config_dir: Path, text: str) -> None:
        path = write(config_dir, text)
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "")
        assert problem.message == "the file holds no sections"

    @pytest.mark.parametrize(
        ("text", "kind"),
        [("# the calendars\n- id: office\n", "a list"), ("hello\n", "a single value")],
    )
    def test_file_that_is_not_a_mapping(self, config_dir: Path, text: str, kind: str) -> None:
        path = write(config_dir, text)
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "")
        assert problem.message == f"the file must hold a mapping of sections, not {kind}"
        assert problem.line == (2 if kind == "a list" else 1)

    def test_bytes_that_are_not_utf8(self, config_dir: Path) -> None:
        path = write(config_dir, "services:\n  - name: Caf\xe9\n".encode("latin-1"))
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "", 2)
        assert problem.message == "not UTF-8: byte 0xe9 cannot be decoded"

    @pytest.mark.parametrize(("char", "code"), [("\x07", "0007"), ("\x00", "0000")])
    def test_control_character(self, config_dir: Path, char: str, code: str) -> None:
        path = write(config_dir, f"services:\n  - id: print{char}\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "", 2)
        assert problem.message == f"not valid YAML: character U+{code} is not allowed"

    def test_null_list_section(self, config_dir: Path) -> None:
        path = write(config_dir, "# to do\ncalendars: ~\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "calendars", 2)
        assert problem.message == "the section is empty: fill it in or remove the key"

    def test_blank_provider_is_not_taken_for_absent(self, config_dir: Path) -> None:
        path = config_dir / "provider.yaml"
        path.write_text("provider:\n  # to be filled in\n", "utf-8")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "provider", 1)
        assert problem.message == "the section is empty: fill it in or remove the key"

    def test_blank_provider_beside_a_real_one(self, config_dir: Path) -> None:
        path = write(config_dir, "provider: ~\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "provider")
        assert "the section is empty" in problem.message

    def test_key_that_is_a_list(self, config_dir: Path) -> None:
        path = write(config_dir, "services:\n  - ? [a, b]\n    : x\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "services[0]", 2)
        assert problem.message == "a key must be a plain name, not a list or mapping"

    def test_unsupported_tag(self, config_dir: Path) -> None:
        path = write(config_dir, "services: !!set {print, esdh}\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "services")
        assert problem.message == "the tag tag:yaml.org,2002:set is not supported"


class TestValues:
    def test_impossible_date(self, config_dir: Path) -> None:
        path = config_dir / "calendars.yaml"
        text = path.read_text("utf-8").replace(
            "      categories: [public, optional]\n",
            "      categories: [public, optional]\n      dates: [2026-12-23, 2026-02-30]\n",
            1,
        )
        path.write_text(text, "utf-8")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "calendars[0].holidays.dates[1]")
        assert problem.message == "'2026-02-30' is not a valid date: day is out of range for month"
        assert problem.line == text.splitlines().index("      dates: [2026-12-23, 2026-02-30]") + 1

    def test_integer_with_too_many_digits(self, config_dir: Path) -> None:
        path = write(config_dir, "services:\n  - price_dkk: " + "9" * 5000 + "\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "services[0].price_dkk", 2)
        assert problem.message == (
            f"'{'9' * 37}...' is not a valid int: Exceeds the limit (4300 digits) "
            "for integer string conversion: value has 5000 digits"
        )

    @pytest.mark.parametrize(
        ("day", "field"),
        [(date(1899, 12, 31), "dates"), (date(2200, 1, 1), "open_dates"), (date(1, 1, 1), "dates")],
    )
    def test_closure_date_outside_the_calendar_years(
        self, edit_yaml: EditYaml, day: date, field: str
    ) -> None:
        path = edit_yaml(
            "calendars.yaml",
            lambda d: d["calendars"][1]["holidays"].update({field: [date(2026, 12, 23), day]}),
        )
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), f"calendars[1].holidays.{field}[1]")
        assert problem.message == f"{day} lies outside the years 1900-2199 a calendar handles"

    def test_closure_dates_at_the_edges_of_the_calendar_years(self) -> None:
        spec = HolidaySpec(dates=(date(1900, 1, 1), date(2199, 12, 31)))
        assert spec.dates == (date(1900, 1, 1), date(2199, 12, 31))
        with pytest.raises(ValidationError, match="outside the years 1900-2199"):
            HolidaySpec(open_dates=(date(2200, 1, 1),))

    def test_explicit_tag_on_a_value_it_does_not_fit(self, config_dir: Path) -> None:
        path = write(config_dir, "services:\n  - batch: !!bool maybe\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "services[0].batch", 2)
        assert problem.message == "'maybe' is not a valid bool"

    def test_huge_duration(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0]["services"]["skole-it-aula"]["targets"]["P1"].update(
                response="99999999999h"
            ),
        )
        problem = only_problem(path.parent.parent)
        assert problem.file == str(path)
        assert problem.key == "departments[0].services.skole-it-aula.targets.P1.response"
        assert problem.message == (
            "duration '99999999999h' is longer than 10000h, the longest target allowed"
        )

    @pytest.mark.parametrize("text", ["10000h1s", "600001m", "9" * 5000 + "s"])
    def test_duration_over_the_limit(self, text: str) -> None:
        with pytest.raises(ValueError, match="is longer than 10000h"):
            parse_duration(text)

    def test_duration_at_the_limit(self) -> None:
        assert parse_duration("9999h60m") == parse_duration("10000h")


_YAMLISH = st.text(
    st.sampled_from(list("[]{}:-&*<!,'\"? \n\tab01.~#|>%@`\u00e9\x07")), max_size=200
)
"""Text made mostly of YAML's punctuation, so examples reach the parser's odd corners."""


@settings(max_examples=300, deadline=None)
@given(st.one_of(_YAMLISH.map(str.encode), st.binary(max_size=100)))
def test_any_bytes_give_data_or_a_yaml_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "any.yaml"
        path.write_bytes(data)
        with contextlib.suppress(yaml_source.YamlError):
            yaml_source.read_yaml(path)


class TestAliases:
    @pytest.mark.parametrize(
        ("text", "key"),
        [("calendars: &a [*a]\n", "calendars[0]"), ("provider: &p {name: *p}\n", "provider.name")],
    )
    def test_recursive_alias(self, config_dir: Path, text: str, key: str) -> None:
        path = write(config_dir, text)
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), key, 1)
        assert problem.message == "recursive alias: a value contains an alias of itself"

    def test_recursive_merge(self, config_dir: Path) -> None:
        path = write(config_dir, "provider: &p\n  name: x\n  <<: *p\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "provider")
        assert "recursive alias" in problem.message

    def test_alias_expansion_blow_up(
        self, config_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(yaml_source, "MAX_NODES", 10_000)  # the real limit takes seconds
        levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"] + [
            f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)
        ]
        path = write(config_dir, "\n".join(levels) + "\n")
        problem = only_problem(config_dir)
        assert problem.file == str(path)
        assert problem.message == (
            "the file expands to more than 10,000 values (aliases that repeat aliases?)"
        )

    def test_file_over_the_size_limit_is_refused_unread(self, config_dir: Path) -> None:
        # One byte over: refused before parsing (a 24 MB file took minutes and gigabytes).
        path = write(config_dir, b"calendars: []\n" + b"#" * yaml_source.MAX_FILE_BYTES)
        problem = only_problem(config_dir)
        assert (problem.file, problem.key, problem.line) == (str(path), "", None)
        assert problem.message == (
            f"the file is larger than {yaml_source.MAX_FILE_BYTES:,} bytes, the most read"
        )

    def test_file_at_the_size_limit_is_read(self, config_dir: Path) -> None:
        text = b"calendars: []\n"
        write(config_dir, text + b"#" * (yaml_source.MAX_FILE_BYTES - len(text)))
        assert load_config(config_dir).calendars

    @pytest.mark.parametrize("depth", [150, 600])
    def test_deep_nesting(self, config_dir: Path, depth: int) -> None:
        path = write(config_dir, "services: " + "[" * depth + "]" * depth + "\n")
        problem = only_problem(config_dir)
        assert (problem.file, problem.line) == (str(path), 1)
        assert problem.message == "nested deeper than 100 levels"


class TestMergeKeys:
    SHARED = (
        "      tactical: &buf-it\n"
        "        name: IT-koordinator, BUF\n"
        "        email: it-koordinator@buf.kk.dk\n"
        "        language: en\n"
        "      operational:\n"
        "        <<: *buf-it\n"
        "        name: IT-support, BUF\n"
    )

    @staticmethod
    def share_contacts(config_dir: Path, shared: str) -> Path:
        path = config_dir / "departments" / "buf.yaml"
        text = path.read_text("utf-8")
        start = text.index("      tactical:\n")
        end = text.index("      system_owners:\n")
        path.write_text(text[:start] + shared + text[end:], "utf-8")
        return path

    def test_written_key_overrides_the_merged_one(self, config_dir: Path) -> None:
        self.share_contacts(config_dir, self.SHARED)
        contacts = load_config(config_dir).departments["buf"].contacts
        assert contacts.operational is not None
        assert contacts.operational.name == "IT-support, BUF"
        assert contacts.operational.email == "it-koordinator@buf.kk.dk"
        assert contacts.operational.language == "en"
        assert contacts.tactical is not None
        assert contacts.tactical.name == "IT-koordinator, BUF"

    def test_a_key_written_twice_is_still_a_duplicate(self, config_dir: Path) -> None:
        path = self.share_contacts(config_dir, self.SHARED + "        name: IT, BUF\n")
        problem = only_problem(config_dir)
        assert problem.file == str(path)
        assert problem.key == "departments[0].contacts.operational.name"
        assert problem.message == (
            f"duplicate key 'name' (first on line {line_of(path, 'name: IT-support, BUF')})"
        )

    def test_merged_value_is_reported_where_it_is_written(self, config_dir: Path) -> None:
        path = self.share_contacts(
            config_dir, self.SHARED.replace("it-koordinator@buf.kk.dk", "it-koordinator")
        )
        problems = problems_of(config_dir)
        assert [(p.file, p.key) for p in problems] == [
            (str(path), "departments[0].contacts.tactical.email"),
            (str(path), "departments[0].contacts.operational.email"),
        ]
        assert {p.line for p in problems} == {line_of(path, "email: it-koordinator")}
        assert problems[1].message == "'it-koordinator' is not an e-mail address"

    def test_merging_something_else_than_a_mapping(self, config_dir: Path) -> None:
        path = self.share_contacts(
            config_dir,
            self.SHARED.replace(
                "      tactical: &buf-it\n", "      note: &buf-it just a text\n      tactical:\n"
            ),
        )
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "departments[0].contacts.operational")
        assert problem.message == "'<<' merges a mapping or a list of mappings"
