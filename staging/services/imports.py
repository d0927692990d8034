"""Staging imports from Linarc: *Import New Items*, *Import All*, *Import Selected* and the
scheduled pull of the sync rules.

Staging is an upsert on ``(company, linarc_id)``, one page of source data at a time, with a
constant number of queries per page however many pages there are: one light query reads
the page's staged rows (id, hash, deleted flag), one statement inserts the new ones with
their *Imported* history (PostgreSQL; two ``bulk_create`` elsewhere), and only rows whose
content changed are locked, loaded and upserted with their *Updated from Linarc* history;
one UPDATE moves the run's progress bar. Each page commits on its own, so a Linarc failure
on page 7 keeps pages 1-6.

Unchanged projects are skipped by content hash (``ProjectRecord.content_hash``, stored as
``source_hash``), which makes every import idempotent: running it again writes nothing.
Memory does not grow with the account: one page is held at a time, and deletion detection
keeps one bit per staged row it saw (:class:`SeenRows`), not a list of ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
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
from staging.services.import_junk import (
    kept_details,
    kept_summary,
    record_values_keeping_good,
)
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
DELETION_SCAN_SIZE = 5000  # staged ids read per query by deletion detection
# A first import of a big account into an empty table runs without planner statistics, and
# PostgreSQL then scans all the company's rows for each page's lookup by linarc_id. One
# ANALYZE once this many rows are new (and the table's estimate is far below that) keeps the
# import linear.
ANALYZE_AFTER_CREATED = 5000
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
    # Primary keys of the staged rows this page listed (found or created): deletion
    # detection of an Import All marks them seen.
    seen_pks: list[int] = field(default_factory=list)


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


def _imported_summary(problems: Sequence[str]) -> str:
    summary = "Imported from Linarc"
    if problems:
        summary += f" with problems: {_reason(problems)}"
    return summary


def _imported_details(problems: list[str], run_id: int | None) -> dict[str, Any]:
    details: dict[str, Any] = {"run_id": run_id} if run_id else {}
    if problems:
        details["problems"] = problems
    return details


def _new_row(
    *, company: Company, record: ProjectRecord, source_hash: str, now: datetime
) -> tuple[StagedProject, str]:
    problems = [_without_nul(p) for p in record.problems]
    project = StagedProject(
        company=company,
        linarc_id=record.linarc_id,
        **_source_values(record),
        source_payload=_without_nul(record.raw),
        source_hash=source_hash,
        source_updated_at=record.updated_at,
        problems=problems,
        status=Status.NEEDS_ACTION,
        status_reason=_reason(problems) or NO_CUSTOMER_REASON,
        created_at=now,
        updated_at=now,
    )
    return project, _imported_summary(problems)


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
    *, project: StagedProject, record: ProjectRecord, source_hash: str, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """Apply ``record`` to ``project`` in memory; the UPDATED event's summary and details,
    or ``None`` when nothing a person would see changed (only the hash is refreshed then,
    e.g. for a row staged before hashes were kept).

    A junk field keeps its staged value (:mod:`staging.services.import_junk`); the details
    then say so under ``kept``, and have ``changes`` only when something else changed."""
    values = _source_values(record)
    payload = _without_nul(record.raw)
    record_problems, kept = record_values_keeping_good(
        project=project, record=record, payload=payload, values=values
    )
    problems = [_without_nul(p) for p in record_problems]
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
    project.source_payload = payload
    project.source_hash = source_hash
    project.source_updated_at = record.updated_at
    project.problems = problems
    project.deleted_in_linarc = False
    # Junk the previous payload already sent is in the history already.
    kept = [value for value in kept if value.new]
    details: dict[str, Any] = {}
    summaries: list[str] = []
    if changes:
        project.status, project.status_reason = status, reason
        project.updated_at = now
        details["changes"] = changes
        if status != old_status:
            details["status"] = [old_status, status]
        summaries.append(_summary_of_edit(list(changes)))
    if kept:
        details["kept"] = kept_details(kept)
        summaries.append(kept_summary(kept))
    if not details:
        return None
    return ". ".join(summaries), details


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


def _insert_new_rows_orm(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Any,
    run_id: int | None,
    now: datetime,
) -> list[int]:
    """The portable writer of new rows and their *Imported* events (SQLite): model instances
    and two ``bulk_create``; returns the new primary keys."""
    new_rows = [
        _new_row(company=company, record=record, source_hash=hashes[record.linarc_id], now=now)
        for record in records
    ]
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
    ChangeEvent.objects.bulk_create(
        [
            _event(
                company=company,
                project=project,
                kind=EventKind.IMPORTED,
                summary=summary,
                details=_imported_details(project.problems, run_id),
                actor=actor,
                now=now,
            )
            for project, summary in new_rows
        ],
        batch_size=IMPORT_PAGE_SIZE,
    )
    return [project.pk for project in created]


# Columns of a new staged row that come from the record (the rest get the model's defaults).
_PER_ROW_COLUMNS = (
    "linarc_id",
    "number",
    "name",
    "project_status",
    "start_date",
    "end_date",
    "client_name",
    "address",
    "source_payload",
    "source_hash",
    "source_updated_at",
    "problems",
    "status_reason",
)


def _json_text(value: Any) -> str:
    """``value`` as JSON text for a jsonb column, with any NUL removed (PostgreSQL refuses
    ``\\u0000`` in jsonb). The walk that removes NULs runs only when the text has one."""
    text = json.dumps(value)
    if "\\u0000" in text:
        text = json.dumps(_without_nul(value))
    return text


def _insert_new_rows_pg(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Any,
    run_id: int | None,
    now: datetime,
) -> list[int]:
    """New rows and their *Imported* events in ONE statement on PostgreSQL, without model
    instances: the page's values go in as one array per column, ``unnest`` turns them into
    rows, and a data-modifying CTE writes each new row's event from the ids it returned.

    Django's ``bulk_create`` of a page (a project and an event per record) spent ~60 % of a
    first import in Python (instances, per-value SQL compilation); this is one array per
    column adapted by psycopg2 in C. Columns not taken from the record get the model field's
    default, so the row is the same as ``bulk_create`` writes (a test compares them).
    """
    values: dict[str, list[Any]] = {name: [] for name in _PER_ROW_COLUMNS}
    summaries: list[str] = []
    details: list[str] = []
    for record in records:
        problems = [_without_nul(p) for p in record.problems]
        source = _source_values(record)
        reason = _reason(problems)
        values["linarc_id"].append(record.linarc_id)
        for name in ("number", "name", "project_status", "start_date", "end_date"):
            values[name].append(source[name])
        values["client_name"].append(source["client_name"])
        values["address"].append(_json_text(source["address"]))
        values["source_payload"].append(_json_text(record.raw))
        values["source_hash"].append(hashes[record.linarc_id])
        values["source_updated_at"].append(record.updated_at)
        values["problems"].append(json.dumps(problems))
        values["status_reason"].append(reason or NO_CUSTOMER_REASON)
        summaries.append(_imported_summary(problems))
        details.append(json.dumps(_imported_details(problems, run_id)))

    connection = connections[StagedProject.objects.db]
    constants: dict[str, Any] = {
        "company": company.pk,
        "status": Status.NEEDS_ACTION,
        "deleted_in_linarc": False,
        "created_at": now,
        "updated_at": now,
    }
    quote = connection.ops.quote_name
    columns: list[str] = []  # every column of the new row, in the model's order
    selects: list[str] = []  # the value of each: src.<its array> or a parameter
    arrays: list[str] = []  # the unnest() arguments, named in `names` in the same order
    names: list[str] = []
    array_params: list[Any] = []
    constant_params: list[Any] = []
    for model_field in StagedProject._meta.concrete_fields:
        if model_field.primary_key or model_field.generated:  # the database fills these
            continue
        cast = model_field.db_type(connection)
        columns.append(quote(model_field.column))
        if model_field.name in values:
            arrays.append(f"%s::{cast}[]")
            names.append(quote(model_field.column))
            array_params.append(values[model_field.name])
            selects.append(f"src.{quote(model_field.column)}")
        else:
            value = constants.get(model_field.name, model_field.get_default())
            selects.append(f"%s::{cast}")
            constant_params.append(model_field.get_db_prep_save(value, connection))
    if len(names) != len(values):  # a per-row value with no column would be dropped silently
        raise ImproperlyConfigured(f"StagedProject lacks one of {sorted(values)}")
    project_table = quote(StagedProject._meta.db_table)
    event_table = quote(ChangeEvent._meta.db_table)
    # Only table and column names from the models are formatted in; every value is a
    # parameter.
    sql = (
        f"WITH src AS (SELECT * FROM unnest({', '.join(arrays)}, %s::text[], "  # noqa: S608
        f"%s::jsonb[]) AS src({', '.join(names)}, _summary, _details)), "
        f"ins AS (INSERT INTO {project_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(selects)} FROM src RETURNING id, linarc_id), "
        f"events AS (INSERT INTO {event_table} "
        "(company_id, project_id, at, actor_id, kind, summary, details) "
        "SELECT %s, ins.id, %s, %s, %s, src._summary, src._details "
        "FROM ins JOIN src ON src.linarc_id = ins.linarc_id) "
        "SELECT id FROM ins"
    )
    params = [
        *array_params,
        summaries,
        details,
        *constant_params,
        company.pk,
        now,
        getattr(actor, "pk", None),
        EventKind.IMPORTED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk for (pk,) in cursor.fetchall()]


def _insert_new_rows(**kwargs: Any) -> list[int]:
    if connections[StagedProject.objects.db].vendor == "postgresql":
        return _insert_new_rows_pg(**kwargs)
    return _insert_new_rows_orm(**kwargs)


def _staged_hashes(company: Company, linarc_ids: list[str]) -> list[tuple[int, str, str, bool]]:
    """``(pk, linarc_id, source_hash, deleted_in_linarc)`` of the company's rows with these
    ids. On PostgreSQL the ids go in as one array (``= ANY(%s)``): Django's ``__in`` prepares
    and compiles 500 parameters per page, ~6 µs per record on a re-import that does little
    else."""
    connection = connections[StagedProject.objects.db]
    if connection.vendor != "postgresql":
        return list(
            StagedProject.objects.filter(company=company, linarc_id__in=linarc_ids).values_list(
                "pk", "linarc_id", "source_hash", "deleted_in_linarc"
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, linarc_id, source_hash, deleted_in_linarc "  # noqa: S608
            f"FROM {connection.ops.quote_name(StagedProject._meta.db_table)} "
            "WHERE company_id = %s AND linarc_id = ANY(%s::varchar[])",
            [company.pk, linarc_ids],
        )
        return list(cursor.fetchall())


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

    Most records of a re-import are unchanged, so the page's staged rows are first read
    light (id, hash, deleted flag: no lock, no JSON decoded); only the rows whose record
    changed are then locked and loaded as models to compute their diff and status.
    """
    actor = actor if getattr(actor, "is_authenticated", False) else None
    by_id: dict[str, ProjectRecord] = {}
    for record in records:  # a page that repeats an id: the last copy wins
        by_id[record.linarc_id] = record
    outcome = PageOutcome(staged_ids=list(by_id))
    if not by_id:
        return outcome
    now = timezone.now()
    hashes = {linarc_id: record.content_hash() for linarc_id, record in by_id.items()}
    # No savepoint of its own: the caller's transaction (if any) rolls back with it anyway,
    # and a page of unchanged records then costs three statements, not five.
    with transaction.atomic(savepoint=False):
        _lock_company_imports(company)
        # Under the company's import lock no other import changes these rows' hash or flag;
        # sync workers never write them.
        known = {
            linarc_id: (pk, source_hash, deleted)
            for pk, linarc_id, source_hash, deleted in _staged_hashes(company, list(by_id))
        }
        new_records: list[ProjectRecord] = []
        changed: list[str] = []
        for linarc_id, record in by_id.items():
            row = known.get(linarc_id)
            if row is None:
                if create:
                    new_records.append(record)
                else:
                    outcome.skipped += 1
                continue
            pk, source_hash, deleted = row
            outcome.seen_pks.append(pk)
            if not update:  # staged, and this import does not update
                outcome.skipped += 1
            elif source_hash == hashes[linarc_id] and not deleted:
                outcome.unchanged += 1
            else:
                changed.append(linarc_id)

        if new_records:
            outcome.seen_pks.extend(
                _insert_new_rows(
                    company=company,
                    records=new_records,
                    hashes=hashes,
                    actor=actor,
                    run_id=run_id,
                    now=now,
                )
            )
            outcome.created = len(new_records)
        if changed:
            _stage_changed(
                company=company,
                records=[by_id[linarc_id] for linarc_id in changed],
                hashes=hashes,
                actor=actor,
                run_id=run_id,
                now=now,
                outcome=outcome,
            )
    return outcome


def _stage_changed(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Any,
    run_id: int | None,
    now: datetime,
    outcome: PageOutcome,
) -> None:
    """Apply the records whose hash differs (or whose row is flagged deleted) to their
    rows: locked so a sync worker's outcome cannot interleave with our write of status; the
    big JSON columns we never read are left behind."""
    locked = (
        StagedProject.objects.select_for_update(no_key=True)
        .filter(company=company, linarc_id__in=[record.linarc_id for record in records])
        .defer("last_request", "last_response")
    )
    existing = {project.linarc_id: project for project in locked}
    edited: list[tuple[StagedProject, str, dict[str, Any]]] = []
    refreshed: list[StagedProject] = []
    for record in records:
        project = existing[record.linarc_id]
        edit = _edit_row(
            project=project, record=record, source_hash=hashes[record.linarc_id], now=now
        )
        if edit is None:
            refreshed.append(project)
            outcome.unchanged += 1
        else:
            edited.append((project, *edit))
            # Junk kept and nothing else: history to write, but no staged value changed.
            if "changes" in edit[1]:
                outcome.updated += 1
            else:
                outcome.unchanged += 1
    _write_edits(company, [project for project, _, _ in edited] + refreshed)
    events: list[ChangeEvent] = []
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


class SeenRows:
    """The primary keys of the staged rows a listing saw, as a bitmap in 64 KiB blocks (one
    bit per key), for deletion detection.

    Holding every listed id in a set grew the worker by ~0.3 kB per project (+26 MB from
    10,000 to 100,000); a bitmap costs one bit per key, and keys of one company sit close
    together, so a 100,000-project account fits in one or two blocks. No row is written to
    mark it seen: a re-import of unchanged rows stays read-only.
    """

    _SHIFT = 19  # 2**19 keys per block = 64 KiB
    _MASK = (1 << _SHIFT) - 1

    def __init__(self) -> None:
        self._blocks: dict[int, bytearray] = {}

    def add(self, pk: int) -> None:
        block = self._blocks.get(pk >> self._SHIFT)
        if block is None:
            block = self._blocks[pk >> self._SHIFT] = bytearray(1 << (self._SHIFT - 3))
        offset = pk & self._MASK
        block[offset >> 3] |= 1 << (offset & 7)

    def update(self, pks: Iterable[int]) -> None:
        for pk in pks:
            self.add(pk)

    def __contains__(self, pk: object) -> bool:
        if not isinstance(pk, int):
            return False
        block = self._blocks.get(pk >> self._SHIFT)
        if block is None:
            return False
        offset = pk & self._MASK
        return bool(block[offset >> 3] & (1 << (offset & 7)))


def projects_flag_deleted(
    *, company: Company, seen: Container[int], actor: Any = None, run_id: int | None = None
) -> int:
    """Flag staged projects Linarc no longer lists (``deleted_in_linarc``), never remove
    them: a staged row may be synced to QBO and its history must stay. Only a complete
    listing may call this (an interrupted one would flag projects it simply did not reach).

    ``seen``: the primary keys of the rows the listing staged or found unchanged. The
    company's rows are walked by primary key in slices, so memory does not grow with the
    account.
    """
    actor = actor if getattr(actor, "is_authenticated", False) else None
    flagged = 0
    after = 0
    while True:
        pks = list(
            StagedProject.objects.filter(company=company, deleted_in_linarc=False, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:DELETION_SCAN_SIZE]
        )
        if not pks:
            return flagged
        after = pks[-1]
        missing = [pk for pk in pks if pk not in seen]
        for start in range(0, len(missing), IMPORT_PAGE_SIZE):
            flagged += _flag_deleted_chunk(
                company=company,
                pks=missing[start : start + IMPORT_PAGE_SIZE],
                actor=actor,
                run_id=run_id,
            )


def _flag_deleted_chunk(*, company: Company, pks: list[int], actor: Any, run_id: int | None) -> int:
    now = timezone.now()
    with transaction.atomic():
        _lock_company_imports(company)
        rows = list(
            StagedProject.objects.select_for_update(no_key=True)
            .filter(pk__in=pks, deleted_in_linarc=False)
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
    return len(rows)


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


def _analyze_if_unplanned(created_in_run: int) -> bool:
    """``ANALYZE`` the staged projects table when this run has written many rows the planner
    does not know of (PostgreSQL only); ``True`` when it ran (once per run is enough)."""
    connection = connections[StagedProject.objects.db]
    if connection.vendor != "postgresql" or created_in_run < ANALYZE_AFTER_CREATED:
        return False
    table = StagedProject._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
        if row is not None and row[0] >= created_in_run / 2:
            return True  # statistics already cover most of what we wrote
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return True


def _listing(
    *, client: LinarcClient, run: Run, tally: _Tally, create: bool, update: bool
) -> SeenRows:
    """Stage every page of the listing; the staged rows Linarc listed (for deletions).

    Pages are fetched one at a time. Reading the next page in a thread while this one is
    written was measured and left out: the two threads share the GIL, and the writer then
    waits for it after every database round trip (0.84-0.98x the sequential speed)."""
    updated_since = run.params.get("updated_since")
    seen = SeenRows()
    analyzed = False
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
        seen.update(outcome.seen_pks)
        if not analyzed:
            analyzed = _analyze_if_unplanned(tally.counts["created"])
    return seen


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
        seen = _listing(client=client, run=run, tally=tally, create=True, update=True)
        if tally.counts["invalid"]:
            # An unreadable record may be one of ours (its id unreadable too): flagging
            # would mark a live project deleted. Deletions wait for a clean listing.
            run.params = {**run.params, "deletions_checked": False}
        else:
            tally.counts["deleted"] = projects_flag_deleted(
                company=run.company, seen=seen, actor=run.started_by, run_id=run.pk
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
