"""The one retry policy (integrations/retry.py) and how the sync uses it: QBO's transient
errors are retried by the lanes, per row, never by the client; after the last try the row
is Failed with the reason, and its history says so once."""

from __future__ import annotations

import uuid
from collections import deque
from datetime import timedelta
from typing import Any

import pytest
from celery.utils.time import get_exponential_backoff_interval
from django.utils import timezone

from integrations.retry import QBO_RETRY, RetryPolicy
from qbo_client.emulator import QboEmulator
from qbo_client.errors import TransientError
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from staging.sync import lanes
from staging.sync.outcomes import projects_after_transient
from staging.sync.queue import projects_enqueue_sync
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, refresh_customers
from tests.staging.test_sync_qbo import _mapped_projects

FAILED_REASON = (
    "QuickBooks did not answer after several tries "
    "(QuickBooks had a temporary server error (503)). "
    "Nothing more is sent for this project until it is retried."
)

# --- the policy ------------------------------------------------------------------------------


def test_delays_double_from_the_factor_up_to_the_cap() -> None:
    policy = RetryPolicy(max_tries=10, backoff_factor=2, backoff_max=120)
    assert [policy.ceiling_for(n) for n in range(1, 10)] == [2, 4, 8, 16, 32, 64, 120, 120, 120]
    # The ceilings are Celery's own backoff (retry_backoff=2, retry_backoff_max=120).
    assert all(
        policy.ceiling_for(n)
        == get_exponential_backoff_interval(factor=2, retries=n - 1, maximum=120)
        for n in range(1, 10)
    )


def test_delays_are_jittered_within_the_upper_half_of_the_ceiling() -> None:
    policy = RetryPolicy(max_tries=10, backoff_factor=2, backoff_max=120)
    for try_number in range(1, 10):
        ceiling = policy.ceiling_for(try_number)
        delays = [policy.delay_for(try_number) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (try_number, delays)
        assert len(set(delays)) > 1  # jittered: rows failing together spread out
    assert max(policy.delay_for(50) for _ in range(50)) <= 120


def test_the_last_try_gives_up() -> None:
    policy = RetryPolicy(max_tries=3, backoff_factor=1, backoff_max=10)
    assert [policy.gives_up_after(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    with pytest.raises(ValueError):
        RetryPolicy(max_tries=0, backoff_factor=1, backoff_max=10)


def test_qbo_patience_is_one_to_two_minutes_over_seven_tries() -> None:
    assert QBO_RETRY.max_tries == 7
    shortest, longest = QBO_RETRY.patience_seconds
    assert (shortest, longest) == (63.0, 126.0)  # waits of 2, 4 … 64 s, each jittered


# --- outcomes: one more try, or Failed --------------------------------------------------------


def _claimed(personas: Personas, count: int, *, tries: int) -> tuple[uuid.UUID, list[int]]:
    lease = uuid.uuid4()
    rows = StagedProjectFactory.create_batch(
        count,
        company=personas.company,
        status=SyncStatus.QUEUED,
        lease_id=lease,
        leased_until=timezone.now() + timedelta(minutes=5),
        sync_tries=tries,
    )
    return lease, [p.pk for p in rows]


def _error() -> TransientError:
    return TransientError("QuickBooks had a temporary server error (503); will retry", status=503)


def test_a_transient_error_counts_a_try_and_waits_the_policys_delay(
    personas: Personas,
) -> None:
    lease, ids = _claimed(personas, 3, tries=2)
    before = timezone.now()
    retry_in = projects_after_transient(lease=lease, project_ids=ids, error=_error())
    ceiling = QBO_RETRY.ceiling_for(3)  # this was the third try
    assert ceiling / 2 <= retry_in <= ceiling
    for row in StagedProject.objects.filter(pk__in=ids):
        assert row.status == SyncStatus.QUEUED and row.lease_id is None
        assert row.sync_tries == 3
        assert row.leased_until is not None
        waited = (row.leased_until - before).total_seconds()
        assert ceiling / 2 <= waited <= ceiling + 1
    # Waiting for the next try is not an outcome: nothing in the history.
    assert not ChangeEvent.objects.filter(project_id__in=ids).exists()


def test_the_last_try_fails_the_row_with_the_reason_once(personas: Personas) -> None:
    lease, ids = _claimed(personas, 2, tries=QBO_RETRY.max_tries - 1)
    assert projects_after_transient(lease=lease, project_ids=ids, error=_error()) == 0.0
    rows = list(StagedProject.objects.filter(pk__in=ids))
    assert {r.status for r in rows} == {SyncStatus.FAILED}
    assert {r.status_reason for r in rows} == {FAILED_REASON}
    assert all(r.lease_id is None and r.leased_until is None for r in rows)
    events = ChangeEvent.objects.filter(project_id__in=ids)
    assert [e.kind for e in events] == [EventKind.FAILED] * 2
    assert {e.summary for e in events} == {FAILED_REASON}


def test_a_policy_can_be_given(personas: Personas) -> None:
    lease, ids = _claimed(personas, 1, tries=0)
    once = RetryPolicy(max_tries=1, backoff_factor=1, backoff_max=1)
    projects_after_transient(lease=lease, project_ids=ids, error=_error(), policy=once)
    assert StagedProject.objects.get(pk=ids[0]).status == SyncStatus.FAILED


# --- the lanes against the emulator: one request per try, then Failed ---------------------------


@pytest.fixture
def lane_messages(monkeypatch: pytest.MonkeyPatch) -> deque[dict[str, Any]]:
    """The lanes' messages, kept here instead of going to the broker (countdowns ignored)."""
    messages: deque[dict[str, Any]] = deque()
    monkeypatch.setattr(lanes, "_send", lambda **message: messages.append(message))
    return messages


def _deliver_skipping_backoff(messages: deque[dict[str, Any]], limit: int = 100) -> None:
    """Deliver lane messages; when rows wait out a backoff, let the time pass at once."""
    for _ in range(limit):
        if not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists():
            return
        StagedProject.objects.filter(status=SyncStatus.QUEUED, lease_id__isnull=True).update(
            leased_until=None
        )
        message = messages.popleft()
        lanes.lane_step(
            company_id=message["company_id"], slot=message["slot"], token=message["token"]
        )
    raise AssertionError("rows still queued")


def test_qbo_down_fails_rows_after_the_policys_tries_one_request_each(
    personas: Personas,
    qbo_emulator: QboEmulator,
    lane_messages: deque[dict[str, Any]],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SYNC_LANES_PER_REALM = 1
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    projects = _mapped_projects(personas, 3)
    control(qbo_emulator, "POST", "faults", json={"kind": "503", "path": "/batch", "count": 100})
    control(qbo_emulator, "POST", "counters/reset")
    with django_capture_on_commit_callbacks(execute=True):
        projects_enqueue_sync(
            company=personas.company,
            projects=StagedProject.objects.filter(pk__in=[p.pk for p in projects]),
            actor=personas.operator,
        )
    _deliver_skipping_backoff(lane_messages)
    rows = list(StagedProject.objects.filter(pk__in=[p.pk for p in projects]))
    assert {r.status for r in rows} == {SyncStatus.FAILED}
    assert {r.status_reason for r in rows} == {FAILED_REASON}
    assert {r.sync_tries for r in rows} == {QBO_RETRY.max_tries - 1}  # the last one Failed it
    # One /batch per try: the client did not retry on its own.
    routes = control(qbo_emulator, "GET", "counters")["routes"]
    assert routes.get("POST batch") == QBO_RETRY.max_tries
    # The history: queued, then one Failed, nothing for the tries in between.
    for row in rows:
        kinds = list(
            ChangeEvent.objects.filter(project=row).order_by("id").values_list("kind", flat=True)
        )
        assert kinds[-1] == EventKind.FAILED and kinds.count(EventKind.FAILED) == 1
