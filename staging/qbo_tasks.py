"""Celery tasks of QBO-side work whose run staging keeps. Thin: take ids, call one service.

The customer refresh fills integrations' customer cache, but its progress is a staging Run,
so the task is here; it keeps its name from when it lived in integrations (messages queued
at a deploy still find it; staging.celery routes by name).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from integrations.retry import QBO_RETRY, retry_countdown
from qbo_client.errors import TransientError
from staging.services.qbo_customer_refresh import REFRESH_QBO_CUSTOMERS, qbo_customers_refresh


@shared_task(
    name=REFRESH_QBO_CUSTOMERS, acks_late=True, bind=True, max_retries=QBO_RETRY.max_tries - 1
)
def refresh_qbo_customers(self: Any, *, run_id: int) -> None:
    """The refresh; QBO's transient errors retry it under the one retry policy."""
    try_number = self.request.retries + 1
    try:
        qbo_customers_refresh(run_id=run_id, final_try=QBO_RETRY.gives_up_after(try_number))
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(exc, try_number)) from exc
