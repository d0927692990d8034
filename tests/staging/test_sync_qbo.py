"""The sync against the live QBO emulator, through python-quickbooks as in production.

Service-level tests run the worker's code in this process (fast, precise fault timing);
`test_sync_end_to_end_with_real_workers` runs the same path in real Celery workers.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import QuerySet

from integrations.models import QboConnection, QboConnectionStatus, QboCustomer
from integrations.retry import QBO_RETRY
from qbo_client.emulator import QboEmulator
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.sync.outcomes import projects_claim, projects_release
from staging.sync.push import TransientPushError, projects_push
from staging.sync.queue import projects_enqueue_sync
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, qbo_env, refresh_customers
from tests.fixtures.workers import WorkerPool, wait_for, worker_env


def _jobs_named(emulator: QboEmulator, names: set[str]) -> list[dict[str, Any]]:
    state = control(emulator, "GET", "state")
    return [c for c in state["Customer"] if c["DisplayName"] in names]


def _parent(personas: Personas, name: str = "Northgate Medical Partners") -> QboCustomer:
    return QboCustomer.objects.get(company=personas.company, display_name=name)


def _mapped_projects(personas: Personas, count: int, **attrs: Any) -> list[StagedProject]:
    parent = _parent(personas)
    return StagedProjectFactory.create_batch(
        count,
        company=personas.company,
        qbo_customer=parent,
        status=SyncStatus.NEEDS_SYNC,
        **attrs,
    )


def _sync_in_process(personas: Personas, projects: QuerySet[StagedProject] | None = None) -> None:
    """Queue, then run what a worker runs, with as many tries as the retry policy allows
    (its backoff skipped)."""
    summary = projects_enqueue_sync(
        company=personas.company,
        projects=projects if projects is not None else StagedProject.objects.all(),
        actor=personas.operator,
    )
    assert summary.queued
    ids = list(StagedProject.objects.filter(status=SyncStatus.QUEUED).values_list("pk", flat=True))
    for _try in range(QBO_RETRY.max_tries):
        lease, claimed = projects_claim(project_ids=ids)
        try:
            projects_push(lease=lease, projects=claimed)
            break
        except TransientPushError as exc:
            projects_release(lease=lease)
            ids = exc.project_ids


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> QboEmulator:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    return qbo_emulator


def test_connect_and_refresh_fill_the_customer_cache(
    personas: Personas, connected: QboEmulator
) -> None:
    connection = QboConnection.objects.get(company=personas.company)
    assert connection.status == QboConnectionStatus.CONNECTED
    assert connection.refresh_token and connection.access_expires_at
    customers = QboCustomer.objects.filter(company=personas.company)
    assert customers.filter(is_job=False, active=True).count() >= 40
    assert customers.filter(active=False).exists()
    assert customers.filter(is_job=True, parent_qbo_id__gt="").exists()


def test_sync_creates_one_job_per_project_under_the_mapped_customer(
    personas: Personas, connected: QboEmulator
) -> None:
    projects = _mapped_projects(personas, 35)  # more than one batch of 30
    _sync_in_process(personas)
    names = {p.name for p in projects}
    jobs = _jobs_named(connected, names)
    assert len(jobs) == 35 and {j["DisplayName"] for j in jobs} == names
    parent = _parent(personas)
    assert all(j["Job"] and j["ParentRef"]["value"] == parent.qbo_id for j in jobs)
    assert all(j["BillWithParent"] for j in jobs)
    rows = StagedProject.objects.all()
    assert set(rows.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert all(r.qbo_record_id and r.qbo_sync_token == "0" and r.last_request for r in rows)
    assert ChangeEvent.objects.filter(kind=EventKind.SYNCED).count() == 35


def test_lost_batch_response_then_retry_creates_no_duplicate(
    personas: Personas, connected: QboEmulator
) -> None:
    projects = _mapped_projects(personas, 5)
    # QBO commits the batch, then the connection drops before the answer arrives.
    control(
        connected, "POST", "faults", json={"kind": "lost_response", "path": "/batch", "count": 1}
    )
    _sync_in_process(personas)
    jobs = _jobs_named(connected, {p.name for p in projects})
    assert len(jobs) == 5
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}


def test_worker_killed_after_qbo_commit_adopts_instead_of_duplicating(
    personas: Personas, connected: QboEmulator
) -> None:
    [project] = _mapped_projects(personas, 1, name="Imaging Wing Phase 3")
    parent = _parent(personas)
    # An earlier attempt created the job in QBO, and then its worker died before writing back.
    control(
        connected,
        "POST",
        "seed",
        json={
            "customers": [{"DisplayName": "Imaging Wing Phase 3", "parent": parent.display_name}]
        },
    )
    _sync_in_process(personas)
    project.refresh_from_db()
    jobs = _jobs_named(connected, {"Imaging Wing Phase 3"})
    assert len(jobs) == 1
    assert project.status == SyncStatus.SYNCED and project.qbo_record_id == jobs[0]["Id"]
    assert "Adopted" in ChangeEvent.objects.get(project=project, kind=EventKind.SYNCED).summary


def test_name_taken_by_a_vendor_needs_action(personas: Personas, connected: QboEmulator) -> None:
    # Differs only in case from a demo vendor: QBO's uniqueness check ignores case.
    [project] = _mapped_projects(personas, 1, name="harbor electric")
    _sync_in_process(personas)
    project.refresh_from_db()
    assert project.status == SyncStatus.NEEDS_ACTION
    assert "already used in QuickBooks" in project.status_reason
    assert project.failure_code == "6240"
    assert _jobs_named(connected, {"harbor electric"}) == []


def test_two_projects_with_one_name_both_sync_the_later_with_its_number(
    personas: Personas, connected: QboEmulator
) -> None:
    """QBO names are unique; two Linarc projects may share one. Whether the twin comes in
    the same chunk or a later sync, it gets its project number, and keeps it."""
    [first, same_chunk] = _mapped_projects(personas, 2, name="Warehouse Renovation")
    StagedProject.objects.filter(pk=same_chunk.pk).update(number="P-2002")
    _sync_in_process(personas)
    other_client = (
        QboCustomer.objects.filter(company=personas.company, is_job=False, active=True)
        .exclude(pk=first.qbo_customer_id)
        .first()
    )
    assert other_client is not None
    [later] = StagedProjectFactory.create_batch(
        1,
        company=personas.company,
        qbo_customer=other_client,
        status=SyncStatus.NEEDS_SYNC,
        name="Warehouse Renovation",
        number="P-3003",
    )
    _sync_in_process(personas, StagedProject.objects.filter(pk=later.pk))

    names = {
        "Warehouse Renovation",
        "Warehouse Renovation (P-2002)",
        "Warehouse Renovation (P-3003)",
    }
    jobs = {j["DisplayName"]: j for j in _jobs_named(connected, names)}
    assert set(jobs) == names
    for project in (first, same_chunk, later):
        project.refresh_from_db()
        assert project.status == SyncStatus.SYNCED
        assert jobs[project.qbo_display_name]["Id"] == project.qbo_record_id
    assert jobs["Warehouse Renovation (P-3003)"]["ParentRef"]["value"] == other_client.qbo_id
    assert "“Warehouse Renovation (P-3003)”" in (
        ChangeEvent.objects.get(project=later, kind=EventKind.SYNCED).summary
    )

    # A later edit keeps the number: the job is updated, not renamed back into a clash.
    StagedProject.objects.filter(pk=later.pk).update(
        status=SyncStatus.NEEDS_SYNC, end_date="2027-06-30"
    )
    _sync_in_process(personas, StagedProject.objects.filter(pk=later.pk))
    later.refresh_from_db()
    assert later.status == SyncStatus.SYNCED and later.qbo_sync_token == "1"
    assert later.qbo_display_name == "Warehouse Renovation (P-3003)"


def test_a_name_held_by_something_else_is_not_renamed(
    personas: Personas, connected: QboEmulator
) -> None:
    # A vendor holds the name: it may be this very project entered by hand, so a person
    # decides (Manual Mapping or the naming rule); the number is not added.
    [project] = _mapped_projects(personas, 1, name="Harbor Electric", number="P-4004")
    _sync_in_process(personas)
    project.refresh_from_db()
    assert project.status == SyncStatus.NEEDS_ACTION and project.qbo_name_suffix == ""
    assert _jobs_named(connected, {"Harbor Electric (P-4004)"}) == []


def test_batch_with_mixed_outcomes_writes_each_row(
    personas: Personas, connected: QboEmulator
) -> None:
    good = _mapped_projects(personas, 3)
    employee = control(connected, "GET", "state")["Employee"][0]["DisplayName"]
    [clash] = _mapped_projects(personas, 1, name=employee)  # the name an employee holds
    _sync_in_process(personas)
    statuses = dict(StagedProject.objects.values_list("pk", "status"))
    assert all(statuses[p.pk] == SyncStatus.SYNCED for p in good)
    assert statuses[clash.pk] == SyncStatus.NEEDS_ACTION


def test_edit_after_synced_updates_instead_of_creating(
    personas: Personas, connected: QboEmulator
) -> None:
    [project] = _mapped_projects(personas, 1, name="Lobby Refresh")
    _sync_in_process(personas)
    project.refresh_from_db()
    first_id = project.qbo_record_id
    StagedProject.objects.filter(pk=project.pk).update(
        name="Lobby Refresh and Atrium", status=SyncStatus.NEEDS_SYNC
    )
    _sync_in_process(personas)
    project.refresh_from_db()
    assert project.status == SyncStatus.SYNCED
    assert project.qbo_record_id == first_id and project.qbo_sync_token == "1"
    assert _jobs_named(connected, {"Lobby Refresh"}) == []
    assert len(_jobs_named(connected, {"Lobby Refresh and Atrium"})) == 1


def test_stale_sync_token_is_reread_and_applied(personas: Personas, connected: QboEmulator) -> None:
    [project] = _mapped_projects(personas, 1, name="Clinic Fitout")
    _sync_in_process(personas)
    project.refresh_from_db()
    # Someone edits the job in QBO: our stored SyncToken is now stale (5010).
    StagedProject.objects.filter(pk=project.pk).update(qbo_sync_token="0")
    job = _jobs_named(connected, {"Clinic Fitout"})[0]
    from integrations.services.qbo import qbo_client_for

    with qbo_client_for(company=personas.company) as client:
        client.sparse_update_customer(
            job["Id"], job["SyncToken"], {"Notes": "edited in QBO"}, "edit-in-qbo-1"
        )
    StagedProject.objects.filter(pk=project.pk).update(
        name="Clinic Fitout B", status=SyncStatus.NEEDS_SYNC
    )
    _sync_in_process(personas)
    project.refresh_from_db()
    assert project.status == SyncStatus.SYNCED
    assert project.qbo_sync_token == "2"


def test_revoked_connection_fails_rows_with_reconnect_reason(
    personas: Personas, connected: QboEmulator
) -> None:
    [project] = _mapped_projects(personas, 1)
    control(connected, "POST", "tokens/revoke-all")
    _sync_in_process(personas)
    project.refresh_from_db()
    assert project.status == SyncStatus.FAILED
    assert "Reconnect QuickBooks" in project.status_reason
    connection = QboConnection.objects.get(company=personas.company)
    assert connection.status == QboConnectionStatus.NEEDS_RECONNECT


@pytest.mark.worker
def test_sync_end_to_end_with_real_workers(
    personas: Personas, qbo_emulator: QboEmulator, celery_workers: WorkerPool
) -> None:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    celery_workers.start_one({**worker_env(celery_workers.queue), **qbo_env(qbo_emulator)})
    celery_workers.processes[0].terminate()  # the default worker lacks the emulator's settings
    projects = _mapped_projects(personas, 40)
    control(qbo_emulator, "POST", "faults", json={"kind": "503", "path": "/batch", "count": 1})
    summary = projects_enqueue_sync(
        company=personas.company, projects=StagedProject.objects.all(), actor=personas.operator
    )
    assert summary.queued == 40
    wait_for(
        lambda: not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists(),
        timeout=90,
        pool=celery_workers,
    )
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert len(_jobs_named(qbo_emulator, {p.name for p in projects})) == 40
    # Run the same sync again: nothing is eligible, nothing new in QBO.
    again = projects_enqueue_sync(
        company=personas.company, projects=StagedProject.objects.all(), actor=personas.operator
    )
    assert again.queued == 0
