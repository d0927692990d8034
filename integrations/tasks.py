"""Celery tasks of the integrations app (thin: ids in, one service call)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from integrations.services.qbo_connection import qbo_customers_refresh


@shared_task(name="integrations.refresh_qbo_customers", acks_late=True)
def refresh_qbo_customers(*, run_id: int) -> None:
    qbo_customers_refresh(run_id=run_id)


@shared_task(name="integrations.process_qbo_webhooks", acks_late=True, bind=True)
def process_qbo_webhooks(self: Any, *, realm_id: str) -> None:
    """One batch of the realm's webhook events; the rest waits at the back of the queue."""
    from integrations.services.webhook_processing import webhook_events_process

    if webhook_events_process(realm_id=realm_id, claim_id=self.request.id):
        process_qbo_webhooks.delay(realm_id=realm_id)


@shared_task(name="integrations.process_qbo_webhook", acks_late=True, bind=True)
def process_qbo_webhook(self: Any, *, event_id: int) -> None:
    """Messages queued before deliveries were coalesced name one event: its realm's batch."""
    from integrations.services.webhook_processing import (
        webhook_event_realm,
        webhook_events_process,
    )

    realm_id = webhook_event_realm(event_id=event_id)
    if realm_id and webhook_events_process(realm_id=realm_id, claim_id=self.request.id):
        process_qbo_webhooks.delay(realm_id=realm_id)


@shared_task(name="integrations.sweep_qbo_webhooks")
def sweep_qbo_webhooks() -> int:
    """Maintenance: a run for every realm whose events wait with no live run."""
    from integrations.services.webhook_processing import webhook_realms_waiting

    realms = webhook_realms_waiting()
    for realm_id in realms:
        process_qbo_webhooks.delay(realm_id=realm_id)
    return len(realms)
