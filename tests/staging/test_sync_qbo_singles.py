"""The sync's single-request path: when the realm's batch window is full, a chunk is written
as one ``POST /customer`` per row from the rest of the request budget (staging/sync/send.py).

Same guarantees as the batch path: a lookup before any create, a requestid derived from
the attempt on every write (a lost response is replayed, not applied twice), 6240 adoption.
"""

from __future__ import annotations

from typing import Any

import pytest

from integrations.services import qbo as qbo_services
from qbo_client.emulator import QboEmulator
from qbo_client.ratelimit import RealmRateLimiter
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.sync import push as qbo_push
from tests.conftest import Personas
from tests.fixtures.qbo import connect_company, control, refresh_customers
from tests.staging.test_sync_qbo import _jobs_named, _mapped_projects, _parent, _sync_in_process


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> QboEmulator:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    return qbo_emulator


@pytest.fixture
def one_batch_per_window(monkeypatch: pytest.MonkeyPatch) -> RealmRateLimiter:
    """A limiter allowing one batch request per minute, and plain requests at the
    emulator's 10 per second (paced 105 ms apart)."""
    limiter = RealmRateLimiter.from_url(
        None, batch_requests_per_minute=1, requests_per_minute=100_000, margin=1.0
    )
    monkeypatch.setattr(qbo_services, "rate_limiter", lambda: limiter)
    return limiter


def _routes(emulator: QboEmulator) -> dict[str, int]:
    return dict(control(emulator, "GET", "counters")["routes"])


def _batch_window_used(limiter: RealmRateLimiter, emulator: QboEmulator) -> None:
    with limiter.acquire(emulator.realm_id, batch=True):
        pass


def test_full_batch_window_sends_the_rest_as_single_creates(
    personas: Personas, connected: QboEmulator, one_batch_per_window: RealmRateLimiter
) -> None:
    projects = _mapped_projects(personas, 35)  # a batch of 30, then the window is full
    control(connected, "POST", "counters/reset")
    _sync_in_process(personas)
    rows = StagedProject.objects.all()
    assert set(rows.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    jobs = _jobs_named(connected, {p.name for p in projects})
    assert len(jobs) == 35
    assert {r.qbo_record_id for r in rows} == {str(j["Id"]) for j in jobs}
    routes = _routes(connected)
    assert routes.get("POST batch") == 1
    assert routes.get("POST customer") == 5
    assert routes.get("POST query") == 2  # one lookup per chunk, before any create
    singles = [r for r in rows if (r.last_request or {}).get("endpoint") == "customer"]
    assert len(singles) == 5
    for row in singles:
        request = row.last_request or {}
        assert request["requestid"]
        assert request["body"]["DisplayName"] == row.name
    assert ChangeEvent.objects.filter(kind=EventKind.SYNCED).count() == 35


def test_lost_single_response_then_retry_creates_no_duplicate(
    personas: Personas, connected: QboEmulator, one_batch_per_window: RealmRateLimiter
) -> None:
    _batch_window_used(one_batch_per_window, connected)
    projects = _mapped_projects(personas, 4)
    # QBO creates the job, then the connection drops before the answer arrives: the client
    # resends with the same requestid and QBO replays the first answer.
    control(
        connected, "POST", "faults", json={"kind": "lost_response", "path": "/customer", "count": 1}
    )
    _sync_in_process(personas)
    jobs = _jobs_named(connected, {p.name for p in projects})
    assert len(jobs) == 4
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert _routes(connected).get("POST batch", 0) == 0


def test_singles_adopt_a_job_an_earlier_attempt_created(
    personas: Personas, connected: QboEmulator, one_batch_per_window: RealmRateLimiter
) -> None:
    _batch_window_used(one_batch_per_window, connected)
    [project, other] = _mapped_projects(personas, 2)
    parent = _parent(personas)
    control(
        connected,
        "POST",
        "seed",
        json={"customers": [{"DisplayName": project.name, "parent": parent.display_name}]},
    )
    _sync_in_process(personas)
    project.refresh_from_db()
    jobs = _jobs_named(connected, {project.name})
    assert len(jobs) == 1 and project.qbo_record_id == jobs[0]["Id"]
    assert "Adopted" in ChangeEvent.objects.get(project=project, kind=EventKind.SYNCED).summary
    assert len(_jobs_named(connected, {other.name})) == 1


def test_singles_name_taken_needs_action_and_the_rest_sync(
    personas: Personas, connected: QboEmulator, one_batch_per_window: RealmRateLimiter
) -> None:
    _batch_window_used(one_batch_per_window, connected)
    [taken] = _mapped_projects(personas, 1, name="harbor electric")  # a demo vendor's name
    good = _mapped_projects(personas, 2)
    _sync_in_process(personas)
    taken.refresh_from_db()
    assert taken.status == SyncStatus.NEEDS_ACTION and taken.failure_code == "6240"
    assert {p.status for p in StagedProject.objects.filter(pk__in=[g.pk for g in good])} == {
        SyncStatus.SYNCED
    }


def test_transient_error_mid_chunk_keeps_written_rows_and_retries_the_rest(
    personas: Personas,
    connected: QboEmulator,
    one_batch_per_window: RealmRateLimiter,
) -> None:
    _batch_window_used(one_batch_per_window, connected)
    projects = _mapped_projects(personas, 3)
    # The first create goes through; the second fails five times (the client raises each
    # 503 at once): the task retries that row and the third; the first keeps its outcome.
    control(connected, "POST", "faults", json={"kind": "latency", "ms": 0, "path": "/customer"})
    control(connected, "POST", "faults", json={"kind": "503", "path": "/customer", "count": 5})
    control(connected, "POST", "counters/reset")
    _sync_in_process(personas)
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert len(_jobs_named(connected, {p.name for p in projects})) == 3
    assert ChangeEvent.objects.filter(kind=EventKind.SYNCED).count() == 3
    routes = _routes(connected)
    assert routes.get("POST customer") == 1 + 5 + 2  # no row sent again once written
    assert routes.get("POST query") == 1 + 5  # each of the 5 retries looked the rows up again


def test_single_rows_are_written_ten_at_a_time(
    personas: Personas,
    connected: QboEmulator,
    one_batch_per_window: RealmRateLimiter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _batch_window_used(one_batch_per_window, connected)
    _mapped_projects(personas, 25)
    written: list[int] = []
    record_outcomes = qbo_push.projects_record_outcomes

    def counting(*, lease: Any, outcomes: list[Any]) -> int:
        written.append(len(outcomes))
        return record_outcomes(lease=lease, outcomes=outcomes)

    monkeypatch.setattr(qbo_push, "projects_record_outcomes", counting)
    _sync_in_process(personas)
    assert written == [10, 10, 5]
    assert set(StagedProject.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert ChangeEvent.objects.filter(kind=EventKind.SYNCED).count() == 25
