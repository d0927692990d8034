"""Celery tasks of the integrations app (thin: ids in, one service call).

Tasks import services, never the other way: services send these by name
(integrations.services.enqueue). The customer refresh's task is staging's
(staging.qbo_tasks), since its run is.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from integrations.retry import QBO_RETRY, retry_countdown
from integrations.services.qbo_tokens import qbo_tokens_keep_fresh
from integrations.services.webhook_processing import (
    webhook_event_realm,
    webhook_events_process,
    webhook_realms_waiting,
)
from integrations.services.webhooks import PROCESS_QBO_WEBHOOKS
from qbo_client.errors import TransientError


@shared_task(
    name=PROCESS_QBO_WEBHOOKS, acks_late=True, bind=True, max_retries=QBO_RETRY.max_tries - 1
)
def process_qbo_webhooks(self: Any, *, realm_id: str) -> None:
    """One batch of the realm's webhook events; the rest waits at the back of the queue.
    QBO's transient errors retry the batch under the one retry policy (integrations.retry);
    a retry keeps the task id, so it takes back the events it had claimed."""
    try_number = self.request.retries + 1
    try:
        more = webhook_events_process(
            realm_id=realm_id,
            claim_id=self.request.id,
            final_try=QBO_RETRY.gives_up_after(try_number),
        )
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(exc, try_number)) from exc
    if more:
        process_qbo_webhooks.delay(realm_id=realm_id)


@shared_task(name="integrations.process_qbo_webhook", acks_late=True, bind=True)
def process_qbo_webhook(self: Any, *, event_id: int) -> None:
    """Messages queued before deliveries were coalesced name one event: its realm's batch."""
    realm_id = webhook_event_realm(event_id=event_id)
    if realm_id and webhook_events_process(realm_id=realm_id, claim_id=self.request.id):
        process_qbo_webhooks.delay(realm_id=realm_id)


@shared_task(name="integrations.keep_qbo_tokens_fresh")
def keep_qbo_tokens_fresh() -> dict[str, int]:
    """Maintenance: refresh the realms whose QuickBooks connection would lapse otherwise."""
    return dict(qbo_tokens_keep_fresh().__dict__)


@shared_task(name="integrations.sweep_qbo_webhooks")
def sweep_qbo_webhooks() -> int:
    """Maintenance: a run for every realm whose events wait with no live run."""
    realms = webhook_realms_waiting()
    for realm_id in realms:
        process_qbo_webhooks.delay(realm_id=realm_id)
    return len(realms)
