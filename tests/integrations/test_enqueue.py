"""Services send tasks by name (integrations.services.enqueue), never through the task
modules: the names must be the registered ones, and an eager setup still runs them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations.models import WebhookEvent
from integrations.services.enqueue import enqueue
from integrations.services.webhook_processing import NO_COMPANY
from integrations.services.webhooks import PROCESS_QBO_WEBHOOKS
from staging.celery import app
from staging.services.qbo_customer_refresh import REFRESH_QBO_CUSTOMERS


@pytest.fixture
def eager() -> Iterator[None]:
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = saved


def test_the_names_services_send_are_registered_tasks() -> None:
    app.loader.import_default_modules()  # what a worker loads at start
    assert {PROCESS_QBO_WEBHOOKS, REFRESH_QBO_CUSTOMERS} <= set(app.tasks)


def test_enqueue_sends_the_task_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs: sent.append((name, kwargs)))
    enqueue(PROCESS_QBO_WEBHOOKS, realm_id="4620")
    assert sent == [(PROCESS_QBO_WEBHOOKS, {"realm_id": "4620"})]


def test_enqueue_runs_the_task_in_place_when_tasks_are_eager(db: None, eager: None) -> None:
    # The sweep finds an event whose message was lost and runs its realm's batch (eager too).
    event = WebhookEvent.objects.create(
        dedupe_key="lost",
        realm_id="4621",
        entity="Customer",
        entity_id="5",
        operation="Update",
        received_at=timezone.now() - timedelta(minutes=5),
    )
    enqueue("integrations.sweep_qbo_webhooks")
    event.refresh_from_db()
    assert event.processed_at is not None and event.outcome == NO_COMPANY
