"""What a change to a QBO customer means for the staged projects mapped to it.

The webhook processing (integrations.services.webhook_processing) keeps the customer cache;
when QBO says a customer went away it sends ``qbo_customer_gone`` and this flags the
projects (staging.receivers connects the two).
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from integrations.models import Company
from staging.models import EventKind, StagedProject, SyncStatus
from staging.services.events import events_record_bulk


def projects_flag_customer_gone(
    *, company: Company, qbo_id: str, operation: str, webhook_event_id: int
) -> int:
    """Move the company's projects mapped to (or created as) QBO customer ``qbo_id`` to
    Needs Action, with a history event each; returns how many. Queued rows are left to
    their sync, which finds out for itself."""
    verb = {"Merge": "merged into another customer", "Delete": "deleted"}.get(
        operation, "made inactive"
    )
    affected = StagedProject.objects.filter(company=company).exclude(
        status=SyncStatus.QUEUED
    ).filter(qbo_customer__qbo_id=qbo_id) | StagedProject.objects.filter(
        company=company, qbo_record_id=qbo_id
    ).exclude(status=SyncStatus.QUEUED)
    projects = list(affected.only("pk", "company_id"))
    reason = (
        f"QBO customer {qbo_id} was {verb} in QuickBooks. Link the project to an "
        "existing record with Manual Mapping, or restore the customer in QuickBooks."
    )
    with transaction.atomic():
        StagedProject.objects.filter(pk__in=[p.pk for p in projects]).update(
            status=SyncStatus.NEEDS_ACTION, status_reason=reason, updated_at=timezone.now()
        )
        events_record_bulk(
            projects=projects,
            kind=EventKind.NEEDS_ACTION,
            summary=reason,
            details={"webhook_event": webhook_event_id},
        )
    return len(projects)
