"""Imports against the live Linarc emulator: each mode, edits, deletions, hostile data,
Linarc failures and idempotence."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from linarc_client.emulator import HOSTILE_IDS
from staging.imports import pages as import_pages
from staging.imports.pages import import_run_execute
from staging.imports.rows import NO_CUSTOMER_REASON
from staging.imports.runs import (
    ImportAlreadyRunning,
    ImportRefused,
    import_run_create,
    import_start,
)
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, StagedProject
from staging.models import SyncStatus as Status
from tests.factories import QboCustomerFactory

FIRST_ID = "100001"


def run_import(company: Any, kind: str, actor: Any = None, **kwargs: Any) -> Run:
    run = import_run_create(company=company, kind=kind, actor=actor, **kwargs)
    return import_run_execute(run_id=run.pk)


def plain_ids(emulator: Any, count: int) -> list[str]:
    """Ids of ordinary generated projects (the hostile cases take some generated slots)."""
    ids = (str(n) for n in range(100001, 100001 + emulator.state.projects))
    return [i for i in ids if emulator.project(i) is not None][:count]


def staged(company: Any, linarc_id: str) -> StagedProject:
    return StagedProject.objects.get(company=company, linarc_id=linarc_id)


def mark(company: Any, linarc_id: str, status: str, **fields: Any) -> None:
    StagedProject.objects.filter(company=company, linarc_id=linarc_id).update(
        status=status, **fields
    )


@pytest.fixture
def company(personas: Any, linarc_connection: Any) -> Any:
    return personas.company


# --- Import New -----------------------------------------------------------------------------


def test_import_new_stages_every_project_as_needs_action(
    company: Any, personas: Any, linarc_emulator: Any
) -> None:
    run = run_import(company, RunKind.IMPORT_NEW, personas.operator)

    assert run.state == RunState.DONE, run.error
    total = linarc_emulator.state.projects
    assert run.counts["fetched"] == total
    assert run.counts["created"] == total
    assert run.counts["invalid"] == 0
    assert run.processed == run.total == total
    assert StagedProject.objects.filter(company=company).count() == total
    plain = staged(company, FIRST_ID)
    assert plain.status == Status.NEEDS_ACTION
    assert plain.status_reason == NO_CUSTOMER_REASON
    assert plain.name == linarc_emulator.project(FIRST_ID)["name"]
    assert plain.address["city"]
    assert plain.source_hash and plain.source_payload["id"] == FIRST_ID
    imported = ChangeEvent.objects.filter(company=company, kind=EventKind.IMPORTED)
    assert imported.count() == total
    assert imported.filter(actor=personas.operator).count() == total


def test_import_new_never_touches_staged_projects(company: Any, linarc_emulator: Any) -> None:
    run_import(company, RunKind.IMPORT_NEW)
    before = staged(company, FIRST_ID)
    linarc_emulator.update_project(FIRST_ID, {"name": "Renamed in Linarc"})
    linarc_emulator.add_projects({"id": "777001", "name": "Brand New Clinic", "status": "Active"})
    events_before = ChangeEvent.objects.count()

    run = run_import(company, RunKind.IMPORT_NEW)

    assert run.state == RunState.DONE
    assert run.counts["created"] == 1
    assert run.counts["skipped"] == linarc_emulator.state.projects - 1
    after = staged(company, FIRST_ID)
    assert after.name == before.name != "Renamed in Linarc"
    assert after.updated_at == before.updated_at
    assert staged(company, "777001").name == "Brand New Clinic"
    assert ChangeEvent.objects.count() == events_before + 1


# --- Import All -----------------------------------------------------------------------------


def test_import_all_twice_changes_nothing_the_second_time(company: Any) -> None:
    first = run_import(company, RunKind.IMPORT_ALL)
    rows_before = {p.pk: p.updated_at for p in StagedProject.objects.filter(company=company)}
    events_before = ChangeEvent.objects.count()

    second = run_import(company, RunKind.IMPORT_ALL)

    assert second.state == RunState.DONE
    assert second.counts["created"] == 0
    assert second.counts["updated"] == 0
    assert second.counts["deleted"] == 0
    assert second.counts["unchanged"] == first.counts["created"]
    assert ChangeEvent.objects.count() == events_before
    assert {
        p.pk: p.updated_at for p in StagedProject.objects.filter(company=company)
    } == rows_before


def test_reimport_after_edit_records_diff_and_moves_synced_to_needs_sync(
    company: Any, linarc_emulator: Any
) -> None:
    run_import(company, RunKind.IMPORT_ALL)
    ids = plain_ids(linarc_emulator, 5)
    mark(company, ids[0], Status.SYNCED, status_reason="")
    mark(company, ids[1], Status.FAILED, status_reason="QBO said no")
    mark(company, ids[2], Status.QUEUED, status_reason="")
    # ids[3] stays Needs Action (no customer)
    mark(company, ids[4], Status.SYNCED, status_reason="")
    old = linarc_emulator.project(ids[0])
    for linarc_id in ids[:4]:
        linarc_emulator.update_project(
            linarc_id, {"name": f"Edited {linarc_id}", "address": {"city": "Olympia"}}
        )
    # A Linarc edit of nothing we stage (updated_at only) must not unsettle a synced row.
    linarc_emulator.update_project(ids[4], {"updated_at": "2025-07-01T00:00:00Z"})

    run = run_import(company, RunKind.IMPORT_ALL)

    assert run.counts["updated"] == 4
    assert run.counts["unchanged"] == linarc_emulator.state.projects - 4
    synced = staged(company, ids[0])
    assert synced.status == Status.NEEDS_SYNC
    assert synced.name == f"Edited {ids[0]}"
    assert synced.address["city"] == "Olympia"
    event = ChangeEvent.objects.get(project=synced, kind=EventKind.UPDATED)
    assert event.details["changes"]["name"] == [old["name"], f"Edited {ids[0]}"]
    assert event.details["changes"]["address"][1]["city"] == "Olympia"
    assert set(event.details["changes"]) == {"name", "address"}
    assert event.details["status"] == [Status.SYNCED, Status.NEEDS_SYNC]
    assert staged(company, ids[1]).status == Status.FAILED
    assert staged(company, ids[1]).status_reason == "QBO said no"
    assert staged(company, ids[2]).status == Status.QUEUED
    assert staged(company, ids[3]).status == Status.NEEDS_ACTION
    for linarc_id in ids[1:4]:
        assert ChangeEvent.objects.filter(
            project__linarc_id=linarc_id, kind=EventKind.UPDATED
        ).exists()
    assert staged(company, ids[4]).status == Status.SYNCED
    assert not ChangeEvent.objects.filter(
        project__linarc_id=ids[4], kind=EventKind.UPDATED
    ).exists()

    again = run_import(company, RunKind.IMPORT_ALL)
    assert again.counts["updated"] == 0
    assert ChangeEvent.objects.filter(kind=EventKind.UPDATED).count() == 4


def test_deleted_in_linarc_is_flagged_not_removed_and_returns(
    company: Any, linarc_emulator: Any
) -> None:
    run_import(company, RunKind.IMPORT_ALL)
    mark(company, "100010", Status.SYNCED)
    linarc_emulator.delete_project("100010")

    run = run_import(company, RunKind.IMPORT_ALL)

    assert run.counts["deleted"] == 1
    gone = staged(company, "100010")
    assert gone.deleted_in_linarc is True
    assert gone.status == Status.SYNCED
    assert ChangeEvent.objects.filter(project=gone, kind=EventKind.DELETED_IN_LINARC).count() == 1
    # Idempotent: not flagged twice.
    assert run_import(company, RunKind.IMPORT_ALL).counts["deleted"] == 0
    assert ChangeEvent.objects.filter(project=gone, kind=EventKind.DELETED_IN_LINARC).count() == 1

    # It comes back (restored in Linarc): the flag clears, with an event.
    linarc_emulator.add_projects({**gone.source_payload})
    back = run_import(company, RunKind.IMPORT_ALL)
    assert back.counts["updated"] == 1
    gone.refresh_from_db()
    assert gone.deleted_in_linarc is False
    event = ChangeEvent.objects.filter(project=gone, kind=EventKind.UPDATED).get()
    assert event.details["changes"] == {"deleted_in_linarc": [True, False]}


def test_import_new_never_flags_deletions(company: Any, linarc_emulator: Any) -> None:
    run_import(company, RunKind.IMPORT_NEW)
    linarc_emulator.delete_project("100010")
    run = run_import(company, RunKind.IMPORT_NEW)
    assert run.counts["deleted"] == 0
    assert not StagedProject.objects.filter(deleted_in_linarc=True).exists()


# --- Import Selected ------------------------------------------------------------------------


def test_import_selected_fetches_only_those_projects(company: Any, linarc_emulator: Any) -> None:
    run = run_import(
        company, RunKind.IMPORT_SELECTED, linarc_ids=["100004", " 100007 ", "100004", "404404"]
    )

    assert run.state == RunState.DONE
    assert run.params["linarc_ids"] == ["100004", "100007", "404404"]
    assert run.counts["created"] == 2
    assert run.counts["not_found"] == 1
    assert run.params["not_found"] == ["404404"]
    assert set(StagedProject.objects.values_list("linarc_id", flat=True)) == {"100004", "100007"}
    assert linarc_emulator.counters()["requests"]["GET /api/v1/projects/{linarc_id}"] == 3

    linarc_emulator.update_project("100004", {"status": "Closed"})
    mark(company, "100004", Status.SYNCED)
    again = run_import(company, RunKind.IMPORT_SELECTED, linarc_ids=["100004", "100007"])
    assert again.counts["updated"] == 1
    assert again.counts["unchanged"] == 1
    row = staged(company, "100004")
    assert row.project_status == "Closed"
    assert row.status == Status.NEEDS_SYNC


def test_import_selected_needs_ids(company: Any) -> None:
    with pytest.raises(ImportRefused, match="Select at least one"):
        import_run_create(company=company, kind=RunKind.IMPORT_SELECTED, actor=None, linarc_ids=[])


# --- hostile and invalid data ---------------------------------------------------------------


def test_hostile_records_are_staged_needing_action_with_the_reason(company: Any) -> None:
    run = run_import(company, RunKind.IMPORT_ALL)

    assert run.state == RunState.DONE
    empty = staged(company, HOSTILE_IDS["empty_name"])
    assert empty.status == Status.NEEDS_ACTION
    assert empty.status_reason == "Project name is empty"
    assert empty.problems == ["Project name is empty"]
    unknown = staged(company, HOSTILE_IDS["unknown_status"])
    assert "Unknown status 'Punch List'" in unknown.status_reason
    backwards = staged(company, HOSTILE_IDS["end_before_start"])
    assert "is before start date" in backwards.status_reason
    html = staged(company, HOSTILE_IDS["html_in_name"])
    assert html.name == "<script>alert(1)</script> Lobby Refresh"
    assert staged(company, HOSTILE_IDS["padded_name"]).name == "Elm Grove Duplex Remodel"
    assert staged(company, HOSTILE_IDS["number_as_int"]).number == "2417"
    assert "🌅" in staged(company, HOSTILE_IDS["emoji_in_name"]).name
    event = ChangeEvent.objects.get(project=empty, kind=EventKind.IMPORTED)
    assert event.details["problems"] == ["Project name is empty"]


def test_mapped_project_with_problems_stays_needs_action_until_fixed(
    company: Any, linarc_emulator: Any
) -> None:
    run_import(company, RunKind.IMPORT_ALL)
    linarc_id = HOSTILE_IDS["empty_name"]
    customer = QboCustomerFactory(company=company)
    mark(company, linarc_id, Status.NEEDS_ACTION, qbo_customer=customer)
    before = staged(company, linarc_id)
    linarc_emulator.update_project(linarc_id, {"end_date": "not-a-date"})

    run_import(company, RunKind.IMPORT_ALL)
    row = staged(company, linarc_id)
    assert row.status == Status.NEEDS_ACTION
    assert row.status_reason == "Project name is empty"
    # A junk end date keeps the staged one (tests/staging/test_imports_junk_fields.py).
    assert row.end_date == before.end_date

    linarc_emulator.update_project(linarc_id, {"name": "Fixed Name", "end_date": None})
    run_import(company, RunKind.IMPORT_ALL)
    row.refresh_from_db()
    assert row.problems == []
    assert row.status == Status.NEEDS_SYNC  # mapped and clean: ready to sync
    assert row.status_reason == ""


def test_malformed_records_are_counted_invalid_and_the_import_goes_on(
    company: Any, linarc_emulator: Any
) -> None:
    run_import(company, RunKind.IMPORT_ALL)
    before = staged(company, FIRST_ID)
    linarc_emulator.inject_fault("malformed", route="list")

    run = run_import(company, RunKind.IMPORT_ALL)

    assert run.state == RunState.DONE
    assert run.counts["invalid"] == 3
    reasons = [item["reason"] for item in run.params["invalid"]]
    assert "Record has no id" in reasons
    assert any("not a JSON object" in reason for reason in reasons)
    # The malformed copy of the first project is not dropped: its one readable change (a
    # number) applies, its junk fields keep their staged values and the history says so.
    first = staged(company, FIRST_ID)
    assert first.number == "2417"
    assert (first.name, first.start_date) == (before.name, before.start_date)
    assert (first.status, first.status_reason) == (Status.NEEDS_ACTION, NO_CUSTOMER_REASON)
    update = ChangeEvent.objects.get(project=first, kind=EventKind.UPDATED)
    assert "end_date" in update.details["kept"]
    # Records replaced by junk were not seen; deletions are not guessed from such a list.
    assert run.params["deletions_checked"] is False
    assert not StagedProject.objects.filter(deleted_in_linarc=True).exists()


# --- Linarc failures ------------------------------------------------------------------------


def test_linarc_down_mid_import_fails_the_run_and_keeps_staged_pages(
    company: Any, linarc_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_pages, "IMPORT_PAGE_SIZE", 20)
    real_stage = import_pages.projects_stage_page
    pages: list[int] = []

    def stage_then_go_down(**kwargs: Any) -> Any:
        outcome = real_stage(**kwargs)
        pages.append(outcome.created)
        if len(pages) == 1:  # Linarc goes down after the first page is staged
            linarc_emulator.inject_fault("503", count=100)
        return outcome

    monkeypatch.setattr(import_pages, "projects_stage_page", stage_then_go_down)

    run = run_import(company, RunKind.IMPORT_ALL)

    assert run.state == RunState.FAILED
    assert "Linarc had a server error (503)" in run.error
    assert "after 20 projects" in run.error
    assert "The 20 projects staged before it were kept" in run.error
    assert run.finished_at is not None
    assert StagedProject.objects.filter(company=company).count() == 20
    assert run.counts["deleted"] == 0  # an interrupted listing flags nothing
    company.linarc_connection.refresh_from_db()
    assert "503" in company.linarc_connection.last_error

    linarc_emulator.clear_faults()
    monkeypatch.setattr(import_pages, "projects_stage_page", real_stage)
    rerun = run_import(company, RunKind.IMPORT_ALL)
    assert rerun.state == RunState.DONE
    assert rerun.counts["created"] == linarc_emulator.state.projects - 20
    assert rerun.counts["unchanged"] == 20


def test_linarc_rejecting_the_key_fails_the_run_with_a_clear_message(
    company: Any, linarc_emulator: Any
) -> None:
    run_import(company, RunKind.IMPORT_ALL)
    linarc_emulator.inject_fault("401", count=5)

    run = run_import(company, RunKind.IMPORT_ALL)

    assert run.state == RunState.FAILED
    assert run.error == "Linarc error: Linarc rejected the API key. Nothing was changed in staging."
    assert StagedProject.objects.filter(company=company, deleted_in_linarc=True).count() == 0


def test_import_selected_survives_one_unreadable_project(
    company: Any, linarc_emulator: Any
) -> None:
    linarc_emulator.inject_fault("not_json", route="detail")
    run = run_import(company, RunKind.IMPORT_SELECTED, linarc_ids=["100001", "100002"])
    assert run.state == RunState.DONE
    assert run.counts["invalid"] == 1
    assert "not JSON" in run.params["invalid"][0]["reason"]
    assert run.counts["created"] == 1


# --- runs -----------------------------------------------------------------------------------


def test_a_second_import_is_refused_while_one_is_pending(company: Any) -> None:
    import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    with pytest.raises(ImportAlreadyRunning, match="already pending"):
        import_run_create(company=company, kind=RunKind.IMPORT_NEW, actor=None)


def test_executing_a_run_twice_does_it_once(company: Any) -> None:
    run = import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    import_run_execute(run_id=run.pk)
    events = ChangeEvent.objects.count()
    again = import_run_execute(run_id=run.pk)  # a re-delivered task
    assert again.state == RunState.DONE
    assert ChangeEvent.objects.count() == events


def test_import_start_sends_the_import_task_by_name_once_the_run_is_committed(
    company: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    import staging.tasks  # noqa: F401  (what the worker's task autodiscovery imports)
    from staging.celery import app

    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append((name, options)))

    with django_capture_on_commit_callbacks() as callbacks:
        run = import_start(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    assert sent == []  # nothing is sent before the run is committed
    for callback in callbacks:
        callback()

    assert sent == [("staging.import_projects", {"kwargs": {"run_id": run.pk}})]
    # A worker knows the task by that name; delivered twice, it imports once.
    task = app.tasks["staging.import_projects"]
    task(run_id=run.pk)
    events = ChangeEvent.objects.count()
    task(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RunState.DONE, run.error
    assert events > 0 and ChangeEvent.objects.count() == events


def test_import_without_a_linarc_connection_is_refused(personas: Any) -> None:
    with pytest.raises(ImportRefused, match="Linarc is not connected"):
        import_run_create(company=personas.company, kind=RunKind.IMPORT_ALL, actor=None)


# --- management command ---------------------------------------------------------------------


def test_import_projects_command_mirrors_the_buttons(
    company: Any, linarc_emulator: Any, capsys: Any
) -> None:
    call_command("import_projects", "--company", company.slug, "--mode", "new")
    out = capsys.readouterr().out
    assert f"created {linarc_emulator.state.projects}" in out
    linarc_emulator.update_project("100004", {"name": "Command Edit"})
    call_command("import_projects", "--company", company.slug, "--mode", "all")
    assert "updated 1" in capsys.readouterr().out
    call_command("import_projects", "--company", company.slug, "--ids", "100004", "100005")
    assert "unchanged 2" in capsys.readouterr().out
    assert list(Run.objects.values_list("kind", flat=True).order_by("created_at")) == [
        RunKind.IMPORT_NEW,
        RunKind.IMPORT_ALL,
        RunKind.IMPORT_SELECTED,
    ]


def test_import_projects_command_fails_loudly(company: Any, linarc_emulator: Any) -> None:
    linarc_emulator.inject_fault("503", count=100)
    with pytest.raises(CommandError, match="server error"):
        call_command("import_projects", "--company", company.slug, "--mode", "all")
    with pytest.raises(CommandError, match="No company"):
        call_command("import_projects", "--company", "nope", "--mode", "all")
