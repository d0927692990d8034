"""Tasks other than the sync retry QBO's transient errors under the one retry policy
(integrations/retry.py): the webhook processing and the customer-list refresh.

The QBO client does not wait and retry by itself; a 5xx reaches the task, which retries
with backoff until the policy gives up, then records the reason. Here the emulator answers
503 a given number of times; Celery's eager ``apply`` runs the retries in turn with the
same task id, as a worker would after the countdown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integrations import tasks
from integrations.models import QboCustomer, WebhookEvent
from integrations.retry import QBO_RETRY, retry_countdown
from integrations.services.webhook_processing import webhook_events_process
from qbo_client.emulator import QboEmulator
from qbo_client.errors import ThrottledError, TransientError
from staging import qbo_tasks
from staging.models import Run, RunState
from staging.services.qbo_customer_refresh import customers_refresh_start, qbo_customers_refresh
from tests.conftest import Personas
from tests.fixtures.qbo import connect_company, control, refresh_customers


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> Iterator[QboEmulator]:
    connect_company(personas.company)
    refresh_customers(personas.company)
    control(qbo_emulator, "POST", "counters/reset")
    yield qbo_emulator


@pytest.fixture
def no_chained_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.process_qbo_webhooks, "delay", lambda **kw: sent.append(kw))
    return sent


def _queries(emulator: QboEmulator) -> int:
    return int(control(emulator, "GET", "counters")["routes"].get("POST query", 0))


def _fail_queries(emulator: QboEmulator, times: int) -> None:
    control(emulator, "POST", "faults", json={"kind": "503", "count": times, "path": "/query"})


def _update_event(personas: Personas) -> tuple[QboCustomer, WebhookEvent]:
    customer = QboCustomer.objects.filter(company=personas.company, is_job=False)[0]
    QboCustomer.objects.filter(pk=customer.pk).update(display_name="stale name")
    event = WebhookEvent.objects.create(
        dedupe_key=f"retry:{customer.qbo_id}",
        realm_id=personas.company.qbo_connection.realm_id,
        entity="Customer",
        entity_id=customer.qbo_id,
        operation="Update",
        payload={},
    )
    return customer, event


# --- the policy's countdown --------------------------------------------------------------------


def test_a_task_waits_the_policys_delay_or_qbos_retry_after_when_that_is_longer() -> None:
    plain = TransientError("QuickBooks returned HTTP 503")
    for try_number in range(1, QBO_RETRY.max_tries):
        ceiling = QBO_RETRY.ceiling_for(try_number)
        assert ceiling / 2 <= retry_countdown(plain, try_number) <= ceiling
    throttled = ThrottledError("throttled", retry_after=45.0)
    assert retry_countdown(throttled, 1) == 45.0
    assert retry_countdown(ThrottledError("throttled", retry_after=0.5), 6) >= 16


# --- webhooks -------------------------------------------------------------------------------------


def test_a_webhook_batch_that_meets_a_503_is_retried_and_then_applied(
    personas: Personas, connected: QboEmulator, no_chained_runs: list[dict[str, Any]]
) -> None:
    customer, event = _update_event(personas)
    _fail_queries(connected, times=2)

    tasks.process_qbo_webhooks.apply(kwargs={"realm_id": event.realm_id}, task_id="hook-1")

    assert _queries(connected) == 3  # two 503s, then the read that worked
    event.refresh_from_db()
    assert event.outcome == "Customer cache refreshed." and event.processed_at is not None
    assert event.claim_id == "hook-1"  # the retries took back the claim of the first try
    customer.refresh_from_db()
    assert customer.display_name != "stale name"


def test_before_the_final_try_a_transient_error_leaves_the_events_claimed_for_the_retry(
    personas: Personas, connected: QboEmulator
) -> None:
    _customer, event = _update_event(personas)
    _fail_queries(connected, times=1)

    with pytest.raises(TransientError):
        webhook_events_process(realm_id=event.realm_id, claim_id="hook-2", final_try=False)

    event.refresh_from_db()
    assert (event.processed_at, event.outcome, event.claim_id) == (None, "", "hook-2")


def test_a_webhook_batch_gives_up_after_the_policys_tries_and_says_why(
    personas: Personas, connected: QboEmulator, no_chained_runs: list[dict[str, Any]]
) -> None:
    _customer, event = _update_event(personas)
    _fail_queries(connected, times=QBO_RETRY.max_tries + 3)

    tasks.process_qbo_webhooks.apply(kwargs={"realm_id": event.realm_id}, task_id="hook-3")

    assert _queries(connected) == QBO_RETRY.max_tries
    event.refresh_from_db()
    assert event.processed_at is not None
    assert event.outcome.startswith("Could not read the customer:")
    assert "503" in event.outcome


# --- the customer refresh -----------------------------------------------------------------------


def test_a_customer_refresh_that_meets_a_503_is_retried_and_finishes(
    personas: Personas, connected: QboEmulator
) -> None:
    run = customers_refresh_start(company=personas.company, actor=None)
    _fail_queries(connected, times=2)

    qbo_tasks.refresh_qbo_customers.apply(kwargs={"run_id": run.pk})

    run.refresh_from_db()
    assert run.state == RunState.DONE and run.error == ""
    assert run.counts["customers"] == QboCustomer.objects.filter(company=personas.company).count()


def test_before_the_final_try_a_refresh_goes_back_to_pending_for_its_retry(
    personas: Personas, connected: QboEmulator
) -> None:
    run = customers_refresh_start(company=personas.company, actor=None)
    _fail_queries(connected, times=1)

    with pytest.raises(TransientError):
        qbo_customers_refresh(run_id=run.pk, final_try=False)

    assert Run.objects.get(pk=run.pk).state == RunState.PENDING


def test_a_customer_refresh_fails_with_the_reason_once_the_policy_gives_up(
    personas: Personas, connected: QboEmulator
) -> None:
    run = customers_refresh_start(company=personas.company, actor=None)
    _fail_queries(connected, times=QBO_RETRY.max_tries + 3)

    qbo_tasks.refresh_qbo_customers.apply(kwargs={"run_id": run.pk})

    run.refresh_from_db()
    assert run.state == RunState.FAILED and "503" in run.error
    assert _queries(connected) == QBO_RETRY.max_tries
