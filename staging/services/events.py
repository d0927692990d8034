"""The append-only Change History. Every state transition writes its event in the same
transaction as the change itself (see the callers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
