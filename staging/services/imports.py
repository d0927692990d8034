"""Staging imports from Linarc: *Import New Items*, *Import All*, *Import Selected* and the
scheduled pull of the sync rules.

Staging is an upsert on ``(company, linarc_id)``, one page of source data at a time, with a
constant number of queries per page however many pages there are: one query loads the
page's existing rows, ``bulk_create`` inserts the new ones, ``bulk_update`` writes the changed
ones, one bulk INSERT writes their Change History, one UPDATE moves the run's progress bar.
Each page commits on its own, so a Linarc failure on page 7 keeps pages 1-6.

Unchanged projects are skipped by content hash (``ProjectRecord.content_hash``, stored as
``source_hash``), which makes every import idempotent: running it again writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.models import Company, LinarcConnection, SyncRules
from integrations.services.linarc import (
    LinarcNotConfigured,
    linarc_client_for,
    linarc_connection_get,
)
from linarc_client import (
    InvalidRecord,
    LinarcClient,
    LinarcError,
    LinarcNotFound,
    LinarcProtocolError,
    ProjectRecord,
)
from staging.models import ChangeEvent, EventKind, Run, RunKind, RunState, StagedProject
from staging.models import SyncStatus as Status
from staging.services.qbo_payload import SYNCED_SOURCE_FIELDS

logger = logging.getLogger(__name__)

IMPORT_KINDS = (
    RunKind.IMPORT_NEW,
    RunKind.IMPORT_ALL,
    RunKind.IMPORT_SELECTED,
    RunKind.SCHEDULED_PULL,
)
MANUAL_IMPORT_KINDS = (RunKind.IMPORT_NEW, RunKind.IMPORT_ALL, RunKind.IMPORT_SELECTED)
ACTIVE_STATES = (RunState.PENDING, RunState.RUNNING)

IMPORT_PAGE_SIZE = 500  # Linarc's maximum: fewer round trips, same queries per page
SELECTED_CHUNK_SIZE = 100  # Import Selected stages its get_project results in chunks
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

NO_CUSTOMER_REASON = "Choose a QBO customer"
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
COUNT_LABELS = {
    "fetched": "Fetched",
    "created": "Created",
    "updated": "Updated",
    "unchanged": "Unchanged",
    "skipped": "Skipped",
    "invalid": "Invalid",
    "not_found": "Not found in Linarc",
    "deleted": "Deleted in Linarc",
}
_UPDATE_FIELDS = [
    *SYNCED_SOURCE_FIELDS,
    "source_payload",
    "source_hash",
    "source_updated_at",
    "problems",
    "deleted_in_linarc",
    "status",
    "status_reason",
    "updated_at",
]


class ImportRefused(Exception):
    """An import that cannot start; the message is fit to show as is."""


class ImportAlreadyRunning(ImportRefused):
    """Another import of the company is still pending or running."""


# --- the upsert of one page ----------------------------------------------------------------


@dataclass
class PageOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    staged_ids: list[str] = field(default_factory=list)


def _without_nul(value: Any) -> Any:
    """PostgreSQL refuses NUL characters in text and jsonb; one hostile record must not
    fail its whole page, so they are dropped (SQLite would keep them: same on both)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _source_values(record: ProjectRecord) -> dict[str, Any]:
    """The staged columns of a record (the fields QBO receives)."""
    return {
        "number": _without_nul(record.number),
        "name": _without_nul(record.name),
        "project_status": _without_nul(record.status),
        "start_date": record.start_date,
        "end_date": record.end_date,
        "client_name": _without_nul(record.client_name),
        "address": _without_nul(record.address),
    }


def _comparable(value: Any) -> Any:
    """A JSON value for diffs; an address with only empty parts equals no address."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: v for k, v in sorted(value.items()) if v not in ("", None)}
    return value


def _changes(project: StagedProject, values: dict[str, Any]) -> dict[str, list[Any]]:
    changes: dict[str, list[Any]] = {}
    for name in SYNCED_SOURCE_FIELDS:
        old, new = _comparable(getattr(project, name)), _comparable(values[name])
        if old != new:
            changes[name] = [old, new]
    return changes


def _reason(problems: Sequence[str]) -> str:
    return "; ".join(problems)


def _status_after_edit(
    project: StagedProject, problems: list[str], synced_fields_changed: bool
) -> tuple[str, str]:
    """(status, status_reason) of a staged row after a Linarc edit.

    A Synced row whose QBO fields changed needs a sync again. Failed and Queued rows keep
    their status (a retry or the worker in flight picks the new values up). Problems always
    win: a row with bad source data is Needs Action with the problems as its reason, and a
    row that was Needs Action only because of problems Linarc has now fixed moves on.
    """
    status, reason = project.status, project.status_reason
    if status in (Status.QUEUED, Status.FAILED):
        return status, reason
    if problems:
        if status == Status.SYNCED and not synced_fields_changed:
            return status, reason
        return Status.NEEDS_ACTION, _reason(problems)
    if status == Status.SYNCED:
        return (Status.NEEDS_SYNC, "") if synced_fields_changed else (status, reason)
    was_problems = bool(project.problems) and reason == _reason(project.problems)
    if status == Status.NEEDS_ACTION and (was_problems or not reason):
        if project.qbo_customer_id:
            return Status.NEEDS_SYNC, ""
        return Status.NEEDS_ACTION, NO_CUSTOMER_REASON
    return status, reason


def _new_row(
    *, company: Company, record: ProjectRecord, now: datetime
) -> tuple[StagedProject, str]:
    problems = [_without_nul(p) for p in record.problems]
    project = StagedProject(
        company=company,
        linarc_id=record.linarc_id,
        **_source_values(record),
        source_payload=_without_nul(record.raw),
        source_hash=record.content_hash(),
        source_updated_at=record.updated_at,
        problems=problems,
        status=Status.NEEDS_ACTION,
        status_reason=_reason(problems) or NO_CUSTOMER_REASON,
        created_at=now,
        updated_at=now,
    )
    summary = "Imported from Linarc"
    if problems:
        summary += f" with problems: {_reason(problems)}"
    return project, summary


def _summary_of_edit(fields: list[str]) -> str:
    labels = {
        "name": "name",
        "number": "number",
        "project_status": "status",
        "start_date": "start date",
        "end_date": "end date",
        "client_name": "client",
        "address": "address",
        "problems": "problems",
        "deleted_in_linarc": "back in Linarc",
    }
    return "Updated from Linarc: " + ", ".join(labels.get(f, f) for f in fields)


def _edit_row(
    *, project: StagedProject, record: ProjectRecord, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """Apply ``record`` to ``project`` in memory; the UPDATED event's summary and details,
    or ``None`` when nothing a person would see changed (only the hash is refreshed then,
    e.g. for a row staged before hashes were kept)."""
    values = _source_values(record)
    problems = [_without_nul(p) for p in record.problems]
    changes = _changes(project, values)
    synced_fields_changed = bool(changes)
    if project.problems != problems:
        changes["problems"] = [project.problems, problems]
    if project.deleted_in_linarc:
        changes["deleted_in_linarc"] = [True, False]
    old_status = project.status
    status, reason = _status_after_edit(project, problems, synced_fields_changed)
    for name, value in values.items():
        setattr(project, name, value)
    project.source_payload = _without_nul(record.raw)
    project.source_hash = record.content_hash()
    project.source_updated_at = record.updated_at
    project.problems = problems
    project.deleted_in_linarc = False
    if not changes:
        return None
    project.status, project.status_reason = status, reason
    project.updated_at = now
    details: dict[str, Any] = {"changes": changes}
    if status != old_status:
        details["status"] = [old_status, status]
    return _summary_of_edit(list(changes)), details


def _lock_company_imports(company: Company) -> None:
    """Serialise the page writes of concurrent imports of one company (a manual import and
    the scheduled pull), so two never insert the same new project. NO KEY UPDATE does not
    block inserts of rows that reference the connection's company."""
    list(
        LinarcConnection.objects.select_for_update(no_key=True)
        .filter(company=company)
        .values_list("pk", flat=True)
    )


def _event(
    *,
    company: Company,
    project: StagedProject,
    kind: EventKind,
    summary: str,
    details: dict[str, Any],
    actor: Any,
    now: datetime,
) -> ChangeEvent:
    return ChangeEvent(
        company=company,
        project=project,
        kind=kind,
        summary=summary,
        details=details,
        actor=actor,
        at=now,
    )


def _write_edits(company: Company, projects: list[StagedProject]) -> None:
    """Write edited rows with one INSERT … ON CONFLICT DO UPDATE per batch.

    Django's ``bulk_update`` builds a CASE WHEN per row and field, which costs seconds per
    thousand rows in Python; the upsert costs what ``bulk_create`` does. Every row exists
    (locked above), so only the UPDATE branch ever runs, setting just ``_UPDATE_FIELDS``:
    the rest of the row (mapping, QBO ids, lease) is never written.
    """
    StagedProject.objects.bulk_create(
        [
            StagedProject(
                company=company,
                linarc_id=project.linarc_id,
                **{name: getattr(project, name) for name in _UPDATE_FIELDS},
            )
            for project in projects
        ],
        update_conflicts=True,
        unique_fields=["company", "linarc_id"],
        update_fields=_UPDATE_FIELDS,
        batch_size=IMPORT_PAGE_SIZE,
    )


def projects_stage_page(
    *,
    company: Company,
    records: Sequence[ProjectRecord],
    create: bool,
    update: bool,
    actor: Any = None,
    run_id: int | None = None,
) -> PageOutcome:
    """Upsert one page of Linarc records into staging, in one transaction.

    ``create`` stages projects not staged yet; ``update`` applies edits to staged ones (an
    *Import New* passes ``update=False`` and never touches a staged row). Queries: a fixed
    handful per page (more only where SQLite's 999-parameter limit splits a bulk statement),
    never one per record.
    """
    actor = actor if getattr(actor, "is_authenticated", False) else None
    by_id: dict[str, ProjectRecord] = {}
    for record in records:  # a page that repeats an id: the last copy wins
        by_id[record.linarc_id] = record
    outcome = PageOutcome(staged_ids=list(by_id))
    if not by_id:
        return outcome
    now = timezone.now()
    with transaction.atomic():
        _lock_company_imports(company)
        rows = StagedProject.objects.filter(company=company, linarc_id__in=list(by_id))
        existing: dict[str, StagedProject] = {}
        staged_ids: set[str] = set()
        if update:
            # Rows locked so a sync worker's outcome cannot interleave with our write of
            # status; the big JSON columns we never read are left behind.
            locked = rows.select_for_update(no_key=True).defer("last_request", "last_response")
            existing = {p.linarc_id: p for p in locked}
            staged_ids = set(existing)
        else:
            staged_ids = set(rows.values_list("linarc_id", flat=True))

        new_rows: list[tuple[StagedProject, str]] = []
        edited: list[tuple[StagedProject, str, dict[str, Any]]] = []
        refreshed: list[StagedProject] = []
        for linarc_id, record in by_id.items():
            if linarc_id not in staged_ids:
                if create:
                    new_rows.append(_new_row(company=company, record=record, now=now))
                else:
                    outcome.skipped += 1
                continue
            project = existing.get(linarc_id)
            if project is None:  # staged, and this import does not update
                outcome.skipped += 1
                continue
            if project.source_hash == record.content_hash() and not project.deleted_in_linarc:
                outcome.unchanged += 1
                continue
            edit = _edit_row(project=project, record=record, now=now)
            if edit is None:
                refreshed.append(project)
                outcome.unchanged += 1
            else:
                edited.append((project, *edit))
                outcome.updated += 1

        events: list[ChangeEvent] = []
        if new_rows:
            created = [project for project, _ in new_rows]
            StagedProject.objects.bulk_create(created, batch_size=IMPORT_PAGE_SIZE)
            if any(project.pk is None for project in created):
                # A backend that cannot return ids from a bulk INSERT: one query fetches them.
                ids = dict(
                    StagedProject.objects.filter(
                        company=company, linarc_id__in=[p.linarc_id for p in created]
                    ).values_list("linarc_id", "pk")
                )
                for project in created:
                    project.pk = ids[project.linarc_id]
            for project, summary in new_rows:
                details: dict[str, Any] = {"run_id": run_id} if run_id else {}
                if project.problems:
                    details["problems"] = project.problems
                events.append(
                    _event(
                        company=company,
                        project=project,
                        kind=EventKind.IMPORTED,
                        summary=summary,
                        details=details,
                        actor=actor,
                        now=now,
                    )
                )
            outcome.created = len(new_rows)
        if edited or refreshed:
            _write_edits(company, [project for project, _, _ in edited] + refreshed)
            for project, summary, details in edited:
                if run_id:
                    details["run_id"] = run_id
                events.append(
                    _event(
                        company=company,
                        project=project,
                        kind=EventKind.UPDATED,
                        summary=summary,
                        details=details,
                        actor=actor,
                        now=now,
                    )
                )
        if events:
            ChangeEvent.objects.bulk_create(events, batch_size=IMPORT_PAGE_SIZE)
    return outcome


def projects_flag_deleted(
    *, company: Company, present_ids: set[str], actor: Any = None, run_id: int | None = None
) -> int:
    """Flag staged projects Linarc no longer lists (``deleted_in_linarc``), never remove
    them: a staged row may be synced to QBO and its history must stay. Only a complete
    listing may call this (an interrupted one would flag projects it simply did not reach).
    """
    actor = actor if getattr(actor, "is_authenticated", False) else None
    missing = [
        pk
        for pk, linarc_id in StagedProject.objects.filter(
            company=company, deleted_in_linarc=False
        ).values_list("pk", "linarc_id")
        if linarc_id not in present_ids
    ]
    flagged = 0
    for start in range(0, len(missing), IMPORT_PAGE_SIZE):
        chunk = missing[start : start + IMPORT_PAGE_SIZE]
        now = timezone.now()
        with transaction.atomic():
            _lock_company_imports(company)
            rows = list(
                StagedProject.objects.select_for_update(no_key=True)
                .filter(pk__in=chunk, deleted_in_linarc=False)
                .only("pk", "company_id")
            )
            StagedProject.objects.filter(pk__in=[p.pk for p in rows]).update(
                deleted_in_linarc=True, updated_at=now
            )
            ChangeEvent.objects.bulk_create(
                [
                    _event(
                        company=company,
                        project=project,
                        kind=EventKind.DELETED_IN_LINARC,
                        summary="Deleted in Linarc: no longer in Linarc's project list",
                        details={"run_id": run_id} if run_id else {},
                        actor=actor,
                        now=now,
                    )
                    for project in rows
                ],
                batch_size=IMPORT_PAGE_SIZE,
            )
            flagged += len(rows)
    return flagged


# --- runs ----------------------------------------------------------------------------------


@dataclass
class _Tally:
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


def _run_save_progress(run: Run, tally: _Tally) -> None:
    run.counts = dict(tally.counts)
    run.params = {**run.params, "invalid": tally.invalid, "not_found": tally.not_found}
    run.total = max(tally.total, tally.processed)
    run.processed = tally.processed
    Run.objects.filter(pk=run.pk).update(
        counts=run.counts, params=run.params, total=run.total, processed=run.processed
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


def import_runs_expire_lost(*, company: Company) -> int:
    """Fail the company's import runs still pending or running after ACTIVE_RUN_WINDOW: their
    worker died or their message was lost. What they staged stays (pages commit one by
    one); a new import (idempotent) finishes the work. Stops their progress bars polling."""
    return Run.objects.filter(
        company=company,
        kind__in=IMPORT_KINDS,
        state__in=ACTIVE_STATES,
        created_at__lt=timezone.now() - ACTIVE_RUN_WINDOW,
    ).update(
        state=RunState.FAILED,
        finished_at=timezone.now(),
        error="This import stopped without finishing (its worker was stopped or lost). "
        "What it staged was kept; start the import again to finish.",
    )


def import_run_create(
    *, company: Company, kind: str, actor: Any, linarc_ids: Sequence[str] | None = None
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
        _lock_company_imports(company)
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
            started_by=actor if getattr(actor, "is_authenticated", False) else None,
            state=RunState.PENDING,
            params=params,
            total=len(params.get("linarc_ids", [])),
        )


def import_start(
    *, company: Company, kind: str, actor: Any, linarc_ids: Sequence[str] | None = None
) -> Run:
    """Start a manual import in a Celery worker; returns its pending Run."""
    from staging.import_tasks import import_projects

    with transaction.atomic():
        run = import_run_create(company=company, kind=kind, actor=actor, linarc_ids=linarc_ids)
        transaction.on_commit(lambda: import_projects.delay(run_id=run.pk))
    return run


def _listing(
    *, client: LinarcClient, run: Run, tally: _Tally, create: bool, update: bool
) -> set[str]:
    """Stage every page of the listing; the ids Linarc listed (for deletions)."""
    updated_since = run.params.get("updated_since")
    present: set[str] = set()
    pages = client.iter_pages(
        updated_since=datetime.fromisoformat(updated_since) if updated_since else None,
        page_size=IMPORT_PAGE_SIZE,
    )
    for page in pages:
        tally.total = page.count
        with transaction.atomic():
            outcome = projects_stage_page(
                company=run.company,
                records=page.records,
                create=create,
                update=update,
                actor=run.started_by,
                run_id=run.pk,
            )
            tally.add_page(outcome, page.invalid)
            _run_save_progress(run, tally)
        present.update(outcome.staged_ids)
    return present


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _selected(*, client: LinarcClient, run: Run, tally: _Tally) -> None:
    ids: list[str] = list(run.params.get("linarc_ids", []))
    tally.total = len(ids)
    for chunk in _chunks(ids, SELECTED_CHUNK_SIZE):
        records: list[ProjectRecord] = []
        invalid: list[tuple[str, str]] = []
        for linarc_id in chunk:
            try:
                records.append(client.get_project(linarc_id))
            except LinarcNotFound:
                tally.add_not_found(linarc_id)
            except LinarcProtocolError as exc:
                # One unreadable project does not stop the others.
                invalid.append((exc.reason, exc.detail or linarc_id))
        with transaction.atomic():
            outcome = projects_stage_page(
                company=run.company,
                records=records,
                create=True,
                update=True,
                actor=run.started_by,
                run_id=run.pk,
            )
            tally.add_page(outcome, [])
            tally.counts["fetched"] += len(invalid)
            tally.add_invalid(invalid)
            _run_save_progress(run, tally)


def _execute(*, client: LinarcClient, run: Run, tally: _Tally) -> None:
    if run.kind == RunKind.IMPORT_SELECTED:
        _selected(client=client, run=run, tally=tally)
    elif run.kind == RunKind.IMPORT_NEW:
        _listing(client=client, run=run, tally=tally, create=True, update=False)
    elif run.kind == RunKind.SCHEDULED_PULL:
        _listing(
            client=client,
            run=run,
            tally=tally,
            create=bool(run.params.get("auto_create")),
            update=bool(run.params.get("auto_update")),
        )
    else:
        present = _listing(client=client, run=run, tally=tally, create=True, update=True)
        if tally.counts["invalid"]:
            # An unreadable record may be one of ours (its id unreadable too): flagging
            # would mark a live project deleted. Deletions wait for a clean listing.
            run.params = {**run.params, "deletions_checked": False}
        else:
            tally.counts["deleted"] = projects_flag_deleted(
                company=run.company, present_ids=present, actor=run.started_by, run_id=run.pk
            )
            run.params = {**run.params, "deletions_checked": True}


def _finish(run: Run, tally: _Tally, *, error: str = "") -> None:
    now = timezone.now()
    _run_save_progress(run, tally)
    run.state = RunState.FAILED if error else RunState.DONE
    run.error = error
    run.finished_at = now
    run.save(update_fields=["state", "error", "finished_at", "params"])
    connection = LinarcConnection.objects.filter(company_id=run.company_id)
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


def _failure_message(exc: LinarcError | LinarcNotConfigured, tally: _Tally) -> str:
    kept = tally.counts["created"] + tally.counts["updated"]
    reason = exc.reason if isinstance(exc, LinarcError) else str(exc)
    where = f" after {tally.processed} projects" if tally.processed else ""
    message = f"Linarc error{where}: {reason}."
    if kept:
        message += f" The {kept} projects staged before it were kept; run the import again."
    else:
        message += " Nothing was changed in staging."
    return message


def import_run_execute(*, run_id: int) -> Run:
    """Execute a pending import run. A run already claimed (a re-delivered task, or a
    second worker) is returned untouched."""
    claimed = Run.objects.filter(pk=run_id, kind__in=IMPORT_KINDS, state=RunState.PENDING).update(
        state=RunState.RUNNING, started_at=timezone.now()
    )
    run = Run.objects.select_related("company", "started_by").get(pk=run_id)
    if not claimed:
        return run
    tally = _Tally(total=run.total)
    try:
        with linarc_client_for(company=run.company) as client:
            _execute(client=client, run=run, tally=tally)
    except (LinarcError, LinarcNotConfigured) as exc:
        logger.warning("Import run %s failed: %s", run.pk, exc)
        _finish(run, tally, error=_failure_message(exc, tally))
        return run
    except Exception as exc:
        _finish(run, tally, error=f"The import stopped on an unexpected error: {exc!r}")
        raise
    _finish(run, tally)
    return run


def scheduled_pull_run(*, company_id: int) -> Run | None:
    """The sync rules' scheduled pull: new projects when Auto-Create is on, edits when
    Auto-Update is on, since the last successful pull. ``None`` when there is nothing to do
    (rules off, no connection, or the previous pull still running)."""
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
    run = Run.objects.create(
        company=company,
        kind=RunKind.SCHEDULED_PULL,
        state=RunState.PENDING,
        params={
            "auto_create": rules.auto_create,
            "auto_update": rules.auto_update,
            "updated_since": (since - PULL_OVERLAP).isoformat() if since else None,
        },
    )
    return import_run_execute(run_id=run.pk)


# --- reads for the views -------------------------------------------------------------------


@dataclass(frozen=True)
class CountLine:
    key: str
    label: str
    value: int


def import_run_counts(*, run: Run) -> list[CountLine]:
    """The run's counts in display order, zeros left out (except the headline ones)."""
    counts = run.counts or {}
    always = {"fetched", "created", "updated", "unchanged"}
    if run.kind == RunKind.IMPORT_NEW:
        always = {"fetched", "created", "skipped"}
    return [
        CountLine(key, COUNT_LABELS[key], int(counts.get(key, 0)))
        for key in COUNT_KEYS
        if key in always or counts.get(key)
    ]


def import_runs_recent(*, company: Company, limit: int = 5) -> list[Run]:
    return list(
        Run.objects.filter(company=company, kind__in=IMPORT_KINDS).order_by("-created_at")[:limit]
    )


def staged_linarc_ids(*, company: Company, linarc_ids: Iterable[str]) -> set[str]:
    return set(
        StagedProject.objects.filter(company=company, linarc_id__in=list(linarc_ids)).values_list(
            "linarc_id", flat=True
        )
    )
