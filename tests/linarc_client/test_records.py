"""Validation at the boundary: hostile and malformed records become problems or invalid
entries with clear reasons, never exceptions; content_hash tracks staged fields."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

import pytest

from linarc_client import InvalidRecord, LinarcProtocolError, ProjectRecord, parse_project
from linarc_client.emulator import HOSTILE_IDS
from linarc_client.records import parse_page

UNKNOWN_STATUS = (
    "Unknown status 'Punch List'; expected Bidding, Pre-Construction, Active, On Hold, "
    "Completed or Closed"
)


def _hostile(client, case: str) -> ProjectRecord:
    return client.get_project(HOSTILE_IDS[case])


def _listed(client) -> dict[str, ProjectRecord]:
    return {r.linarc_id: r for page in client.iter_pages() for r in page.records}


# --- the emulator's hostile cases, one test each ------------------------------------------


def test_colon_in_name_is_kept_verbatim(linarc_client):
    record = _hostile(linarc_client, "colon_in_name")

    assert record.name == "Harbor Point: Phase 2 Parking Structure"
    assert record.problems == ()


def test_300_character_name_is_kept_whole(linarc_client):
    record = _hostile(linarc_client, "long_name")

    assert len(record.name) == 300
    assert record.name.startswith("Cascade County Schools District-Wide Modernization")
    assert record.problems == ()  # shortening for QBO's 100 characters is the QBO side's job


def test_emoji_in_name_survive_the_round_trip(linarc_client):
    record = _hostile(linarc_client, "emoji_in_name")

    assert record.name == "Sunrise Daycare 🌅 Playground Renovation 🚧"
    assert record.problems == ()


def test_html_in_name_is_kept_as_text_not_escaped(linarc_client):
    record = _hostile(linarc_client, "html_in_name")

    assert record.name == "<script>alert(1)</script> Lobby Refresh"
    assert record.raw["name"] == record.name


def test_missing_end_date_is_none_without_a_problem(linarc_client):
    record = _hostile(linarc_client, "missing_end_date")

    assert "end_date" not in record.raw
    assert record.end_date is None
    assert record.start_date is not None
    assert record.problems == ()


def test_end_before_start_is_a_problem(linarc_client):
    record = _hostile(linarc_client, "end_before_start")

    assert record.start_date == date(2024, 6, 1)
    assert record.end_date == date(2024, 1, 1)
    assert record.problems == ("End date 2024-01-01 is before start date 2024-06-01",)


def test_duplicate_names_under_different_clients_stay_two_projects(linarc_client):
    records = _listed(linarc_client)
    a = records[HOSTILE_IDS["duplicate_name_a"]]
    b = records[HOSTILE_IDS["duplicate_name_b"]]

    assert a.name == b.name == "Main Street Storefront Renovation"
    assert a.client_name != b.client_name
    assert a.content_hash() != b.content_hash()
    assert a.problems == b.problems == ()


def test_unknown_status_is_a_problem_and_kept(linarc_client):
    record = _hostile(linarc_client, "unknown_status")

    assert record.status == "Punch List"
    assert record.problems == (UNKNOWN_STATUS,)


def test_surrounding_whitespace_is_stripped_from_names(linarc_client):
    assert _hostile(linarc_client, "padded_name").name == "Elm Grove Duplex Remodel"


def test_a_number_sent_as_an_integer_becomes_text(linarc_client):
    record = _hostile(linarc_client, "number_as_int")

    assert record.raw["number"] == 2417
    assert record.number == "2417"
    assert record.problems == ()


def test_a_blank_name_is_a_problem(linarc_client):
    record = _hostile(linarc_client, "empty_name")

    assert record.name == ""
    assert record.problems == ("Project name is empty",)


def test_hostile_cases_can_be_turned_off(linarc_emulator, linarc_client):
    linarc_emulator.reset(projects=60, seed=11, hostile=False)

    records = _listed(linarc_client)

    assert len(records) == 60
    assert not set(HOSTILE_IDS.values()) & set(records)
    assert all(record.problems == () for record in records.values())


# --- the `malformed` fault: wrong JSON types ----------------------------------------------


def test_malformed_page_yields_invalid_entries_and_problems_not_exceptions(
    linarc_emulator, linarc_client
):
    linarc_emulator.inject_fault("malformed")

    page = linarc_client.list_page(1, page_size=20)

    assert [entry.reason for entry in page.invalid] == [
        "Record is text, not a JSON object",
        "Record has no id",
        "Record id is a list, expected text or a number",
    ]
    assert page.invalid[0].raw_excerpt == '"not an object"'
    assert "Project without an id" in page.invalid[1].raw_excerpt
    assert len(page.records) == 17  # the rest of the page is intact
    broken = page.records[0]
    assert broken.number == "2417"
    assert broken.name == ""
    assert broken.client_name == ""
    assert broken.start_date is None and broken.end_date is None
    assert broken.address_line1 == ""
    assert broken.updated_at is None
    assert broken.problems == (
        "Project name is a list, expected text",
        "Unknown status 3; expected Bidding, Pre-Construction, Active, On Hold, "
        "Completed or Closed",
        "Start date 20240101 is not a valid date",
        "End date 'not-a-date' is not a valid date",
        "Client name is an object, expected text",
        "Address is a list, expected an object",
    )
    assert all(record.problems == () for record in page.records[1:4])


def test_malformed_fault_is_consumed_once(linarc_emulator, linarc_client):
    linarc_emulator.inject_fault("malformed")
    linarc_client.list_page(1)

    assert linarc_client.list_page(1).invalid == []


# --- parse_project, unit by unit ----------------------------------------------------------


def _raw(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "42",
        "number": "P-42",
        "name": "Oak Park Library Addition",
        "status": "Active",
        "start_date": "2025-01-15",
        "end_date": "2025-12-01",
        "client_name": "Fairview Public Library",
        "address": {"line1": "1 Main St", "city": "Boise", "state": "ID", "postal_code": "83702"},
        "updated_at": "2025-03-04T10:22:31Z",
    }
    base.update(fields)
    return base


def _parse(**fields: object) -> ProjectRecord:
    record = parse_project(_raw(**fields))
    assert isinstance(record, ProjectRecord)
    return record


def test_a_clean_record_parses_fully():
    record = _parse()

    assert record.problems == ()
    assert record.start_date == date(2025, 1, 15)
    assert record.updated_at == datetime(2025, 3, 4, 10, 22, 31, tzinfo=UTC)
    assert record.address == {
        "line1": "1 Main St",
        "line2": "",
        "city": "Boise",
        "state": "ID",
        "postal_code": "83702",
        "country": "",
    }


def test_an_unreadable_start_date_is_a_problem():
    record = _parse(start_date="not-a-date")

    assert record.start_date is None
    assert record.problems == ("Start date 'not-a-date' is not a valid date",)


def test_a_timestamp_in_a_date_field_keeps_its_calendar_date():
    assert _parse(start_date="2025-01-15T23:30:00-08:00").start_date == date(2025, 1, 15)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("active", "Active"), ("PRE_CONSTRUCTION", "Pre-Construction"), (" on hold ", "On Hold")],
)
def test_status_spelling_is_normalised(given, expected):
    record = _parse(status=given)

    assert record.status == expected
    assert record.problems == ()


def test_a_missing_status_is_a_problem():
    assert _parse(status=None).problems == ("Project status is missing",)


def test_an_integer_id_becomes_text():
    assert _parse(id=1234).linarc_id == "1234"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (["a", "list"], "Record is a list, not a JSON object"),
        (None, "Record is null, not a JSON object"),
        (_raw(id="   "), "Record has an empty id"),
        (_raw(id=True), "Record id is true/false, expected text or a number"),
        (_raw(id="x" * 65), "Record id is longer than 64 characters"),
    ],
)
def test_records_that_cannot_be_staged_are_invalid(raw, reason):
    parsed = parse_project(raw)

    assert isinstance(parsed, InvalidRecord)
    assert parsed.reason == reason
    assert len(parsed.raw_excerpt) <= 200


def test_a_one_line_address_is_kept_as_line1():
    record = _parse(address="  12 Harbor Way, Tacoma WA ")

    assert record.address_line1 == "12 Harbor Way, Tacoma WA"
    assert record.problems == ()


def test_a_numeric_postal_code_becomes_text():
    assert _parse(address={"postal_code": 98101}).postal_code == "98101"


def test_a_number_too_long_for_staging_is_cut_and_reported():
    record = _parse(number="N" * 80)

    assert record.number == "N" * 64
    assert record.problems == ("Project number is longer than 64 characters and was cut",)


def test_raw_is_the_payload_as_received():
    raw = _raw(name="  Padded  ", extra={"nested": [1, 2]})

    record = parse_project(raw)

    assert isinstance(record, ProjectRecord)
    assert record.raw is raw
    assert record.name == "Padded"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "instead of a page object"),
        ({"results": "x", "count": 1, "next": None}, "no 'results' list"),
        ({"results": [], "count": "many", "next": None}, "no valid 'count'"),
        ({"results": [], "count": 1, "next": 7}, "invalid 'next' link"),
        ({"results": [], "count": 1, "next": "http://x/?page=1"}, "does not move forward"),
    ],
)
def test_a_page_of_the_wrong_shape_is_a_protocol_error(payload, message):
    with pytest.raises(LinarcProtocolError, match=message):
        parse_page(payload, page=1)


# --- content_hash -------------------------------------------------------------------------


def test_content_hash_is_stable_and_ignores_key_order_and_extra_fields():
    one = _parse()
    two = parse_project(dict(reversed(list(_raw(extra="ignored").items()))))

    assert isinstance(two, ProjectRecord)
    assert one.content_hash() == two.content_hash()
    assert len(one.content_hash()) == 64
    # Pinned: the staging table stores these, so a drift would make every row look changed.
    assert one.content_hash() == "35e8f0304861cf5c2c33b9df7fe317634c4783da44f11f74f3077b19291f74d8"


def _hash_of_normalized(record: ProjectRecord) -> str:
    """The definition content_hash implements: sha256 of the canonical JSON of normalized()."""
    canonical = json.dumps(
        record.normalized(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_content_hash_is_the_canonical_json_of_normalized_for_every_record(linarc_client):
    records = list(_listed(linarc_client).values())
    quirky = _parse(
        name='Quote " backslash \\ tab \t é 🌅 \u2028',
        number=2417,
        client_name=None,
        address="12 One Line Rd",
        start_date="2025-13-01",
    )
    records.append(quirky)
    assert any(record.problems for record in records)  # the hostile cases are among them

    for record in records:
        assert record.content_hash() == _hash_of_normalized(record), record.linarc_id


def test_content_hash_is_computed_once_per_record():
    record = _parse()
    first = record.content_hash()
    object.__setattr__(record, "name", "Changed behind the cache's back")

    assert record.content_hash() == first  # records are frozen: the cache cannot go stale


def test_content_hash_is_the_same_across_fetches(linarc_client):
    first = linarc_client.get_project("100002")
    second = linarc_client.get_project("100002")

    assert first.content_hash() == second.content_hash()
    assert first == second


def test_content_hash_changes_when_a_staged_field_is_edited(linarc_emulator, linarc_client):
    before = linarc_client.get_project("100002")
    linarc_emulator.update_project("100002", {"address": {"city": "Spokane"}})

    after = linarc_client.get_project("100002")

    assert after.city == "Spokane"
    assert after.content_hash() != before.content_hash()


def test_content_hash_ignores_a_bare_updated_at_bump(linarc_emulator, linarc_client):
    before = linarc_client.get_project("100002")
    linarc_emulator.update_project("100002", {})  # touches updated_at only

    after = linarc_client.get_project("100002")

    assert after.updated_at != before.updated_at
    assert after.content_hash() == before.content_hash()
