"""A new QBO naming rule: Synced jobs whose QBO name would change need a sync again."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from integrations.actors import Actor
from integrations.models import Company
from staging.models import EventKind, StagedProject, SyncStatus
from staging.services.events import event_new, events_write
from staging.services.qbo_payload import project_display_name

RENAME_BATCH = 1000


def projects_apply_naming_rule(*, company: Company, template: str, actor: Actor) -> int:
    """Move every Synced project whose QBO DisplayName differs under ``template`` to Needs
    Sync, with a history event naming the old and new name; returns how many moved.

    Call inside the transaction that saves the rule, so the rule and the rows agree. The
    Synced rows are locked first, so a Sync or an import cannot move one in between. Rows
    in other states need nothing: the next sync of any of them sends the new name.
    """
    now = timezone.now()
    synced = (
        StagedProject.objects.for_company(company)
        .filter(status=SyncStatus.SYNCED)
        .select_for_update(of=("self",))
        .only("pk", "company_id", "name", "number", "client_name", "qbo_display_name")
        .order_by("pk")
    )
    moved = 0
    renamed: list[tuple[StagedProject, str]] = []

    def flush() -> None:
        nonlocal moved
        ids = [project.pk for project, _ in renamed]
        count = StagedProject.objects.filter(pk__in=ids).update(
            status=SyncStatus.NEEDS_SYNC, status_reason="", updated_at=now
        )
        events_write(
            event_new(
                project=project,
                kind=EventKind.NAMING_RULE,
                summary=f"Naming rule changed: the QBO name becomes “{new}”",
                actor=actor,
                details={
                    "changes": {"QBO name": [project.qbo_display_name, new]},
                    "naming_rule": template,
                },
                at=now,
            )
            for project, new in renamed
        )
        moved += count
        renamed.clear()

    with transaction.atomic():
        for project in synced.iterator(chunk_size=RENAME_BATCH):
            try:
                new = project_display_name(project=project, template=template)
            except ValueError:
                continue  # no usable name: the next sync reports it on the row
            if new != project.qbo_display_name:
                renamed.append((project, new))
            if len(renamed) >= RENAME_BATCH:
                flush()
        if renamed:
            flush()
    return moved
