"""Sync to QBO: choosing eligible rows, queueing them, and the worker's side of the sync.

How writes avoid duplicates (DESIGN.md "Writing to QBO without duplicates"):
1. Queueing stamps each row with an attempt id; the QBO requestid derives from it, so a
   re-delivered task or a retry after a lost response is replayed by QBO, not applied twice.
2. A worker claims rows with a conditional UPDATE (status=queued and no live lease); the
   loser of a race does nothing. Outcomes are written only while the claim's lease holds.
3. Before creating, names are looked up in QBO (inactive included); an exact match under
   the same parent is adopted instead of creating a second job.
4. Bulk work goes through /batch (≤ 30 items), each item's outcome written to its own row.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from integrations.models import Company
from staging.models import (
    ChangeEvent,
    EventKind,
    Run,
    RunKind,
    RunState,
    StagedProject,
    SyncStatus,
)
from staging.services.events import (
    events_record_bulk,
    events_record_for_attempt,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 30  # QBO's batch item limit (reference §6)
NO_CUSTOMER = "No QBO customer selected"


def lease_duration() -> timedelta:
    """How long a claim holds its rows before the reaper may hand them to another worker
    (settings.SYNC_LEASE_SECONDS, read at call time so tests can shorten it)."""
    return timedelta(seconds=settings.SYNC_LEASE_SECONDS)


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


# A run of more rows than this is handed to the workers as ONE fan-out task that splits it
# into chunk tasks (run_dispatch): a Select All of 10,000 rows sent 334 messages from inside
# the request. Smaller runs (a Retry, a hand-picked selection) are sent directly.
FAN_OUT_THRESHOLD = 10 * BATCH_SIZE


def _dispatch(*, project_ids: list[int], run_id: int | None) -> None:
    from staging.sync_tasks import sync_projects

    for start in range(0, len(project_ids), BATCH_SIZE):
        sync_projects.delay(project_ids=project_ids[start : start + BATCH_SIZE], run_id=run_id)


def _dispatch_run(*, run_id: int, attempt_id: uuid.UUID) -> None:
    from staging.sync_tasks import dispatch_sync_run

    dispatch_sync_run.delay(run_id=run_id, attempt_id=str(attempt_id))


def _attempt_ids(*, run_id: int, attempt_id: uuid.UUID) -> list[int]:
    # Ordered by customer so that a chunk's jobs share parents (fewer lookups per batch).
    return list(
        StagedProject.objects.filter(
            sync_run_id=run_id, attempt_id=attempt_id, status=SyncStatus.QUEUED
        )
        .order_by("qbo_customer_id", "pk")
        .values_list("pk", flat=True)
    )


def run_dispatch(*, run_id: int, attempt_id: uuid.UUID) -> int:
    """The worker's half of a big Sync to QBO: send the attempt's still-queued rows as 30-row
    chunk tasks. Re-delivery is harmless: a run already dispatched is skipped, and should the
    worker die between sending and marking, the repeated chunks claim nothing twice (a
    claim is a conditional UPDATE, see projects_claim)."""
    marker = str(attempt_id)
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.params.get("dispatched") == marker:
        return 0
    ids = _attempt_ids(run_id=run_id, attempt_id=attempt_id)
    _dispatch(project_ids=ids, run_id=run_id)
    Run.objects.filter(pk=run_id).update(params={**run.params, "dispatched": marker})
    return len(ids)


def _queue(
    *,
    company: Company,
    projects: QuerySet[StagedProject],
    actor: Any,
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
            started_by=actor if actor else None,
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
                updated_at=now,
            )
        )
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
        if queued > FAN_OUT_THRESHOLD:
            transaction.on_commit(partial(_dispatch_run, run_id=run.pk, attempt_id=attempt))
        elif queued:
            ids = _attempt_ids(run_id=run.pk, attempt_id=attempt)
            transaction.on_commit(partial(_dispatch, project_ids=ids, run_id=run.pk))
    return EnqueueSummary(queued=queued, skipped=skipped, run_id=run.pk)


def projects_enqueue_sync(
    *, company: Company, projects: QuerySet[StagedProject], actor: Any
) -> EnqueueSummary:
    return _queue(
        company=company,
        projects=projects,
        actor=actor,
        kind=EventKind.QUEUED,
        summary="Queued for Sync to QBO",
    )


def projects_retry_failed(
    *, company: Company, projects: QuerySet[StagedProject], actor: Any
) -> EnqueueSummary:
    return _queue(
        company=company,
        projects=projects.filter(status=SyncStatus.FAILED),
        actor=actor,
        kind=EventKind.RETRIED,
        summary="Retry after failure",
    )


class NotRetryable(Exception):
    """Only a Failed row can be retried (HTTP 409)."""


def project_retry(*, company: Company, project_id: int, actor: Any) -> StagedProject:
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


# --- the worker's side ------------------------------------------------------------------


def projects_claim(*, project_ids: list[int]) -> tuple[uuid.UUID, list[StagedProject]]:
    """Claim queued rows no live worker holds; returns the lease and the claimed rows."""
    lease = uuid.uuid4()
    now = timezone.now()
    StagedProject.objects.filter(pk__in=project_ids, status=SyncStatus.QUEUED).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    ).update(lease_id=lease, leased_until=now + lease_duration())
    claimed = list(
        StagedProject.objects.filter(lease_id=lease, status=SyncStatus.QUEUED)
        .select_related("qbo_customer", "company")
        .order_by("pk")
    )
    return lease, claimed


def projects_release(*, lease: uuid.UUID) -> None:
    """Give rows back to the queue (the task will run again) without losing them."""
    StagedProject.objects.filter(lease_id=lease, status=SyncStatus.QUEUED).update(
        lease_id=None, leased_until=None
    )


@dataclass
class Outcome:
    status: str
    reason: str = ""
    code: str = ""
    intuit_tid: str = ""
    qbo_record_id: str = ""
    sync_token: str = ""
    display_name: str = ""
    synced_hash: str = ""
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


_EVENT_FOR_STATUS = {
    SyncStatus.SYNCED: EventKind.SYNCED,
    SyncStatus.FAILED: EventKind.FAILED,
    SyncStatus.NEEDS_ACTION: EventKind.NEEDS_ACTION,
}


def _outcome_values(outcome: Outcome, now: Any) -> dict[str, Any]:
    """The columns one outcome writes (shared by the one-row and the bulk writer)."""
    values: dict[str, Any] = {
        "status": outcome.status,
        "status_reason": outcome.reason,
        # Cut to the columns: a hostile answer must not make the outcome unwritable.
        "failure_code": outcome.code[:32],
        "intuit_tid": outcome.intuit_tid[:100],
        "lease_id": None,
        "leased_until": None,
        "updated_at": now,
    }
    if outcome.request is not None:
        values["last_request"] = outcome.request
        values["last_response"] = outcome.response
    if outcome.status == SyncStatus.SYNCED:
        values.update(
            qbo_record_id=outcome.qbo_record_id,
            qbo_sync_token=outcome.sync_token,
            qbo_display_name=outcome.display_name,
            last_synced_hash=outcome.synced_hash,
            last_synced_at=now,
        )
    elif outcome.qbo_record_id:  # e.g. adopted, then the update failed
        values.update(qbo_record_id=outcome.qbo_record_id, qbo_sync_token=outcome.sync_token)
    return values


def _outcome_event(project: StagedProject, outcome: Outcome, now: Any) -> ChangeEvent:
    details = {"code": outcome.code, "intuit_tid": outcome.intuit_tid, **outcome.details}
    if outcome.qbo_record_id:
        details["qbo_record_id"] = outcome.qbo_record_id
    return ChangeEvent(
        company_id=project.company_id,
        project_id=project.pk,
        kind=_EVENT_FOR_STATUS[SyncStatus(outcome.status)],
        summary=outcome.summary or outcome.reason or outcome.status,
        details={k: v for k, v in details.items() if v},
        at=now,
    )


def project_record_outcome(*, project: StagedProject, lease: uuid.UUID, outcome: Outcome) -> bool:
    """Write one row's outcome and its history event, only if our lease still holds."""
    return projects_record_outcomes(lease=lease, outcomes=[(project, outcome)]) == 1


def projects_record_outcomes(
    *, lease: uuid.UUID, outcomes: list[tuple[StagedProject, Outcome]]
) -> int:
    """Write a chunk's outcomes in ONE transaction: a row is written only while our lease
    holds it (the first outcome of a row wins). One conditional UPDATE per row and one
    INSERT of all the events: a commit per row and four statements per row bounded the
    sync's throughput (bench/sync_throughput.py). ``bulk_update`` was measured slower still
    (its CASE expressions cost more Python than the round trips they save).

    An outcome that would link a QBO job another project holds breaks the constraint
    one_project_per_qbo_job. The push reserves a job before adopting it
    (:func:`project_link_qbo_job`), so this is a last line: the chunk is written again row
    by row, and that row becomes Needs Action instead of sharing the job."""
    if not outcomes:
        return 0
    try:
        return _write_outcomes(lease=lease, outcomes=outcomes, row_by_row=False)
    except IntegrityError:
        log.warning("An outcome links a QBO job another project holds; writing row by row")
        return _write_outcomes(lease=lease, outcomes=outcomes, row_by_row=True)


def _write_outcomes(
    *, lease: uuid.UUID, outcomes: list[tuple[StagedProject, Outcome]], row_by_row: bool
) -> int:
    now = timezone.now()
    events: list[ChangeEvent] = []
    with transaction.atomic():
        for project, outcome in outcomes:
            if row_by_row:
                try:
                    with transaction.atomic():
                        written = _write_outcome(project, outcome, lease=lease, now=now)
                except IntegrityError:
                    outcome = _job_taken(project, outcome)
                    written = _write_outcome(project, outcome, lease=lease, now=now)
            else:
                written = _write_outcome(project, outcome, lease=lease, now=now)
            if not written:
                log.info("Lease on project %s lost; outcome dropped", project.pk)
                continue
            events.append(_outcome_event(project, outcome, now))
        ChangeEvent.objects.bulk_create(events)
    return len(events)


def _write_outcome(project: StagedProject, outcome: Outcome, *, lease: uuid.UUID, now: Any) -> bool:
    values = _outcome_values(outcome, now)
    return bool(
        StagedProject.objects.filter(
            pk=project.pk, lease_id=lease, status=SyncStatus.QUEUED
        ).update(**values, attempts=project.attempts + 1)
    )


def qbo_job_taken_reason(*, qbo_record_id: str, owner: StagedProject | None) -> str:
    who = f"project “{owner}”" if owner else "another project"
    return (
        f"QuickBooks job Id {qbo_record_id} already belongs to {who}; one job stands for one "
        "project, so this project was not linked to it. Link it to its own job with Manual "
        "Mapping, or change the naming rule so Sync to QBO creates one."
    )


def _job_taken(project: StagedProject, outcome: Outcome) -> Outcome:
    owner = (
        StagedProject.objects.filter(
            company_id=project.company_id, qbo_record_id=outcome.qbo_record_id
        )
        .exclude(pk=project.pk)
        .first()
    )
    return Outcome(
        status=SyncStatus.NEEDS_ACTION,
        reason=qbo_job_taken_reason(qbo_record_id=outcome.qbo_record_id, owner=owner),
        code="duplicate-job",
        intuit_tid=outcome.intuit_tid,
        request=outcome.request,
        response=outcome.response,
        details={"owner_project_id": owner.pk} if owner else {},
    )


def project_link_qbo_job(
    *, project: StagedProject, lease: uuid.UUID, qbo_record_id: str, sync_token: str
) -> StagedProject | None:
    """Link a claimed row to an existing QBO job BEFORE writing to it (adoption).

    Returns None when the row holds the job now (or its lease is gone, and nothing will be
    written), or the project that already holds it: the push then refuses to touch the job.
    The unique constraint settles two workers adopting one job at the same moment."""
    try:
        with transaction.atomic():
            StagedProject.objects.filter(
                pk=project.pk, lease_id=lease, status=SyncStatus.QUEUED
            ).update(qbo_record_id=qbo_record_id, qbo_sync_token=sync_token)
    except IntegrityError:
        return (
            StagedProject.objects.filter(company_id=project.company_id, qbo_record_id=qbo_record_id)
            .exclude(pk=project.pk)
            .first()
        )
    return None


def projects_fail_transient(*, project_ids: list[int], error: Any) -> None:
    """Transient errors outlasted every retry: say so truthfully; one click retries."""
    lease, projects = projects_claim(project_ids=project_ids)
    for project in projects:
        project_record_outcome(
            project=project,
            lease=lease,
            outcome=Outcome(
                SyncStatus.FAILED,
                reason=f"QuickBooks did not answer after several tries ({error.reason}). "
                "Click to retry.",
                code=error.code or "",
                intuit_tid=error.intuit_tid or "",
            ),
        )


def run_refresh_progress(*, run_id: int) -> None:
    """Recount a sync run's rows; the run is done when none of them is still queued."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.state == RunState.DONE:
        return
    # One grouped COUNT (five rows back), not every row's status fetched into Python.
    counts = {
        status: n
        for status, n in StagedProject.objects.filter(sync_run_id=run_id)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    }
    processed = sum(c for s, c in counts.items() if s != SyncStatus.QUEUED)
    update: dict[str, Any] = {"counts": counts, "processed": processed}
    if processed >= run.total:
        update.update(state=RunState.DONE, finished_at=timezone.now())
    Run.objects.filter(pk=run_id).exclude(state=RunState.DONE).update(**update)


def projects_requeue_stale(*, older_than: timedelta | None = None) -> list[int]:
    """Reaper: rows stuck in Queued (a killed worker, a lost message) go back to work.

    Returns the ids re-dispatched; their attempt id is kept, so the requestid is too.
    """
    now = timezone.now()
    older_than = lease_duration() if older_than is None else older_than
    stale = StagedProject.objects.filter(status=SyncStatus.QUEUED).filter(
        Q(leased_until__lt=now) | Q(leased_until__isnull=True, queued_at__lt=now - older_than)
    )
    # One transaction with the rows locked: a worker whose lease ran out may still write its
    # outcome (or another claim the row) between our SELECT and UPDATE; then the row must
    # not be re-queued behind its back. skip_locked: a row being written is not stale.
    with transaction.atomic():
        rows = list(
            stale.select_for_update(skip_locked=True)
            .values_list("pk", "sync_run_id", "leased_until")
            .order_by("sync_run_id", "pk")[:3000]
        )
        if not rows:
            return []
        ids = [pk for pk, _, _ in rows]
        StagedProject.objects.filter(pk__in=ids).update(
            lease_id=None, leased_until=None, queued_at=now
        )
        # Two different stories for the history: a worker took the row and its lease ran
        # out (it stopped), or no worker has taken it yet (a lost message, or a backlog
        # longer than the lease; the repeated message is harmless: claims are conditional).
        minutes = max(1, round(older_than.total_seconds() / 60))
        for claimed, summary in (
            (True, "Re-queued: the worker handling it stopped before finishing"),
            (
                False,
                f"Sent to the workers again: not picked up within {minutes} "
                f"minute{'s' if minutes != 1 else ''}",
            ),
        ):
            group = [pk for pk, _, leased_until in rows if (leased_until is not None) == claimed]
            if group:
                events_record_bulk(
                    projects=StagedProject.objects.filter(pk__in=group).only("pk", "company_id"),
                    kind=EventKind.REQUEUED,
                    summary=summary,
                )
        by_run: dict[int | None, list[int]] = {}
        for pk, sync_run_id, _ in rows:
            by_run.setdefault(sync_run_id, []).append(pk)
        for run_key, run_ids in by_run.items():
            transaction.on_commit(partial(_dispatch, project_ids=run_ids, run_id=run_key))
    return ids
