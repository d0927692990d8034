"""Races the fault-injection runs can hit, reproduced deterministically in one process.

Each test forces the interleaving that a worker whose lease ran out (a long 429 pause, a slow
QBO) and the worker the reaper gave its rows to can produce.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from integrations.models import QboCustomer
from integrations.services import qbo as qbo_services
from qbo_client.emulator import QboEmulator
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.sync import push as qbo_push
from staging.sync.outcomes import Outcome, project_record_outcome, projects_claim
from staging.sync.queue import projects_enqueue_sync
from staging.sync.reaper import projects_requeue_stale
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, refresh_customers


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator, settings: Any) -> QboEmulator:
    # This process's own limiter: a budget shared through Redis with other runs could
    # only make the test wait.
    settings.RATE_LIMIT_REDIS_URL = None
    qbo_services._limiter.cache_clear()
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    return qbo_emulator


def _queued_project(personas: Personas, name: str) -> tuple[StagedProject, QboCustomer]:
    parent = QboCustomer.objects.filter(company=personas.company, is_job=False, active=True).first()
    assert parent is not None
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC, name=name
    )
    projects_enqueue_sync(
        company=personas.company,
        projects=StagedProject.objects.filter(pk=project.pk),
        actor=personas.operator,
    )
    return project, parent


def test_create_that_loses_the_race_to_an_earlier_attempt_adopts_its_job(
    personas: Personas, connected: QboEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A's lease ran out mid-task; the reaper gave the row to worker B. Both looked
    the name up before either created the job; A's create lands first, B's gets 6240. The
    job is this row's own: B must adopt it (Synced), not say the name is taken."""
    project, parent = _queued_project(personas, "Parking Deck Level 4")
    lookup_then_race = qbo_push._adopt_or_flag

    def earlier_attempt_creates_meanwhile(*args: Any, **kwargs: Any) -> None:
        lookup_then_race(*args, **kwargs)  # nothing found yet
        control(
            connected,
            "POST",
            "seed",
            json={
                "customers": [
                    {"DisplayName": "Parking Deck Level 4", "parent": parent.display_name}
                ]
            },
        )

    monkeypatch.setattr(qbo_push, "_adopt_or_flag", earlier_attempt_creates_meanwhile)
    lease, claimed = projects_claim(project_ids=[project.pk])
    qbo_push.projects_push(lease=lease, projects=claimed)

    project.refresh_from_db()
    jobs = [
        c
        for c in control(connected, "GET", "state")["Customer"]
        if c["DisplayName"] == "Parking Deck Level 4"
    ]
    assert len(jobs) == 1
    assert project.status == SyncStatus.SYNCED, project.status_reason
    assert project.qbo_record_id == jobs[0]["Id"]
    synced = ChangeEvent.objects.get(project=project, kind=EventKind.SYNCED)
    assert "Adopted" in synced.summary


def test_reaper_never_requeues_a_row_a_worker_finishes_meanwhile(
    personas: Personas, transactional_db: None
) -> None:
    """The reaper picks a row whose lease ran out; before it re-queues the row, the worker
    that held the lease (alive, only slow) writes its outcome. One of them must win whole:
    a Synced row whose history ends Re-queued (and a second dispatch) is a lie."""
    parent = QboCustomerFactory(company=personas.company)
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    projects_enqueue_sync(
        company=personas.company,
        projects=StagedProject.objects.filter(pk=project.pk),
        actor=personas.operator,
    )
    lease, [claimed] = projects_claim(project_ids=[project.pk])
    StagedProject.objects.filter(pk=project.pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)  # the lease ran out
    )

    def slow_worker_finishes() -> None:
        try:
            project_record_outcome(
                project=claimed,
                lease=lease,
                outcome=Outcome(SyncStatus.SYNCED, qbo_record_id="4242", sync_token="0"),
            )
        finally:
            connections.close_all()

    worker = threading.Thread(target=slow_worker_finishes)

    def worker_writes_after_the_reapers_select(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        # The reaper's first read is the expired claims (their leased_until).
        stale_read = sql.lstrip().upper().startswith("SELECT") and "LEASED_UNTIL" in sql.upper()
        if stale_read and not worker.ident:
            worker.start()
            # Give the worker its chance to commit in the reaper's window (it may be made
            # to wait for the reaper's lock instead; the reaper goes on either way).
            worker.join(timeout=1.0)
        return result

    with connection.execute_wrapper(worker_writes_after_the_reapers_select):
        projects_requeue_stale()
    worker.join(timeout=30)
    assert not worker.is_alive()

    project.refresh_from_db()
    kinds = list(
        ChangeEvent.objects.filter(project=project).order_by("id").values_list("kind", flat=True)
    )
    if project.status == SyncStatus.SYNCED:
        assert kinds[-1] == EventKind.SYNCED, kinds
    else:  # the reaper won: the row is back in the queue, under no lease
        assert project.status == SyncStatus.QUEUED and kinds[-1] == EventKind.REQUEUED, kinds
        assert project.lease_id is None
