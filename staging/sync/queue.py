"""Queue: which rows may be sent to QBO, and stamping them Queued.

Queueing stamps each row with an attempt id (the QBO requestid derives from it, so a
re-delivered message or a retry after a lost response is replayed by QBO, not applied twice)
and a priority: a one-click retry or a hand-picked selection goes before bulk work. Then it
wakes the company's lanes (lanes.py), which send the rows in that order.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.errors import Conflict
from integrations.models import Company
from staging.models import EventKind, Run, RunKind, RunState, StagedProject, SyncStatus
from staging.services.events import events_record_for_attempt
from staging.sync.lanes import CHUNK_SIZE, lanes_wake

NO_CUSTOMER = "No QBO customer selected"
# A run of at most this many rows, or any retry, is interactive: it goes before bulk rows.
INTERACTIVE_MAX_ROWS = CHUNK_SIZE
INTERACTIVE, BULK = 0, 1


@dataclass
class EnqueueSummary:
    queued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    run_id: int | None = None

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def describe(self) -> str:
        text = f"Queued {self.queued:,} project{'s' if self.queued != 1 else ''} for QBO."
        if self.skipped:
            reasons = ", ".join(f"{reason} ({count:,})" for reason, count in self.skipped.items())
            text += f" Skipped {self.skipped_total:,}: {reasons}."
        return text


def _eligible_q() -> Q:
    return Q(
        status__in=(SyncStatus.NEEDS_SYNC, SyncStatus.FAILED),
        qbo_customer__isnull=False,
        deleted_in_linarc=False,
    )


def _skip_reasons(projects: QuerySet[StagedProject]) -> dict[str, int]:
    """Why the ineligible rows will not sync, counted in one grouped query."""
    reasons: Counter[str] = Counter()
    rows = (
        projects.exclude(_eligible_q())
        .values_list("status", "deleted_in_linarc", "qbo_customer_id")
        .order_by()
    )
    grouped: Counter[tuple[str, bool, bool]] = Counter(
        (status, deleted, customer is not None) for status, deleted, customer in rows.iterator()
    )
    for (status, deleted, has_customer), count in grouped.items():
        if deleted:
            reasons["Deleted in Linarc"] += count
        elif not has_customer:
            reasons[NO_CUSTOMER] += count
        elif status == SyncStatus.SYNCED:
            reasons["Already synced, no changes"] += count
        elif status == SyncStatus.QUEUED:
            reasons["Already queued"] += count
        else:
            reasons["Needs action first"] += count
    return dict(reasons)


def sync_preview(*, company: Company, projects: QuerySet[StagedProject]) -> EnqueueSummary:
    projects = projects.filter(company=company)
    return EnqueueSummary(
        queued=projects.filter(_eligible_q()).count(), skipped=_skip_reasons(projects)
    )


def _queue(
    *,
    company: Company,
    projects: QuerySet[StagedProject],
    actor: Actor,
    kind: EventKind,
    summary: str,
) -> EnqueueSummary:
    projects = projects.filter(company=company)
    skipped = _skip_reasons(projects)
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.create(
            company=company,
            kind=RunKind.SYNC,
            started_by=actor_user(actor),
            state=RunState.RUNNING,
            started_at=now,
        )
        attempt = uuid.uuid4()
        queued = (
            StagedProject.objects.filter(pk__in=projects.filter(_eligible_q()).values("pk"))
            .filter(_eligible_q())
            .update(
                status=SyncStatus.QUEUED,
                status_reason="",
                attempt_id=attempt,
                lease_id=None,
                leased_until=None,
                queued_at=now,
                sync_run=run,
                sync_priority=BULK,
                sync_tries=0,
                updated_at=now,
            )
        )
        if 0 < queued <= INTERACTIVE_MAX_ROWS:
            # A click on Failed or a hand-picked few: before the company's own bulk rows.
            StagedProject.objects.filter(sync_run=run).update(sync_priority=INTERACTIVE)
        run.total = queued
        run.counts = {"queued": queued}
        if not queued:
            run.state, run.finished_at = RunState.DONE, now
        run.save(update_fields=["total", "counts", "state", "finished_at"])
        # The history rows come from the queued rows themselves (INSERT … SELECT).
        events_record_for_attempt(
            run_id=run.pk,
            attempt_id=attempt,
            kind=kind,
            summary=summary,
            actor=actor,
            details={"attempt_id": str(attempt)},
        )
        if queued:
            transaction.on_commit(partial(lanes_wake, company_id=company.pk, rows=queued))
    return EnqueueSummary(queued=queued, skipped=skipped, run_id=run.pk)


def projects_enqueue_sync(
    *, company: Company, projects: QuerySet[StagedProject], actor: Actor
) -> EnqueueSummary:
    return _queue(
        company=company,
        projects=projects,
        actor=actor,
        kind=EventKind.QUEUED,
        summary="Queued for Sync to QBO",
    )


def projects_retry_failed(
    *, company: Company, projects: QuerySet[StagedProject], actor: Actor
) -> EnqueueSummary:
    return _queue(
        company=company,
        projects=projects.filter(status=SyncStatus.FAILED),
        actor=actor,
        kind=EventKind.RETRIED,
        summary="Retry after failure",
    )


class NotRetryable(Conflict):
    """Only a Failed row can be retried (HTTP 409)."""


def project_retry(*, company: Company, project_id: int, actor: Actor) -> StagedProject:
    project = StagedProject.objects.get(pk=project_id, company=company)
    if project.status != SyncStatus.FAILED:
        raise NotRetryable(
            f"Only a Failed project can be retried; this one is {project.get_status_display()}."
        )
    _queue(
        company=company,
        projects=StagedProject.objects.filter(pk=project_id),
        actor=actor,
        kind=EventKind.RETRIED,
        summary="Retry after failure",
    )
    project.refresh_from_db()
    return project


# --- what a user sees of the queue -------------------------------------------------------


@dataclass(frozen=True)
class QueueEstimate:
    """How long a Queued row has waited, and when it should be sent."""

    waited_seconds: float
    state: str  # "sending" (a worker holds it), "retrying" (backoff), "waiting"
    starts_in_seconds: float

    def label(self) -> str:
        waited = f"Waiting {duration_label(self.waited_seconds)}"
        if self.state == "sending":
            return f"{waited} · sending now"
        if self.state == "retrying":
            return f"{waited} · next try in {duration_label(self.starts_in_seconds)}"
        return f"{waited} · about {duration_label(self.starts_in_seconds)} to go"


def duration_label(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def realm_rows_per_second() -> float:
    """What one realm's QBO budget lets through: 40 batch requests of 30 rows a window
    (https://developer.intuit.com/app/developer/qbo/docs/learn/rest-api-features#limits-and-throttles).
    The sync can send more as single writes when the batch window is full; this is the
    estimate's floor, so a row starts no later than it says."""
    return 40 * CHUNK_SIZE / settings.QBO_RATE_WINDOW_SECONDS


def queue_estimates(*, company_id: int, projects: list[StagedProject]) -> dict[int, QueueEstimate]:
    """Estimates for the Queued rows among ``projects`` (a page): their place in the
    company's send order (lanes.py: priority, then age) over the realm's budget. Two
    COUNTs per group of rows queued together (usually one group a page)."""
    queued = [p for p in projects if p.status == SyncStatus.QUEUED]
    if not queued:
        return {}
    now = timezone.now()
    rate = realm_rows_per_second()
    waiting = StagedProject.objects.filter(company_id=company_id, status=SyncStatus.QUEUED)
    groups: dict[tuple[int, Any], list[StagedProject]] = {}
    for project in queued:
        groups.setdefault((project.sync_priority, project.queued_at or now), []).append(project)
    estimates: dict[int, QueueEstimate] = {}
    for (priority, queued_at), members in groups.items():
        members.sort(key=lambda p: p.pk)
        before = waiting.filter(
            Q(sync_priority__lt=priority) | Q(sync_priority=priority, queued_at__lt=queued_at)
        ).count()
        before += waiting.filter(
            sync_priority=priority, queued_at=queued_at, pk__lt=members[0].pk
        ).count()
        for place, project in enumerate(members):
            waited = (now - (project.queued_at or now)).total_seconds()
            leased_until = project.leased_until
            if project.lease_id is not None and leased_until and leased_until > now:
                estimates[project.pk] = QueueEstimate(waited, "sending", 0.0)
            elif leased_until and leased_until > now:
                left = (leased_until - now).total_seconds()
                estimates[project.pk] = QueueEstimate(waited, "retrying", left)
            else:
                estimates[project.pk] = QueueEstimate(waited, "waiting", (before + place) / rate)
    return estimates


def run_eta_seconds(*, run: Run) -> float | None:
    """Seconds until a running sync's rows are all sent, at the realm's budget."""
    remaining = run.total - run.processed
    if run.state != RunState.RUNNING or remaining <= 0:
        return None
    first = (
        StagedProject.objects.filter(sync_run=run, status=SyncStatus.QUEUED)
        .order_by("sync_priority", "queued_at")
        .values("sync_priority", "queued_at")
        .first()
    )
    if first is None:
        return None
    ahead = StagedProject.objects.filter(
        Q(sync_priority__lt=first["sync_priority"])
        | Q(sync_priority=first["sync_priority"], queued_at__lt=first["queued_at"]),
        company_id=run.company_id,
        status=SyncStatus.QUEUED,
    ).count()
    return (ahead + remaining) / realm_rows_per_second()
