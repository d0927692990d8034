"""The sync's lanes (staging/sync/lanes.py): fairness across companies, interactive work
first, a realm without budget giving its worker back, and the same with real workers.

The in-process tests run the lanes' messages one at a time, in the order a FIFO broker
queue would deliver them (``LaneQueue``), against the live QBO emulator.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.utils import timezone

from integrations.services import qbo as qbo_services
from qbo_client.emulator import QboEmulator
from staging.models import ChangeEvent, EventKind, StagedProject, SyncLane, SyncStatus
from staging.sync import lanes
from staging.sync.queue import project_retry, projects_enqueue_sync
from tests.conftest import Personas
from tests.factories import (
    CompanyFactory,
    MembershipFactory,
    QboCustomerFactory,
    StagedProjectFactory,
)
from tests.fixtures.qbo import connect_company, control, qbo_env, refresh_customers
from tests.fixtures.workers import WorkerPool, wait_for, worker_env
from tests.staging.test_sync_qbo import _jobs_named, _parent


@dataclass
class LaneQueue:
    """The broker's sync queue, in this process: lane messages in arrival order."""

    messages: deque[dict[str, Any]] = field(default_factory=deque)
    delayed: list[dict[str, Any]] = field(default_factory=list)

    def send(self, **message: Any) -> None:
        (self.delayed if message.get("countdown") else self.messages).append(message)

    def run(self, limit: int = 500) -> list[int]:
        """Deliver messages until none is left; returns the company of each, in order."""
        order: list[int] = []
        while self.messages and len(order) < limit:
            message = self.messages.popleft()
            order.append(message["company_id"])
            lanes.lane_step(
                company_id=message["company_id"], slot=message["slot"], token=message["token"]
            )
        return order


@pytest.fixture
def lane_queue(monkeypatch: pytest.MonkeyPatch) -> LaneQueue:
    queue = LaneQueue()
    monkeypatch.setattr(lanes, "_send", queue.send)
    return queue


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> QboEmulator:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    return qbo_emulator


def _second_company(emulator: QboEmulator, realm_id: str = "9341000000000002") -> Any:
    """Another company of the platform, connected to its own QBO realm in the emulator."""
    control(emulator, "POST", "companies", json={"realm_id": realm_id, "seed": "demo"})
    company = CompanyFactory(name=f"Company {realm_id[-1]}")
    admin = MembershipFactory(company=company).user
    connect_company(company, admin, realm_id=realm_id)
    refresh_customers(company)
    return company


def _mapped(company: Any, count: int, prefix: str) -> list[StagedProject]:
    parent = _parent_of(company)
    return StagedProjectFactory.create_batch(
        count,
        company=company,
        qbo_customer=parent,
        status=SyncStatus.NEEDS_SYNC,
        name=factory_name(prefix),
    )


def _parent_of(company: Any) -> Any:
    from integrations.models import QboCustomer

    return QboCustomer.objects.get(company=company, display_name="Northgate Medical Partners")


def factory_name(prefix: str) -> Any:
    import factory

    return factory.Sequence(lambda n: f"{prefix} {n}")


def _queue(company: Any, projects: list[StagedProject], actor: Any = None) -> None:
    projects_enqueue_sync(
        company=company,
        projects=StagedProject.objects.filter(pk__in=[p.pk for p in projects]),
        actor=actor,
    )


def test_a_small_sync_is_not_held_behind_another_companys_backlog(
    personas: Personas,
    connected: QboEmulator,
    lane_queue: LaneQueue,
    django_capture_on_commit_callbacks,
) -> None:
    other = _second_company(connected)
    with django_capture_on_commit_callbacks(execute=True):
        _queue(personas.company, _mapped(personas.company, 300, "Backlog"))  # 10 chunks
        _queue(other, _mapped(other, 5, "Small"))
    order = lane_queue.run()
    first_small = order.index(other.pk)
    # The backlog's company has one message per lane in the queue, never one per chunk:
    # the small sync's message is delivered after at most that many.
    assert first_small <= lanes.lane_count()
    assert not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists()
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}


def test_a_retry_goes_before_the_companys_own_bulk_rows(
    personas: Personas,
    connected: QboEmulator,
    lane_queue: LaneQueue,
    django_capture_on_commit_callbacks,
    settings: Any,
) -> None:
    settings.SYNC_LANES_PER_REALM = 1
    bulk = _mapped(personas.company, 90, "Bulk")
    failed = _mapped(personas.company, 1, "Clicked")[0]
    StagedProject.objects.filter(pk=failed.pk).update(status=SyncStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        _queue(personas.company, bulk)
        project_retry(company=personas.company, project_id=failed.pk, actor=personas.operator)
    lane_queue.run()
    synced = list(
        ChangeEvent.objects.filter(kind=EventKind.SYNCED)
        .order_by("id")
        .values_list("project_id", flat=True)
    )
    assert len(synced) == 91
    assert synced.index(failed.pk) < 30  # in the first chunk, ahead of 90 older bulk rows


def test_a_realm_without_budget_gives_its_worker_back_and_comes_again(
    personas: Personas,
    connected: QboEmulator,
    lane_queue: LaneQueue,
    django_capture_on_commit_callbacks,
) -> None:
    projects = _mapped(personas.company, 3, "Paused")
    realm = connected.realm_id
    qbo_services.sync_rate_limiter().pause(realm, 30.0)  # as after a 429
    with django_capture_on_commit_callbacks(execute=True):
        _queue(personas.company, projects)
    assert lane_queue.run() == [personas.company.pk]
    # Nothing was claimed and nothing sent; the lane's next message waits for the budget.
    assert (
        StagedProject.objects.filter(status=SyncStatus.QUEUED, lease_id__isnull=True).count() == 3
    )
    [again] = lane_queue.delayed
    assert 25 <= again["countdown"] <= 30
    lane = SyncLane.objects.get(company=personas.company, slot=again["slot"])
    assert (
        lane.active_until is not None and lane.active_until > timezone.now()
    )  # held, so the reaper leaves it alone
    qbo_services.sync_rate_limiter().reset(realm)
    lane_queue.messages.append({**again, "countdown": 0})
    lane_queue.run()
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}


def test_a_stale_lane_message_does_nothing(
    personas: Personas, connected: QboEmulator, lane_queue: LaneQueue
) -> None:
    [project] = _mapped(personas.company, 1, "Stale")
    StagedProject.objects.filter(pk=project.pk).update(status=SyncStatus.QUEUED)
    SyncLane.objects.create(company=personas.company, slot=0, token=uuid.uuid4())
    lanes.lane_step(company_id=personas.company.pk, slot=0, token=uuid.uuid4())
    project.refresh_from_db()
    assert project.status == SyncStatus.QUEUED and project.lease_id is None
    assert not lane_queue.messages and not lane_queue.delayed


@pytest.mark.worker
def test_real_workers_sync_a_small_company_while_another_has_a_backlog(
    personas: Personas, qbo_emulator: QboEmulator, celery_workers: WorkerPool
) -> None:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    other = _second_company(qbo_emulator)
    env = {**worker_env(celery_workers.queue), **qbo_env(qbo_emulator)}
    celery_workers.start_one(env, concurrency=2)
    celery_workers.processes[0].terminate()  # the default worker lacks the emulator's settings
    # Every QBO answer takes 150 ms: the backlog lasts well beyond the small sync.
    control(qbo_emulator, "POST", "latency", json={"ms": 150})
    backlog = _mapped(personas.company, 450, "Backlog")
    small = _mapped(other, 10, "Small")
    _queue(personas.company, backlog, personas.operator)
    _queue(other, small)
    small_rows = StagedProject.objects.filter(company=other)
    wait_for(
        lambda: not small_rows.exclude(status=SyncStatus.SYNCED).exists(),
        timeout=120,
        pool=celery_workers,
    )
    still_waiting = StagedProject.objects.filter(
        company=personas.company, status=SyncStatus.QUEUED
    ).count()
    assert still_waiting > 0, "the small sync waited for the whole backlog"
    wait_for(
        lambda: not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists(),
        timeout=240,
        pool=celery_workers,
    )
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    names = {p.name for p in backlog}
    assert len(_jobs_named(qbo_emulator, names)) == len(names)  # no duplicates
    assert not ChangeEvent.objects.filter(kind=EventKind.REQUEUED).exists()
    assert _parent(personas) is not None


# --- what the user sees of the queue ----------------------------------------------------


def test_queued_rows_show_their_wait_and_place_in_the_send_order(
    personas: Personas, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    from django.urls import reverse

    from staging.sync.queue import queue_estimates, realm_rows_per_second

    settings.QBO_RATE_WINDOW_SECONDS = 60  # 1,200 rows a minute: 20 a second
    assert realm_rows_per_second() == 20
    parent = QboCustomerFactory(company=personas.company)
    bulk = StagedProjectFactory.create_batch(
        100, company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    with django_capture_on_commit_callbacks():
        _queue(personas.company, bulk)
    StagedProject.objects.filter(company=personas.company).update(
        queued_at=timezone.now() - timedelta(minutes=3)
    )
    rows = list(StagedProject.objects.filter(company=personas.company).order_by("pk"))
    estimates = queue_estimates(company_id=personas.company.pk, projects=rows[40:50])
    first = estimates[rows[40].pk]
    assert first.state == "waiting" and first.starts_in_seconds == pytest.approx(40 / 20)
    assert estimates[rows[49].pk].starts_in_seconds == pytest.approx(49 / 20)
    assert first.label() == "Waiting 3 min · about 2 s to go"
    # A row a worker holds, and one waiting out a backoff.
    StagedProject.objects.filter(pk=rows[0].pk).update(
        lease_id=uuid.uuid4(), leased_until=timezone.now() + timedelta(minutes=5)
    )
    StagedProject.objects.filter(pk=rows[1].pk).update(
        leased_until=timezone.now() + timedelta(seconds=30)
    )
    rows = list(StagedProject.objects.filter(company=personas.company).order_by("pk"))
    estimates = queue_estimates(company_id=personas.company.pk, projects=rows[:2])
    assert estimates[rows[0].pk].label() == "Waiting 3 min · sending now"
    assert estimates[rows[1].pk].label().startswith("Waiting 3 min · next try in ")

    html = (
        personas.client_for(personas.viewer)
        .get(reverse("portfolio:projects"), {"status": "queued"})
        .content.decode()
    )
    assert "Waiting 3 min · about 2 s to go" in html
    assert "about 5 s left" in html  # the run: 100 rows at 20 a second


@pytest.mark.worker
def test_real_workers_send_a_retry_first_and_the_reaper_leaves_the_backlog_alone(
    personas: Personas, qbo_emulator: QboEmulator, celery_workers: WorkerPool, settings: Any
) -> None:
    from staging.sync.reaper import projects_requeue_stale

    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    # A lease far shorter than the backlog: a reaper that re-sent waiting rows would.
    settings.SYNC_LEASE_SECONDS = 3
    env = {
        **worker_env(celery_workers.queue),
        **qbo_env(qbo_emulator),
        "SYNC_LEASE_SECONDS": "3",
        "SYNC_LANES_PER_REALM": "2",
    }
    celery_workers.start_one(env, concurrency=2)
    celery_workers.processes[0].terminate()  # the default worker lacks the emulator's settings
    control(qbo_emulator, "POST", "latency", json={"ms": 150})
    backlog = _mapped(personas.company, 450, "Bulk")
    clicked = _mapped(personas.company, 1, "Clicked")[0]
    StagedProject.objects.filter(pk=clicked.pk).update(status=SyncStatus.FAILED)
    _queue(personas.company, backlog, personas.operator)
    wait_for(
        lambda: StagedProject.objects.filter(status=SyncStatus.SYNCED).exists(),
        timeout=60,
        pool=celery_workers,
    )
    project_retry(company=personas.company, project_id=clicked.pk, actor=personas.operator)
    reaped: list[int] = []

    def clicked_synced() -> bool:
        reaped.extend(projects_requeue_stale())  # as beat would, during the backlog
        return StagedProject.objects.get(pk=clicked.pk).status == SyncStatus.SYNCED

    wait_for(clicked_synced, timeout=60, interval=0.5, pool=celery_workers)
    assert StagedProject.objects.filter(status=SyncStatus.QUEUED).count() > 100

    def settled() -> bool:
        reaped.extend(projects_requeue_stale())
        return not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists()

    wait_for(settled, timeout=240, interval=1.0, pool=celery_workers)
    assert reaped == []
    assert not ChangeEvent.objects.filter(kind=EventKind.REQUEUED).exists()
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    names = {p.name for p in [*backlog, clicked]}
    assert len(_jobs_named(qbo_emulator, names)) == len(names)
