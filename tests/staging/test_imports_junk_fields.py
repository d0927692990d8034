"""Junk from Linarc in one field of a project that is already staged: the last good value
is kept, the junk is written once in the row's Change History, and the status moves only
for a real change (issue #12, item 6a).

Junk is a value the record parser reports as a problem (a date that is not a date, a list
where text belongs, an unknown status, an empty name, a value too long for its column). An
empty value where empty is allowed (no end date) is not junk: it is a change like any other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from linarc_client import ProjectRecord, parse_project
from linarc_client import contract as c
from linarc_client.emulator import LinarcEmulator
from linarc_client.emulator.data import HOSTILE_CASES
from linarc_client.records import is_dates_out_of_order, problem_field, sent_value
from staging.imports.pages import import_run_execute
from staging.imports.rows import NO_CUSTOMER_REASON
from staging.imports.runs import import_run_create
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, StagedProject
from staging.models import SyncStatus as Status
from tests.conftest import Personas
from tests.factories import QboCustomerFactory
from tests.fixtures.linarc import connect_company

GOOD = {
    "name": "Maple Ridge Elementary Addition",
    "number": "P-2417",
    "status": "Active",
    "start_date": "2026-03-01",
    "end_date": "2026-09-30",
    "client_name": "Cascade County Schools",
    "address": {"line1": "12 Main St", "city": "Olympia", "state": "WA", "postal_code": "98501"},
}


def import_all(company: Any) -> Run:
    run = import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    run = import_run_execute(run_id=run.pk)
    assert run.state == RunState.DONE, run.error
    return run


def updates(project: StagedProject) -> list[ChangeEvent]:
    return list(
        ChangeEvent.objects.filter(project=project, kind=EventKind.UPDATED).order_by("at", "pk")
    )


def row_values(project: StagedProject) -> dict[str, Any]:
    return StagedProject.objects.filter(pk=project.pk).values().get()


@pytest.fixture
def linarc(
    personas: Personas, linarc_emulator_factory: Callable[..., LinarcEmulator], linarc_settings: Any
) -> LinarcEmulator:
    emulator = linarc_emulator_factory(projects=3, hostile=False)
    connect_company(personas.company, emulator)
    return emulator


@pytest.fixture
def synced(personas: Personas, linarc: LinarcEmulator) -> StagedProject:
    """One project staged with good values and Synced to a QBO job."""
    linarc.add_projects({"id": "junk-1", **GOOD})
    import_all(personas.company)
    customer = QboCustomerFactory(company=personas.company, display_name="Cascade County Schools")
    StagedProject.objects.filter(linarc_id="junk-1").update(
        qbo_customer=customer,
        status=Status.SYNCED,
        status_reason="",
        qbo_record_id="4242",
        qbo_sync_token="3",
        qbo_display_name=GOOD["name"],
    )
    return StagedProject.objects.get(linarc_id="junk-1")


def test_junk_start_date_keeps_the_synced_date_and_records_it_once(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.update_project("junk-1", {"start_date": "not-a-date"})

    run = import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert row.start_date == dt.date(2026, 3, 1)
    assert (row.status, row.status_reason) == (Status.SYNCED, "")
    assert row.problems == []
    assert (row.qbo_record_id, row.qbo_sync_token) == ("4242", "3")
    # Nothing staged changed: the run counts the row unchanged, and its Json Script shows
    # what Linarc sent.
    assert (run.counts["updated"], run.counts["unchanged"]) == (0, 4)
    assert row.source_payload["start_date"] == "not-a-date"
    [entry] = updates(row)
    assert entry.summary == 'Linarc sent an unusable start date ("not-a-date"); kept 2026-03-01'
    assert "changes" not in entry.details and "status" not in entry.details
    assert entry.details["kept"] == {
        "start_date": {
            "sent": '"not-a-date"',
            "kept": "2026-03-01",
            "problems": ["Start date 'not-a-date' is not a valid date"],
        }
    }


def test_the_same_junk_again_writes_nothing(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.update_project("junk-1", {"start_date": "not-a-date"})
    import_all(personas.company)
    before = row_values(synced)
    events_before = ChangeEvent.objects.count()

    again = import_all(personas.company)

    assert (again.counts["updated"], again.counts["unchanged"]) == (0, 4)
    assert row_values(synced) == before
    assert ChangeEvent.objects.count() == events_before
    assert (before["start_date"], before["status"]) == (dt.date(2026, 3, 1), Status.SYNCED)
    assert len(updates(synced)) == 1


def test_a_different_junk_value_is_recorded_once_more(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.update_project("junk-1", {"start_date": "not-a-date"})
    import_all(personas.company)
    linarc.update_project("junk-1", {"start_date": "next spring"})

    import_all(personas.company)
    import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert (row.start_date, row.status) == (dt.date(2026, 3, 1), Status.SYNCED)
    assert [entry.summary for entry in updates(row)] == [
        'Linarc sent an unusable start date ("not-a-date"); kept 2026-03-01',
        'Linarc sent an unusable start date ("next spring"); kept 2026-03-01',
    ]


def test_junk_in_one_field_and_a_real_change_in_another(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.update_project(
        "junk-1", {"start_date": 20260301, "client_name": "Olympia School District"}
    )

    run = import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert row.client_name == "Olympia School District"
    assert row.start_date == dt.date(2026, 3, 1)
    assert (row.status, row.status_reason) == (Status.NEEDS_SYNC, "")
    assert row.problems == []
    assert run.counts["updated"] == 1
    [entry] = updates(row)
    assert entry.summary == (
        "Updated from Linarc: client. "
        "Linarc sent an unusable start date (20260301); kept 2026-03-01"
    )
    assert entry.details["changes"] == {
        "client_name": ["Cascade County Schools", "Olympia School District"]
    }
    assert entry.details["status"] == [Status.SYNCED, Status.NEEDS_SYNC]
    assert set(entry.details["kept"]) == {"start_date"}


def test_a_later_real_change_does_not_repeat_junk_already_recorded(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.update_project("junk-1", {"start_date": "not-a-date"})
    import_all(personas.company)
    linarc.update_project("junk-1", {"name": "Maple Ridge Elementary Gym"})

    import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert (row.name, row.start_date) == ("Maple Ridge Elementary Gym", dt.date(2026, 3, 1))
    assert row.status == Status.NEEDS_SYNC
    _first, second = updates(row)
    assert second.summary == "Updated from Linarc: name"
    assert "kept" not in second.details


def test_junk_in_every_field_keeps_every_good_value(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    before = row_values(synced)
    linarc.update_project(
        "junk-1",
        {
            "name": ["Maple", "Ridge"],
            "number": "N" * 600,
            "status": 3,
            "start_date": 20240101,
            "end_date": "not-a-date",
            "client_name": {"name": "Cascade County Schools"},
            "address": ["12 Main St"],
        },
    )

    import_all(personas.company)

    after = row_values(synced)
    staged_fields = ("name", "number", "project_status", "start_date", "end_date")
    for name in (*staged_fields, "client_name", "address", "status", "status_reason"):
        assert after[name] == before[name], name
    assert after["problems"] == []
    [entry] = updates(synced)
    assert set(entry.details["kept"]) == {
        "name",
        "number",
        "project_status",
        "start_date",
        "end_date",
        "client_name",
        "address",
    }
    assert 'Linarc sent an unusable project name (["Maple", "Ridge"]); kept "Maple Ridge' in (
        entry.summary
    )
    assert 'Linarc sent an unusable project status (3); kept "Active"' in entry.summary


def test_junk_in_one_address_part_keeps_that_part_only(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.update_project(
        "junk-1", {"address": {"line1": "14 Main St", "city": ["Olympia"], "state": "WA"}}
    )

    import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert row.address["line1"] == "14 Main St"
    assert row.address["city"] == "Olympia"
    assert row.status == Status.NEEDS_SYNC
    [entry] = updates(row)
    assert set(entry.details["kept"]) == {"address.city"}
    assert entry.summary.endswith(
        'Linarc sent an unusable address city (["Olympia"]); kept "Olympia"'
    )


def test_junk_start_date_after_a_real_end_date_change_still_checks_their_order(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    """The kept start date takes part in the end-before-start check of the new end date."""
    linarc.update_project("junk-1", {"start_date": "soon", "end_date": "2026-01-15"})

    import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert (row.start_date, row.end_date) == (dt.date(2026, 3, 1), dt.date(2026, 1, 15))
    assert row.status == Status.NEEDS_ACTION
    assert row.status_reason == "End date 2026-01-15 is before start date 2026-03-01"


@pytest.mark.parametrize("emptied", [None, ""], ids=["left_out", "empty_text"])
def test_an_end_date_emptied_in_linarc_is_a_real_change_not_junk(
    emptied: Any, personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    """No end date is a valid value (docs/bad-input.md, Linarc dates): applied, not kept,
    while the junk start date sent beside it is kept. A JSON merge patch with null removes
    the key, which is what Linarc does for an unset date."""
    linarc.update_project("junk-1", {"end_date": emptied, "start_date": "not-a-date"})

    import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert (row.start_date, row.end_date) == (dt.date(2026, 3, 1), None)
    assert (row.status, row.problems) == (Status.NEEDS_SYNC, [])
    [entry] = updates(row)
    assert entry.details["changes"] == {"end_date": ["2026-09-30", None]}
    assert set(entry.details["kept"]) == {"start_date"}


def test_a_new_project_with_junk_needs_action_as_before(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    linarc.add_projects({**GOOD, "id": "junk-2", "start_date": "not-a-date"})

    import_all(personas.company)

    row = StagedProject.objects.get(linarc_id="junk-2")
    assert row.start_date is None
    assert row.status == Status.NEEDS_ACTION
    assert row.status_reason == "Start date 'not-a-date' is not a valid date"
    assert row.problems == ["Start date 'not-a-date' is not a valid date"]


def test_junk_where_no_good_value_was_ever_staged_still_needs_action(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    """A row staged with junk has nothing good to keep: new junk replaces the old reason."""
    linarc.add_projects({**GOOD, "id": "junk-2", "start_date": "not-a-date"})
    import_all(personas.company)
    linarc.update_project("junk-2", {"start_date": "next spring"})

    import_all(personas.company)

    row = StagedProject.objects.get(linarc_id="junk-2")
    assert (row.start_date, row.status) == (None, Status.NEEDS_ACTION)
    assert row.status_reason == "Start date 'next spring' is not a valid date"
    [entry] = updates(row)
    assert "kept" not in entry.details


def test_a_junk_address_keeps_nothing_when_a_part_of_it_was_never_good(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    """The address is one column: kept whole only when every part of it is good."""
    linarc.add_projects({**GOOD, "id": "junk-2", "address": {"line1": "9 Bay Rd", "city": [1]}})
    import_all(personas.company)
    linarc.update_project("junk-2", {"address": ["9 Bay Rd"]})

    import_all(personas.company)

    row = StagedProject.objects.get(linarc_id="junk-2")
    assert (row.address["line1"], row.status) == ("", Status.NEEDS_ACTION)
    assert row.status_reason == "Address is a list, expected an object"


def test_junk_on_a_row_waiting_for_its_customer_keeps_the_good_value(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    """Any staged row keeps its good values, not only a Synced one."""
    linarc.add_projects({**GOOD, "id": "junk-2"})
    import_all(personas.company)
    linarc.update_project("junk-2", {"end_date": "whenever"})

    import_all(personas.company)

    row = StagedProject.objects.get(linarc_id="junk-2")
    assert row.end_date == dt.date(2026, 9, 30)
    assert (row.status, row.status_reason) == (Status.NEEDS_ACTION, NO_CUSTOMER_REASON)
    assert len(updates(row)) == 1


def test_linarc_fixing_the_junk_restores_nothing_and_writes_nothing(
    personas: Personas, linarc: LinarcEmulator, synced: StagedProject
) -> None:
    """Linarc sends the good value again: it equals what was kept, so nothing changes."""
    linarc.update_project("junk-1", {"start_date": "not-a-date"})
    import_all(personas.company)
    events_before = ChangeEvent.objects.count()
    linarc.update_project("junk-1", {"start_date": GOOD["start_date"]})

    run = import_all(personas.company)

    row = StagedProject.objects.get(pk=synced.pk)
    assert (row.start_date, row.status) == (dt.date(2026, 3, 1), Status.SYNCED)
    assert ChangeEvent.objects.count() == events_before
    assert run.counts["updated"] == 0


# --- the parser's side: which field each problem is about -------------------------------------


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"number": True}, ["number"]),
        ({"number": ["7"]}, ["number"]),
        ({"number": "N" * 65}, ["number"]),
        ({"name": ["Maple", "Ridge"]}, ["name"]),
        ({"name": " \t "}, ["name"]),
        ({"name": None}, ["name"]),
        ({"status": 3}, ["status"]),
        ({"status": None}, ["status"]),
        ({"status": "Punch List"}, ["status"]),
        ({"status": "X" * 65}, ["status", "status"]),
        ({"start_date": "next spring"}, ["start_date"]),
        ({"start_date": 20240101}, ["start_date"]),
        ({"end_date": "2024-02-30"}, ["end_date"]),
        ({"start_date": "2024-06-01", "end_date": "2024-01-01"}, [None]),
        ({"client_name": {"name": "Cascade"}}, ["client_name"]),
        ({"client_name": "C" * 501}, ["client_name"]),
        ({"address": ["12 Main St"]}, ["address"]),
        ({"address": 5}, ["address"]),
        ({"address": {"line1": True, "city": ["x"], "postal_code": {}}}, [
            "address_line1", "city", "postal_code"
        ]),
        ({"address": {"line2": [1], "state": False, "country": {}}}, [
            "address_line2", "state", "country"
        ]),
    ],
)  # fmt: skip
def test_every_problem_of_the_parser_names_its_field(
    raw: dict[str, Any], fields: list[str | None]
) -> None:
    record = parse_project({"id": "7", "name": "Named", "status": "Active", **raw})
    assert isinstance(record, ProjectRecord)
    assert [problem_field(problem) for problem in record.problems] == fields
    for field in filter(None, fields):
        assert sent_value(record.raw, field) == _sent(raw, field)


def _sent(raw: dict[str, Any], field: str) -> Any:
    """The raw value behind a problem: an address part inside ``address``."""
    parts = dict(c.ADDRESS_FIELDS)
    return raw["address"].get(parts[field]) if field in parts else raw.get(field)


def test_every_problem_of_the_emulators_hostile_projects_is_placed() -> None:
    """Each problem the emulator's hostile projects give names a field, or is the one about
    two dates: a problem staging cannot place would never let its field keep a good value."""
    for case, fields in HOSTILE_CASES.items():
        record = parse_project({"id": case, "name": "Named", "status": "Active", **fields})
        assert isinstance(record, ProjectRecord)
        for problem in record.problems:
            assert problem_field(problem) or is_dates_out_of_order(problem), problem
