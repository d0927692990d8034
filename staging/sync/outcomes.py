"""Outcomes: what a claimed row became (Synced, Failed, Needs Action), written only while
the claim's lease holds, with its Change History in the same transaction.

Also the claim's other ends: giving rows back (after a transient error, with the backoff
of the retry policy, retry.py), failing rows whose transient errors outlasted every try,
linking a row to an existing QBO job before adopting it, and a run's progress.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from integrations.retry import QBO_RETRY, RetryPolicy
from staging.models import ChangeEvent, EventKind, Run, RunState, StagedProject, SyncStatus
from staging.services.events import event_new, events_write

log = logging.getLogger(__name__)


def lease_duration() -> timedelta:
    """How long a claim holds its rows before the reaper may hand them to another worker
    (settings.SYNC_LEASE_SECONDS, read at call time so tests can shorten it)."""
    return timedelta(seconds=settings.SYNC_LEASE_SECONDS)


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


def projects_release(
    *,
    lease: uuid.UUID,
    project_ids: list[int] | None = None,
    retry_in: float = 0.0,
    tried: bool = False,
) -> None:
    """Give claimed rows back to their company's queue without losing them. ``retry_in``:
    not to be claimed again before that many seconds (backoff after a transient error);
    ``tried``: the rows met a transient error, one more try in ``sync_tries``."""
    rows = StagedProject.objects.filter(lease_id=lease, status=SyncStatus.QUEUED)
    if project_ids is not None:
        rows = rows.filter(pk__in=project_ids)
    values: dict[str, Any] = {
        "lease_id": None,
        "leased_until": timezone.now() + timedelta(seconds=retry_in) if retry_in > 0 else None,
    }
    if tried:
        values["sync_tries"] = F("sync_tries") + 1
    rows.update(**values)


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
    return event_new(
        project=project,
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
        events_write(events)
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


def _failed_after_tries(error: Any) -> Outcome:
    # What happened, then what the product does now; the row's tooltip adds what the user can
    # do ("Click to retry now."). The client's "; will retry" is no longer true here.
    cause = str(error.reason).removesuffix("; will retry")
    return Outcome(
        SyncStatus.FAILED,
        reason=(
            f"QuickBooks did not answer after several tries ({cause}). "
            "Nothing more is sent for this project until it is retried."
        ),
        code=error.code or "",
        intuit_tid=error.intuit_tid or "",
    )


def projects_after_transient(
    *, lease: uuid.UUID, project_ids: list[int], error: Any, policy: RetryPolicy = QBO_RETRY
) -> float:
    """Claimed rows met a transient QBO error: one more failed try each. A row whose tries
    are spent (``policy.max_tries``) is Failed, saying so truthfully (one click retries); the
    others go back to their company's queue, not to be claimed again before the policy's
    delay after this try. Returns that delay (0 when every row was Failed)."""
    rows = list(StagedProject.objects.filter(lease_id=lease, pk__in=project_ids))
    spent = [p for p in rows if policy.gives_up_after(p.sync_tries + 1)]
    projects_record_outcomes(
        lease=lease, outcomes=[(project, _failed_after_tries(error)) for project in spent]
    )
    # The rows of a chunk have had the same tries, unless some joined it later: the most
    # tried one sets the chunk's wait.
    tries = max((p.sync_tries + 1 for p in rows if p not in spent), default=0)
    retry_in = policy.delay_for(tries) if tries else 0.0
    projects_release(lease=lease, project_ids=project_ids, retry_in=retry_in, tried=True)
    return retry_in


def projects_fail_transient(*, project_ids: list[int], error: Any) -> None:
    """Transient errors outlasted every retry: say so truthfully; one click retries."""
    lease, projects = projects_claim(project_ids=project_ids)
    projects_record_outcomes(
        lease=lease, outcomes=[(project, _failed_after_tries(error)) for project in projects]
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
