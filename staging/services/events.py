"""The append-only Change History: the one writer of its rows.

Every state transition writes its event in the same transaction as the change itself (see
the callers): one row's change with :func:`event_record`; a page or a chunk collects
:func:`event_new` events and writes them with :func:`events_write`; a queued sync attempt
with :func:`events_record_for_attempt` (``INSERT … SELECT``). The one other path is the
first import's PostgreSQL fast path (``staging/imports/new_rows.py``), which writes the new
rows and their *Imported* events in one statement; a test compares its rows with these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, models
from django.utils import timezone

from integrations.actors import Actor, actor_user
from staging.models import ChangeEvent, EventKind, StagedProject


def event_new(
    *,
    project: StagedProject,
    kind: EventKind,
    summary: str,
    actor: Actor = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> ChangeEvent:
    """One event, not yet written: collect a page's or a chunk's and write them together
    with :func:`events_write`."""
    return ChangeEvent(
        company_id=project.company_id,
        project=project,
        kind=kind,
        summary=summary,
        actor=actor_user(actor),
        details=details or {},
        at=at or timezone.now(),
    )


def events_write(events: Iterable[ChangeEvent], *, batch_size: int = 1000) -> int:
    """Write events made by :func:`event_new` in as few INSERTs as ``batch_size`` allows.
    The one way rows enter the Change History, with :func:`events_record_for_attempt`."""
    rows = list(events)
    ChangeEvent.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)


def event_record(
    *,
    project: StagedProject,
    kind: EventKind,
    summary: str,
    actor: Actor = None,
    details: dict[str, Any] | None = None,
) -> ChangeEvent:
    """Write one event now (a mapping, a retry: one row's change)."""
    event = event_new(project=project, kind=kind, summary=summary, actor=actor, details=details)
    events_write([event])
    return event


def events_record_bulk(
    *,
    projects: Iterable[StagedProject],
    kind: EventKind,
    summary: str,
    actor: Actor = None,
    details: dict[str, Any] | None = None,
) -> int:
    """One event per project, the same for all (bulk imports and bulk syncs)."""
    now = timezone.now()
    return events_write(
        event_new(project=p, kind=kind, summary=summary, actor=actor, details=details, at=now)
        for p in projects
    )


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field


def events_record_for_attempt(
    *,
    run_id: int,
    attempt_id: uuid.UUID,
    kind: EventKind,
    summary: str,
    actor: Actor = None,
    details: dict[str, Any] | None = None,
) -> int:
    """One event per row queued by a sync attempt, written by the database itself in one
    ``INSERT … SELECT`` over the rows (no Python object per row: for a Select All of 10,000
    rows, building and sending the events cost more than PostgreSQL took to write them)."""
    user = actor_user(actor)
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(_field(ChangeEvent, name).column)
        for name in ("company", "project", "at", "actor", "kind", "summary", "details")
    )
    project_column = {
        name: quote(_field(StagedProject, name).column)
        for name in ("company", "id", "sync_run", "attempt_id")
    }
    # Only quoted names from the models' metadata are formatted in; values are parameters.
    sql = (
        f"INSERT INTO {quote(ChangeEvent._meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT {project_column['company']}, {project_column['id']}, %s, %s, %s, %s, %s "
        f"FROM {quote(StagedProject._meta.db_table)} "
        f"WHERE {project_column['sync_run']} = %s AND {project_column['attempt_id']} = %s"
    )
    params = [
        _field(ChangeEvent, "at").get_db_prep_value(timezone.now(), connection),
        user.pk if user is not None else None,
        str(kind),
        summary,
        _field(ChangeEvent, "details").get_db_prep_value(details or {}, connection),
        run_id,
        _field(StagedProject, "attempt_id").get_db_prep_value(attempt_id, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)
