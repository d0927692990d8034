"""The page writer: one page of Linarc records upserted into staging, with its history.

Queries per page are a constant, however many pages the import has: one light read of the
page's staged rows (id, hash, deleted flag: no lock, no JSON decoded); the new ones written
by new_rows.py (one statement with their *Imported* history on PostgreSQL); and only rows
whose content changed are locked, loaded and upserted with their *Updated from Linarc*
history. Unchanged projects are skipped by content hash (``ProjectRecord.content_hash``,
stored as ``source_hash``), which makes every import idempotent: running it again writes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from integrations.actors import Actor
from integrations.models import Company, LinarcConnection
from linarc_client import ProjectRecord
from staging.imports.new_rows import insert_new_rows
from staging.imports.rows import IMPORT_PAGE_SIZE, edit_row
from staging.models import ChangeEvent, EventKind, StagedProject
from staging.services.events import event_new, events_write
from staging.services.qbo_payload import SYNCED_SOURCE_FIELDS

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


def company_imports_lock(company: Company) -> None:
    """Serialise the page writes of concurrent imports of one company (a manual import and
    the scheduled pull), so two never insert the same new project. NO KEY UPDATE does not
    block inserts of rows that reference the connection's company."""
    list(
        LinarcConnection.objects.select_for_update(no_key=True)
        .filter(company=company)
        .values_list("pk", flat=True)
    )


def projects_stage_page(
    *,
    company: Company,
    records: Sequence[ProjectRecord],
    create: bool,
    update: bool,
    actor: Actor = None,
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
        company_imports_lock(company)
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
                insert_new_rows(
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


def _stage_changed(
    *,
    company: Company,
    records: list[ProjectRecord],
    hashes: dict[str, str],
    actor: Actor,
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
        edit = edit_row(
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
            event_new(
                project=project,
                kind=EventKind.UPDATED,
                summary=summary,
                details=details,
                actor=actor,
                at=now,
            )
        )
    if events:
        events_write(events, batch_size=IMPORT_PAGE_SIZE)


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
