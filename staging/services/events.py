"""The append-only Change History. Every state transition writes its event in the same
transaction as the change itself (see the callers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection, models
from django.utils import timezone

from staging.models import ChangeEvent, EventKind, StagedProject


def event_record(
    *,
    project: StagedProject,
    kind: EventKind,
    summary: str,
    actor: Any = None,
    details: dict[str, Any] | None = None,
) -> ChangeEvent:
    return ChangeEvent.objects.create(
        company_id=project.company_id,
        project=project,
        kind=kind,
        summary=summary,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        details=details or {},
        at=timezone.now(),
    )


def events_record_bulk(
    *,
    projects: Iterable[StagedProject],
    kind: EventKind,
    summary: str,
    actor: Any = None,
    details: dict[str, Any] | None = None,
) -> int:
    """One event per project in a single INSERT (bulk imports and bulk syncs)."""
    now = timezone.now()
    actor = actor if getattr(actor, "is_authenticated", False) else None
    rows = [
        ChangeEvent(
            company_id=p.company_id,
            project=p,
            kind=kind,
            summary=summary,
            actor=actor,
            details=details or {},
            at=now,
        )
        for p in projects
    ]
    ChangeEvent.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


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
    actor: Any = None,
    details: dict[str, Any] | None = None,
) -> int:
    """One event per row queued by a sync attempt, written by the database itself in one
    ``INSERT … SELECT`` over the rows (no Python object per row: for a Select All of 10,000
    rows, building and sending the events cost more than PostgreSQL took to write them)."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
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
        actor.pk if actor is not None else None,
        str(kind),
        summary,
        _field(ChangeEvent, "details").get_db_prep_value(details or {}, connection),
        run_id,
        _field(StagedProject, "attempt_id").get_db_prep_value(attempt_id, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)
