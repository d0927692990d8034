"""Lanes: how Queued rows reach the workers, fairly across companies.

The rows themselves are the queue (status Queued, ordered by priority, then age). What goes
to the broker is a *lane*: a chain of messages, each of which claims the company's next
chunk (≤ 30 rows), pushes it to QBO, and sends the next message of its chain to the **tail**
of the sync queue. So:

* a company has at most ``SYNC_LANES_PER_REALM`` messages waiting, whatever its backlog:
  another company's first chunk waits behind one message per busy lane, never behind a
  backlog (the wait does not grow with it);
* every company with work gets its turns in the workers in rotation, and R companies use R
  realms' budgets at once;
* a lane whose realm has no budget left (a 429 pause, a full window) does not sleep in a
  worker: it sends its next message with a countdown for when the budget returns, and the
  worker process takes other work meanwhile;
* within a company, interactive rows (a retry, a hand-picked selection) are claimed before
  bulk rows (queue.py sets the priority).

A lane is taken with a conditional UPDATE on its SyncLane row (``active_until``); each step
renews it, and a lane whose chain was lost (a message gone with Redis, a killed worker) shows
as expired, so the reaper (reaper.py) starts it again. This is the database-as-queue design
of e.g. Oban and honcho (claim in order with ``FOR UPDATE SKIP LOCKED``), with Celery only
carrying the lanes: https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from integrations.models import QboConnection
from integrations.services.qbo import sync_rate_limiter
from qbo_client.errors import ThrottledError, TransientError
from staging.models import StagedProject, SyncLane, SyncStatus
from staging.sync.outcomes import (
    lease_duration,
    projects_after_transient,
    projects_release,
    run_refresh_progress,
)
from staging.sync.push import BATCH_SIZE, TransientPushError, projects_push

log = logging.getLogger(__name__)

CHUNK_SIZE = BATCH_SIZE  # rows per lane step: one QBO batch
LANE_TASK = "staging.sync_lane"


def lane_count() -> int:
    return int(settings.SYNC_LANES_PER_REALM)


def _claimable() -> Q:
    # Unclaimed, and no backoff still running (leased_until is both, see the model). A row
    # under an expired claim is the reaper's: it gives it back and says so in its history.
    return Q(lease_id__isnull=True) & (
        Q(leased_until__isnull=True) | Q(leased_until__lt=timezone.now())
    )


# --- taking and giving back a lane ----------------------------------------------------------


def _ensure_lanes(company_id: int) -> None:
    SyncLane.objects.bulk_create(
        [SyncLane(company_id=company_id, slot=slot) for slot in range(lane_count())],
        ignore_conflicts=True,
    )


def _lane_take(*, company_id: int, slot: int, hold: timedelta) -> uuid.UUID | None:
    """Take a free (or expired) lane: the conditional UPDATE lets one caller win."""
    token = uuid.uuid4()
    now = timezone.now()
    taken = (
        SyncLane.objects.filter(company_id=company_id, slot=slot)
        .filter(Q(active_until__isnull=True) | Q(active_until__lt=now))
        .update(token=token, active_until=now + hold)
    )
    return token if taken else None


def _send(*, company_id: int, slot: int, token: uuid.UUID, countdown: float = 0.0) -> None:
    from staging.celery import app

    app.send_task(
        LANE_TASK,
        kwargs={"company_id": company_id, "slot": slot, "token": str(token)},
        countdown=countdown if countdown > 0 else None,
    )


def lanes_wake(*, company_id: int, rows: int | None = None) -> int:
    """Start lanes for a company's Queued rows: one per chunk of ``rows`` (all lanes when
    unknown), as many as are free. Returns how many were started; a busy lane will find the
    rows on its next step."""
    _ensure_lanes(company_id)
    wanted = lane_count() if rows is None else min(lane_count(), math.ceil(rows / CHUNK_SIZE))
    started = 0
    for slot in range(lane_count()):
        if started >= wanted:
            break
        token = _lane_take(company_id=company_id, slot=slot, hold=lease_duration())
        if token is not None:
            _send(company_id=company_id, slot=slot, token=token)
            started += 1
    return started


def _hold(*, company_id: int, slot: int, token: uuid.UUID, seconds: float) -> None:
    """Keep the lane and come back in ``seconds``: the worker process is free meanwhile."""
    SyncLane.objects.filter(company_id=company_id, slot=slot, token=token).update(
        active_until=timezone.now() + timedelta(seconds=seconds) + lease_duration()
    )
    _send(company_id=company_id, slot=slot, token=token, countdown=seconds)


def _next_due(company_id: int) -> float | None:
    """Seconds until the company's earliest row in backoff may be claimed, if any."""
    due = (
        StagedProject.objects.filter(
            company_id=company_id, status=SyncStatus.QUEUED, lease_id__isnull=True
        )
        .filter(leased_until__gte=timezone.now())
        .aggregate(due=Min("leased_until"))["due"]
    )
    return None if due is None else max(0.05, (due - timezone.now()).total_seconds())


# --- one step of a lane ---------------------------------------------------------------------


def lane_claim(*, company_id: int) -> tuple[uuid.UUID, list[StagedProject]]:
    """Claim the company's next chunk in send order. On PostgreSQL, ``SKIP LOCKED`` lets
    lanes of one company claim side by side without waiting on each other's rows; the
    conditional UPDATE is what makes a claim exclusive on every database."""
    lease = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            StagedProject.objects.filter(company_id=company_id, status=SyncStatus.QUEUED)
            .filter(_claimable())
            .order_by("sync_priority", "queued_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:CHUNK_SIZE]
        )
        if ids:
            StagedProject.objects.filter(pk__in=ids, status=SyncStatus.QUEUED).filter(
                _claimable()
            ).update(lease_id=lease, leased_until=now + lease_duration())
    claimed = list(
        StagedProject.objects.filter(lease_id=lease, status=SyncStatus.QUEUED)
        .select_related("qbo_customer", "company")
        .order_by("pk")
    )
    return lease, claimed


def _realm_pause(company_id: int) -> float:
    realm_id = (
        QboConnection.objects.filter(company_id=company_id)
        .values_list("realm_id", flat=True)
        .first()
    )
    if not realm_id:
        return 0.0
    return sync_rate_limiter().pause_remaining(realm_id)


def lane_step(*, company_id: int, slot: int, token: uuid.UUID) -> None:
    """One message of a lane: claim a chunk, push it, send the lane's next message."""
    now = timezone.now()
    mine = SyncLane.objects.filter(company_id=company_id, slot=slot, token=token)
    if not mine.update(active_until=now + lease_duration()):
        return  # a stale duplicate (a re-delivered message): the lane has moved on
    try:
        pause = _realm_pause(company_id)
    except TransientError:
        pause = 5.0  # the limiter's storage (Redis) is away: come back shortly
    if pause > 0:
        _hold(company_id=company_id, slot=slot, token=token, seconds=pause)
        return
    lease, projects = lane_claim(company_id=company_id)
    if not projects:
        _lane_end(company_id=company_id, slot=slot, token=token)
        return
    try:
        projects_push(lease=lease, projects=projects)
    except TransientPushError as exc:
        _after_transient(company_id=company_id, slot=slot, token=token, lease=lease, exc=exc)
        return
    finally:
        for run_id in {p.sync_run_id for p in projects if p.sync_run_id}:
            run_refresh_progress(run_id=run_id)
    _send(company_id=company_id, slot=slot, token=token)


def _after_transient(
    *,
    company_id: int,
    slot: int,
    token: uuid.UUID,
    lease: uuid.UUID,
    exc: TransientPushError,
) -> None:
    if isinstance(exc.error, ThrottledError):
        # No budget (a 429 pause, or no slot within the lane's wait): nothing was wrong
        # with the rows. They go back as they were, and the lane waits for the budget.
        wait = exc.error.retry_after or sync_rate_limiter().default_pause_seconds
        projects_release(lease=lease, project_ids=exc.project_ids)
        _hold(company_id=company_id, slot=slot, token=token, seconds=wait)
        return
    # A failed try for the rows (QBO 5xx, a timeout): they wait out the retry policy's
    # backoff (retry.py) or, their tries spent, are Failed. The lane goes on with other rows.
    projects_after_transient(lease=lease, project_ids=exc.project_ids, error=exc.error)
    _send(company_id=company_id, slot=slot, token=token)


def _lane_end(*, company_id: int, slot: int, token: uuid.UUID) -> None:
    """Nothing to claim now: wait for rows in backoff, or give the lane up."""
    due = _next_due(company_id)
    if due is not None:
        _hold(company_id=company_id, slot=slot, token=token, seconds=due)
        return
    SyncLane.objects.filter(company_id=company_id, slot=slot, token=token).update(
        token=None, active_until=None
    )
    # Rows queued while we looked found this lane busy and started none: take them now.
    if (
        StagedProject.objects.filter(company_id=company_id, status=SyncStatus.QUEUED)
        .filter(_claimable())
        .exists()
    ):
        lanes_wake(company_id=company_id, rows=CHUNK_SIZE)
