"""The sync rules' scheduled pull: Auto-Create stages new projects, Auto-Update stages edits,
each only when on, reading only what changed since the last successful pull."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations.models import LinarcConnection, SyncRules
from staging.imports.pages import import_run_execute, scheduled_pull_run
from staging.imports.runs import PULL_OVERLAP, import_run_create
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, StagedProject

EDITED = "100002"


@pytest.fixture
def company(personas: Any, linarc_connection: Any) -> Any:
    return personas.company


def set_rules(company: Any, *, auto_create: bool, auto_update: bool) -> None:
    SyncRules.objects.update_or_create(
        company=company, defaults={"auto_create": auto_create, "auto_update": auto_update}
    )


def pull(company: Any) -> Run:
    run = scheduled_pull_run(company_id=company.pk)
    assert run is not None
    assert run.kind == RunKind.SCHEDULED_PULL
    assert run.state == RunState.DONE, run.error
    return run


def test_auto_create_stages_new_projects_but_not_edits(company: Any, linarc_emulator: Any) -> None:
    set_rules(company, auto_create=True, auto_update=False)
    first = pull(company)
    total = linarc_emulator.state.projects
    assert first.counts["created"] == total
    assert first.params["updated_since"] is None
    connection = LinarcConnection.objects.get(company=company)
    assert connection.last_successful_pull_at == first.started_at

    before = StagedProject.objects.get(linarc_id=EDITED)
    linarc_emulator.update_project(EDITED, {"name": "Edited while Auto-Update is off"})
    linarc_emulator.add_projects({"id": "880001", "name": "New Gym", "status": "Bidding"})

    second = pull(company)

    # Only what changed since the last pull was read (the generated data are older).
    assert second.counts["fetched"] == 2
    assert first.started_at is not None
    assert second.params["updated_since"] == (first.started_at - PULL_OVERLAP).isoformat()
    assert second.counts["created"] == 1
    assert second.counts["skipped"] == 1
    assert StagedProject.objects.get(linarc_id="880001").name == "New Gym"
    after = StagedProject.objects.get(linarc_id=EDITED)
    assert after.name == before.name
    assert not ChangeEvent.objects.filter(project=after, kind=EventKind.UPDATED).exists()


def test_auto_update_stages_edits_but_not_new_projects(company: Any, linarc_emulator: Any) -> None:
    import_run_execute(
        run_id=import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None).pk
    )
    set_rules(company, auto_create=False, auto_update=True)
    assert pull(company).counts["unchanged"] == linarc_emulator.state.projects
    linarc_emulator.update_project(EDITED, {"name": "Edited with Auto-Update on"})
    linarc_emulator.add_projects({"id": "880002", "name": "Not Wanted Yet", "status": "Bidding"})

    run = pull(company)

    assert run.counts["updated"] == 1
    assert run.counts["skipped"] == 1
    assert run.counts["created"] == 0
    assert StagedProject.objects.get(linarc_id=EDITED).name == "Edited with Auto-Update on"
    assert not StagedProject.objects.filter(linarc_id="880002").exists()
    event = ChangeEvent.objects.get(project__linarc_id=EDITED, kind=EventKind.UPDATED)
    assert event.actor is None  # the schedule, not a person


def test_scheduled_pull_twice_writes_nothing_the_second_time(company: Any) -> None:
    set_rules(company, auto_create=True, auto_update=True)
    pull(company)
    events = ChangeEvent.objects.count()
    again = pull(company)
    assert again.counts["created"] == again.counts["updated"] == 0
    assert ChangeEvent.objects.count() == events


def test_failed_pull_keeps_the_cursor(company: Any, linarc_emulator: Any) -> None:
    set_rules(company, auto_create=True, auto_update=True)
    first = pull(company)
    linarc_emulator.inject_fault("500", count=100)

    failed = scheduled_pull_run(company_id=company.pk)

    assert failed is not None and failed.state == RunState.FAILED
    assert "server error (500)" in failed.error
    connection = LinarcConnection.objects.get(company=company)
    assert connection.last_successful_pull_at == first.started_at
    assert "server error" in connection.last_error


def test_no_pull_when_both_rules_are_off(company: Any) -> None:
    set_rules(company, auto_create=False, auto_update=False)
    assert scheduled_pull_run(company_id=company.pk) is None
    assert not Run.objects.exists()


def test_no_second_pull_while_one_is_running(company: Any) -> None:
    set_rules(company, auto_create=True, auto_update=False)
    Run.objects.create(company=company, kind=RunKind.SCHEDULED_PULL, state=RunState.RUNNING)
    assert scheduled_pull_run(company_id=company.pk) is None
    # A run lost long ago (its worker died) does not block the schedule forever: it is
    # failed with a clear message (its progress bar stops polling) and the pull runs.
    lost = Run.objects.get()
    Run.objects.update(created_at=timezone.now() - timedelta(hours=2))
    assert scheduled_pull_run(company_id=company.pk) is not None
    lost.refresh_from_db()
    assert lost.state == RunState.FAILED
    assert "stopped without finishing" in lost.error


def test_beat_fails_lost_import_runs_of_every_company_once(personas: Any) -> None:
    from staging.tasks import expire_lost_imports

    old = timezone.now() - timedelta(hours=2)
    lost = [
        Run.objects.create(company=company, kind=RunKind.IMPORT_ALL, state=state)
        for company, state in (
            (personas.company, RunState.RUNNING),
            (personas.other_company, RunState.PENDING),
        )
    ]
    recent = Run.objects.create(
        company=personas.company, kind=RunKind.IMPORT_NEW, state=RunState.RUNNING
    )
    sync = Run.objects.create(company=personas.company, kind=RunKind.SYNC, state=RunState.RUNNING)
    Run.objects.filter(pk__in=[r.pk for r in [*lost, sync]]).update(created_at=old)

    assert expire_lost_imports() == 2
    assert expire_lost_imports() == 0  # a second beat finds nothing left to do
    for run in lost:
        run.refresh_from_db()
        assert run.state == RunState.FAILED and "stopped without finishing" in run.error
    recent.refresh_from_db()
    sync.refresh_from_db()
    assert recent.state == RunState.RUNNING  # still inside the window: may be working
    assert sync.state == RunState.RUNNING  # sync runs are not imports
