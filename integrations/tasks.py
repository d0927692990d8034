"""Celery tasks of the integrations app (thin: ids in, one service call)."""

from __future__ import annotations

from celery import shared_task

from integrations.services.qbo_connection import qbo_customers_refresh


@shared_task(name="integrations.refresh_qbo_customers", acks_late=True)
def refresh_qbo_customers(*, run_id: int) -> None:
    qbo_customers_refresh(run_id=run_id)


@shared_task(name="integrations.process_qbo_webhook", acks_late=True)
def process_qbo_webhook(*, event_id: int) -> None:
    from integrations.services.webhooks import webhook_process

    webhook_process(event_id=event_id)
