"""Import runs: starting one (or refusing to), a worker claiming it, its progress, its end.

A manual import is recorded as a pending Run in the request, then sent to a worker by task
name once committed (``import_start``); the scheduled pull is recorded by its beat task
(``scheduled_pull_create``). A worker claims the run with a conditional UPDATE (pending →
running), so a re-delivered message does nothing. A run still pending or running after
ACTIVE_RUN_WINDOW is taken to be lost and failed, so it no longer blocks a new import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.errors import Conflict, Refused
from integrations.models import Company, LinarcConnection, SyncRules
from integrations.services.alerts import pull_failing_alert_send
from integrations.services.linarc import LinarcNotConfigured, linarc_connection_get
from linarc_client import InvalidRecord
from staging.imports.writer import PageOutcome, company_imports_lock
from staging.models import Run, RunKind, RunState

IMPORT_KINDS = (
    RunKind.IMPORT_NEW,
    RunKind.IMPORT_ALL,
    RunKind.IMPORT_SELECTED,
    RunKind.SCHEDULED_PULL,
)
MANUAL_IMPORT_KINDS = (RunKind.IMPORT_NEW, RunKind.IMPORT_ALL, RunKind.IMPORT_SELECTED)
ACTIVE_STATES = (RunState.PENDING, RunState.RUNNING)
# The Celery task that executes a manual import (registered under this name in tasks.py;
# sent by name, so this module needs nothing of the task's).
IMPORT_TASK = "staging.import_projects"

MAX_SELECTED = 1000
MAX_LINARC_ID_LENGTH = 64
SAMPLE_LIMIT = 50  # invalid records / missing ids kept on the run for its summary
# A run still pending or running after this long is taken to be lost (its worker died), so
# it no longer blocks a new import.
ACTIVE_RUN_WINDOW = timedelta(hours=1)
# The scheduled pull asks for updated_since a little before the previous pull started, so
# clock skew between Linarc and us, or an edit committed late, is never missed. Re-reading a
# few records costs nothing: unchanged ones are skipped by hash.
PULL_OVERLAP = timedelta(minutes=2)

COUNT_KEYS = (
    "fetched",
    "created",
    "updated",
    "unchanged",
    "skipped",
    "invalid",
    "not_found",
    "deleted",
)


class ImportRefused(Refused):
    """An import that cannot start; the message is fit to show as is."""


class ImportAlreadyRunning(ImportRefused, Conflict):
    """Another import of the company is still pending or running."""


# --- starting a run ------------------------------------------------------------------------


def import_start(
    *, company: Company, kind: str, actor: Actor, linarc_ids: Sequence[str] | None = None
) -> Run:
    """Start a manual import in a Celery worker; returns its pending Run."""
    with transaction.atomic():
        run = import_run_create(company=company, kind=kind, actor=actor, linarc_ids=linarc_ids)
        transaction.on_commit(lambda: import_run_enqueue(run_id=run.pk))
    return run


def import_run_create(
    *, company: Company, kind: str, actor: Actor, linarc_ids: Sequence[str] | None = None
) -> Run:
    """Record a pending manual import (the task or the command then executes it)."""
    if kind not in MANUAL_IMPORT_KINDS:
        raise ImportRefused(f"Unknown import {kind!r}.")
    try:
        linarc_connection_get(company=company)
    except LinarcNotConfigured as exc:
        raise ImportRefused(str(exc)) from exc
    params: dict[str, Any] = {}
    if kind == RunKind.IMPORT_SELECTED:
        ids = _clean_ids(linarc_ids or [])
        if not ids:
            raise ImportRefused("Select at least one Linarc project to import.")
        if len(ids) > MAX_SELECTED:
            raise ImportRefused(
                f"Select at most {MAX_SELECTED} projects at a time, or use Import All."
            )
        params["linarc_ids"] = ids
    with transaction.atomic():
        company_imports_lock(company)
        import_runs_expire_lost(company=company)
        active = import_run_active(company=company)
        if active is not None:
            raise ImportAlreadyRunning(
                f"{active.get_kind_display()} is already "
                f"{active.get_state_display().lower()}; wait for it to finish."
            )
        return Run.objects.create(
            company=company,
            kind=kind,
            started_by=actor_user(actor),
            state=RunState.PENDING,
            params=params,
            total=len(params.get("linarc_ids", [])),
        )


def import_run_enqueue(*, run_id: int) -> None:
    """Send a pending run to the workers. By task name through the Celery app, as the sync's
    lanes are sent: the services never import the tasks module (it imports them). Unlike a
    task's ``delay``, ``send_task`` always goes to the broker, CELERY_TASK_ALWAYS_EAGER or
    not."""
    from staging.celery import app

    app.send_task(IMPORT_TASK, kwargs={"run_id": run_id})


def scheduled_pull_create(*, company_id: int) -> Run | None:
    """Record the sync rules' scheduled pull, pending: new projects when Auto-Create is on,
    edits when Auto-Update is on, since the last successful pull. ``None`` when there is
    nothing to do (rules off, no connection, or the previous pull still running)."""
    company = Company.objects.filter(pk=company_id).first()
    rules = SyncRules.objects.filter(company_id=company_id).first()
    if company is None or rules is None or not (rules.auto_create or rules.auto_update):
        return None
    connection = LinarcConnection.objects.filter(company=company).first()
    if connection is None or not connection.api_key:
        return None
    import_runs_expire_lost(company=company)
    if import_run_active(company=company, kinds=(RunKind.SCHEDULED_PULL,)) is not None:
        return None
    since = connection.last_successful_pull_at
    return Run.objects.create(
        company=company,
        kind=RunKind.SCHEDULED_PULL,
        state=RunState.PENDING,
        params={
            "auto_create": rules.auto_create,
            "auto_update": rules.auto_update,
            "updated_since": (since - PULL_OVERLAP).isoformat() if since else None,
        },
    )


def _clean_ids(linarc_ids: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for value in linarc_ids:
        text = str(value).strip()
        if "\x00" in text:  # no Linarc id has one, and PostgreSQL refuses it in run params
            continue
        if text and len(text) <= MAX_LINARC_ID_LENGTH and text not in cleaned:
            cleaned.append(text)
    return cleaned


def import_run_active(
    *, company: Company, kinds: Sequence[str] = MANUAL_IMPORT_KINDS
) -> Run | None:
    """The company's import still pending or running, if any (lost runs excepted)."""
    return (
        Run.objects.filter(
            company=company,
            kind__in=kinds,
            state__in=ACTIVE_STATES,
            created_at__gte=timezone.now() - ACTIVE_RUN_WINDOW,
        )
        .order_by("-created_at")
        .first()
    )


def import_runs_expire_lost(*, company: Company | None = None) -> int:
    """Fail the import runs (of ``company``, or of every company) still pending or running
    after ACTIVE_RUN_WINDOW: their worker died or their message was lost. What they staged
    stays (pages commit one by one); a new import (idempotent) finishes the work. Stops
    their progress bars polling. Run by beat, and before every new import of a company."""
    runs = Run.objects.all() if company is None else Run.objects.filter(company=company)
    return runs.filter(
        kind__in=IMPORT_KINDS,
        state__in=ACTIVE_STATES,
        created_at__lt=timezone.now() - ACTIVE_RUN_WINDOW,
    ).update(
        state=RunState.FAILED,
        finished_at=timezone.now(),
        error="This import stopped without finishing (its worker was stopped or lost). "
        "What it staged was kept; start the import again to finish.",
    )


# --- a worker claims it, counts its progress, finishes it ----------------------------------


def import_run_claim(*, run_id: int) -> tuple[Run, bool]:
    """The run, and whether this caller claimed it (pending → running, a conditional
    UPDATE): a run already claimed (a re-delivered task, or a second worker) is not."""
    claimed = Run.objects.filter(pk=run_id, kind__in=IMPORT_KINDS, state=RunState.PENDING).update(
        state=RunState.RUNNING, started_at=timezone.now()
    )
    run = Run.objects.select_related("company", "started_by").get(pk=run_id)
    return run, bool(claimed)


@dataclass
class Tally:
    """What a run has counted so far (COUNT_KEYS), with a sample of the records it could
    not read or find."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    invalid: list[dict[str, str]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    total: int = 0
    pages: int = 0

    def add_page(self, outcome: PageOutcome, invalid: Sequence[InvalidRecord]) -> None:
        self.pages += 1
        for key in ("created", "updated", "unchanged", "skipped"):
            self.counts[key] += getattr(outcome, key)
        self.counts["fetched"] += len(outcome.staged_ids) + len(invalid)
        self.add_invalid((item.reason, item.raw_excerpt) for item in invalid)

    def add_invalid(self, items: Iterable[tuple[str, str]]) -> None:
        for reason, excerpt in items:
            self.counts["invalid"] += 1
            if len(self.invalid) < SAMPLE_LIMIT:
                self.invalid.append({"reason": reason, "excerpt": excerpt})

    def add_not_found(self, linarc_id: str) -> None:
        self.counts["not_found"] += 1
        self.counts["fetched"] += 1
        if len(self.not_found) < SAMPLE_LIMIT:
            self.not_found.append(linarc_id)

    @property
    def processed(self) -> int:
        return self.counts["fetched"]


def run_save_progress(run: Run, tally: Tally) -> None:
    """Move the run's progress bar: one UPDATE, in the transaction of the page it counts."""
    run.counts = dict(tally.counts)
    run.params = {**run.params, "invalid": tally.invalid, "not_found": tally.not_found}
    run.total = max(tally.total, tally.processed)
    run.processed = tally.processed
    Run.objects.filter(pk=run.pk).update(
        counts=run.counts, params=run.params, total=run.total, processed=run.processed
    )


def _pull_was_failing(run: Run) -> bool:
    """Whether the company's previous scheduled pull failed too (then its admins were told)."""
    previous = (
        Run.objects.filter(company_id=run.company_id, kind=RunKind.SCHEDULED_PULL, pk__lt=run.pk)
        .exclude(state__in=ACTIVE_STATES)
        .order_by("-pk")
        .values_list("state", flat=True)
        .first()
    )
    return previous == RunState.FAILED


def import_run_finish(run: Run, tally: Tally, *, error: str = "") -> None:
    """End the run, Done or Failed with ``error``, and note the pull on the company's Linarc
    connection (a successful scheduled pull's start is where the next one reads from)."""
    now = timezone.now()
    run_save_progress(run, tally)
    run.state = RunState.FAILED if error else RunState.DONE
    run.error = error
    run.finished_at = now
    run.save(update_fields=["state", "error", "finished_at", "params"])
    connection = LinarcConnection.objects.filter(company_id=run.company_id)
    if error and run.kind == RunKind.SCHEDULED_PULL and not _pull_was_failing(run):
        transaction.on_commit(
            partial(pull_failing_alert_send, company_id=run.company_id, error=error)
        )
    if error:
        connection.update(last_pull_at=now, last_error=error)
    elif run.kind == RunKind.SCHEDULED_PULL and run.started_at:
        connection.update(
            last_pull_at=now,
            last_error="",
            last_successful_pull_at=run.started_at,
        )
    else:
        connection.update(last_pull_at=now, last_error="")
