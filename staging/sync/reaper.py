"""Reaper: recovers lost work, and only lost work (a beat task on the maintenance queue).

Lost work is of two kinds:

* a **claim whose lease ran out**: the worker holding the rows died (or lost its database)
  mid-chunk. The rows are given back to their company's queue, with a history entry that
  says so; they keep their attempt id, so the requestid and QBO's replay protection too;
* a **lane whose chain was lost** (its message went with a Redis restart, or its worker was
  killed before sending the next one): the lane's hold expired while its company still has
  Queued rows. The lane is started again; the rows get no history entry, nothing happened
  to them.

Rows that are simply waiting their turn are never touched: a backlog is not a fault.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from staging.models import EventKind, StagedProject, SyncLane, SyncStatus
from staging.services.events import events_record_bulk
from staging.sync.lanes import lanes_wake

REQUEUED_SUMMARY = "Re-queued: the worker handling it stopped before finishing"


def projects_requeue_stale() -> list[int]:
    """Give back the rows of expired claims and restart lost lanes; returns the rows given
    back. Safe to run twice and beside the workers (rows being written are skipped)."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            StagedProject.objects.filter(
                status=SyncStatus.QUEUED, lease_id__isnull=False, leased_until__lt=now
            )
            .select_for_update(skip_locked=True)
            .values_list("pk", "company_id")
            .order_by("pk")[:3000]
        )
        ids = [pk for pk, _ in rows]
        if ids:
            # Conditional on the lease still being expired: a late outcome wins.
            StagedProject.objects.filter(pk__in=ids, leased_until__lt=now).update(
                lease_id=None, leased_until=None
            )
            events_record_bulk(
                projects=StagedProject.objects.filter(pk__in=ids).only("pk", "company_id"),
                kind=EventKind.REQUEUED,
                summary=REQUEUED_SUMMARY,
            )
    for company_id in _companies_without_a_live_lane(now):
        lanes_wake(company_id=company_id)
    return ids


def _companies_without_a_live_lane(now: object) -> list[int]:
    waiting = set(
        StagedProject.objects.filter(status=SyncStatus.QUEUED)
        .order_by()
        .values_list("company_id", flat=True)
        .distinct()
    )
    live = set(
        SyncLane.objects.filter(company_id__in=waiting, active_until__gte=now)
        .order_by()
        .values_list("company_id", flat=True)
        .distinct()
    )
    lost = set(
        SyncLane.objects.filter(company_id__in=waiting)
        .filter(Q(active_until__lt=now))
        .values_list("company_id", flat=True)
    )
    # A company with waiting rows and no live lane at all, or with a lost lane beside
    # live ones (its chunk capacity is short by one): wake takes only free/expired lanes.
    return sorted((waiting - live) | lost)
