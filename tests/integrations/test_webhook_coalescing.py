"""Webhooks never delay syncs (issue #13): a delivery naming thousands of customers is stored
with one INSERT and wakes one task, and that task reads and applies each customer once.

Intuit expects the endpoint to answer within 3 s and retries deliveries:
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.models import AutoField
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations import tasks
from integrations.models import QboCustomer, WebhookEvent
from integrations.services import webhook_processing
from integrations.services.enqueue import enqueue
from integrations.services.webhook_processing import CLAIM_LEASE, NO_COMPANY
from qbo_client.emulator import QboEmulator
from staging.celery import WEBHOOKS, app, queue_name
from staging.models import ChangeEvent, EventKind, SyncStatus
from staging.worker_process import celery_worker_command, spawn_logged
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, qbo_env, refresh_customers
from tests.fixtures.workers import ROOT, WorkerPool, wait_for, worker_env

VERIFIER = "coalescing-verifier"
REALM = "9130"


@pytest.fixture(autouse=True)
def _verifier(settings: Any) -> None:
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the tasks send to the broker: recorded, not sent."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.process_qbo_webhooks, "delay", lambda **kw: sent.append(kw))
    return sent


def _legacy(entities: list[tuple[str, str]], realm: str = REALM, at: str = "10:00:00") -> bytes:
    """A legacy `eventNotifications` delivery of (customer id, operation) pairs."""
    changes = [
        {
            "name": "Customer",
            "id": entity_id,
            "operation": operation,
            "lastUpdated": f"2026-11-25T{at}.000Z",
        }
        for entity_id, operation in entities
    ]
    return json.dumps(
        {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": changes}}]}
    ).encode()


def _updates(count: int, first: int = 1) -> bytes:
    return _legacy([(str(i), "Update") for i in range(first, first + count)])


def _deliver(client: Client, body: bytes) -> Any:
    signature = base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest())
    return client.post(
        reverse("qbo_webhook"),
        body,
        content_type="application/json",
        headers={"intuit-signature": signature.decode()},
    )


def _inserts(queries: CaptureQueriesContext) -> list[str]:
    table = WebhookEvent._meta.db_table
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("INSERT") and table in q["sql"]
    ]


def _insert_statements_for(rows: int) -> int:
    """Django splits one bulk INSERT only where the database caps its parameters (SQLite's
    999); PostgreSQL takes the whole delivery in one statement."""
    fields = [f for f in WebhookEvent._meta.concrete_fields if not isinstance(f, AutoField)]
    per_statement = connection.ops.bulk_batch_size(fields, [None] * rows)
    return math.ceil(rows / per_statement)


# --- the endpoint ------------------------------------------------------------------------------


def test_a_5000_customer_delivery_is_accepted_with_one_task(
    client: Client, db: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        started = time.perf_counter()
        response = _deliver(client, _updates(5000))
        elapsed = time.perf_counter() - started
    print(f"\n5,000-customer delivery answered in {elapsed:.3f} s")  # measured, not asserted

    assert (response.status_code, response.json()) == (200, {"accepted": 5000})
    assert WebhookEvent.objects.filter(realm_id=REALM, processed_at=None).count() == 5000
    [callback] = callbacks
    # Sent by name (services do not import their tasks): the name of the task that runs it.
    assert callback.func == enqueue and callback.args == (tasks.process_qbo_webhooks.name,)
    assert callback.keywords == {"realm_id": REALM}


def test_the_queries_of_a_delivery_do_not_grow_with_the_customers_it_names(
    client: Client, db: None
) -> None:
    others = []
    for first, size in ((1, 50), (100, 5000)):
        with CaptureQueriesContext(connection) as queries:
            assert _deliver(client, _updates(size, first)).json() == {"accepted": size}
        assert len(_inserts(queries)) == _insert_statements_for(size)
        others.append(len(queries) - len(_inserts(queries)))
    # One look-up of the keys already stored, and what the transaction costs.
    assert others[0] == others[1] <= 10


def test_a_redelivered_flood_is_skipped_without_a_task(
    client: Client, db: None, django_capture_on_commit_callbacks: Any
) -> None:
    body = _updates(5000)
    assert _deliver(client, body).json() == {"accepted": 5000}
    with django_capture_on_commit_callbacks() as callbacks, CaptureQueriesContext(connection) as q:
        assert _deliver(client, body).json() == {"accepted": 0}
    assert callbacks == [] and _inserts(q) == []
    assert WebhookEvent.objects.count() == 5000


def test_a_delivery_wakes_one_task_per_realm_and_counts_a_repeated_event_once(
    client: Client, db: None, django_capture_on_commit_callbacks: Any
) -> None:
    notifications = [
        {
            "realmId": realm,
            "dataChangeEvent": {
                "entities": [
                    {"name": "Customer", "id": entity_id, "operation": "Update", "lastUpdated": "x"}
                    for entity_id in ("1", "2", "2")  # the last repeats the one before
                ]
            },
        }
        for realm in ("111", "222", "111")  # a realm twice: still one task for it
    ]
    body = json.dumps({"eventNotifications": notifications}).encode()
    with django_capture_on_commit_callbacks() as callbacks:
        assert _deliver(client, body).json() == {"accepted": 4}
    assert sorted(c.keywords["realm_id"] for c in callbacks) == ["111", "222"]


# --- processing --------------------------------------------------------------------------------


@pytest.fixture
def connected(personas: Personas, qbo_emulator: QboEmulator) -> Iterator[QboEmulator]:
    connect_company(personas.company)
    refresh_customers(personas.company)
    control(qbo_emulator, "POST", "counters/reset")
    yield qbo_emulator


def _realm(emulator: QboEmulator) -> str:
    return str(control(emulator, "GET", "state")["realm_id"])


def _qbo_reads(emulator: QboEmulator) -> dict[str, int]:
    return dict(control(emulator, "GET", "counters")["routes"])


def _event(realm: str, entity_id: str, operation: str, n: int, at: str = "") -> WebhookEvent:
    payload = {"lastUpdated": f"2026-11-25T{at}Z"} if at else {}
    return WebhookEvent.objects.create(
        dedupe_key=f"test:{entity_id}:{n}",
        realm_id=realm,
        entity="Customer",
        entity_id=entity_id,
        operation=operation,
        payload=payload,
    )


def _run(realm: str, task_id: str = "") -> None:
    tasks.process_qbo_webhooks.apply(kwargs={"realm_id": realm}, task_id=task_id or None)


def test_three_events_for_one_customer_are_read_once_and_all_marked_processed(
    personas: Personas, connected: QboEmulator, enqueued: list[dict[str, Any]]
) -> None:
    customer = QboCustomer.objects.filter(company=personas.company, is_job=False)[0]
    QboCustomer.objects.filter(pk=customer.pk).update(display_name="stale name")
    realm = _realm(connected)
    events = [_event(realm, customer.qbo_id, "Update", n) for n in range(3)]

    _run(realm, task_id="run-1")

    assert _qbo_reads(connected) == {"POST query": 1}
    customer.refresh_from_db()
    assert customer.display_name != "stale name"
    outcomes = WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).values_list(
        "outcome", flat=True
    )
    assert list(outcomes) == ["Customer cache refreshed."] * 3
    assert WebhookEvent.objects.filter(processed_at=None).count() == 0
    assert enqueued == []  # nothing left: the task does not come again

    processed = list(WebhookEvent.objects.values_list("pk", "processed_at"))
    _run(realm, task_id="run-1")  # the broker delivers the same task again
    assert _qbo_reads(connected) == {"POST query": 1}
    assert list(WebhookEvent.objects.values_list("pk", "processed_at")) == processed


def test_the_latest_change_of_a_customer_decides_even_when_it_arrives_first(
    personas: Personas, connected: QboEmulator, enqueued: list[dict[str, Any]]
) -> None:
    customer = QboCustomer.objects.filter(company=personas.company, is_job=False)[0]
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=customer, status=SyncStatus.NEEDS_SYNC
    )
    realm = _realm(connected)
    # Intuit retried the earlier update, so it arrives after the merge that followed it.
    _event(realm, customer.qbo_id, "Merge", 1, at="10:05:00")
    _event(realm, customer.qbo_id, "Update", 2, at="10:00:00")

    _run(realm)

    assert _qbo_reads(connected) == {}  # a merged customer needs no read
    project.refresh_from_db()
    assert project.status == SyncStatus.NEEDS_ACTION and "merged" in project.status_reason
    assert ChangeEvent.objects.filter(project=project, kind=EventKind.NEEDS_ACTION).count() == 1
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"Flagged 1 project(s)."}


def test_customers_qbo_no_longer_has_are_read_in_the_same_query_and_flagged(
    personas: Personas, connected: QboEmulator, enqueued: list[dict[str, Any]]
) -> None:
    # A customer made inactive in QBO (the demo seed has some) that the cache still thinks
    # active: QBO leaves inactive customers out of a query unless it asks for them.
    inactive = QboCustomer.objects.filter(company=personas.company, active=False)[0]
    QboCustomer.objects.filter(pk=inactive.pk).update(active=True)
    missing = StagedProjectFactory(
        company=personas.company, qbo_record_id="987654", status=SyncStatus.SYNCED
    )
    realm = _realm(connected)
    _event(realm, inactive.qbo_id, "Update", 1)
    _event(realm, "987654", "Update", 2)

    _run(realm)

    assert _qbo_reads(connected) == {"POST query": 1}
    inactive.refresh_from_db()
    assert inactive.deleted_in_qbo and not inactive.active
    missing.refresh_from_db()
    assert missing.status == SyncStatus.NEEDS_ACTION
    assert "987654 was made inactive" in missing.status_reason


def test_a_flood_is_worked_through_in_bounded_batches_by_a_task_that_comes_again(
    personas: Personas,
    connected: QboEmulator,
    enqueued: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_processing, "WEBHOOK_BATCH_SIZE", 2)
    ids = list(
        QboCustomer.objects.filter(company=personas.company).values_list("qbo_id", flat=True)[:5]
    )
    realm = _realm(connected)
    for n, entity_id in enumerate([*ids, ids[0]]):  # the first customer twice
        _event(realm, entity_id, "Update", n)

    runs = 1
    _run(realm)
    while enqueued:
        runs += 1
        _run(enqueued.pop()["realm_id"])

    # 2 + 2 + 1 customers: the first run took both events of the first customer.
    assert runs == 3
    assert _qbo_reads(connected) == {"POST query": 3}
    assert not WebhookEvent.objects.filter(processed_at=None).exists()


def test_events_a_live_run_claimed_are_left_to_it_and_a_dead_runs_are_taken_over(
    personas: Personas, connected: QboEmulator, enqueued: list[dict[str, Any]]
) -> None:
    customer = QboCustomer.objects.filter(company=personas.company, is_job=False)[0]
    realm = _realm(connected)
    event = _event(realm, customer.qbo_id, "Update", 1)
    WebhookEvent.objects.filter(pk=event.pk).update(
        claim_id="other-run", claimed_at=event.received_at
    )

    _run(realm)
    event.refresh_from_db()
    assert event.processed_at is None and _qbo_reads(connected) == {}

    WebhookEvent.objects.filter(pk=event.pk).update(
        claimed_at=event.received_at - CLAIM_LEASE - CLAIM_LEASE
    )
    _run(realm)
    event.refresh_from_db()
    assert event.outcome == "Customer cache refreshed." and event.claim_id != "other-run"


def test_two_runs_racing_through_a_realm_claim_each_event_once(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,000 events of 600 customers: a customer's events straddle the batches, so both
    # runs reach events of one customer.
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            dedupe_key=f"race:{n}", realm_id="777", entity="Customer", entity_id=str(n % 600)
        )
        for n in range(1000)
    )
    claimed: list[list[int]] = []
    claim = webhook_processing._events_claim

    def recording_claim(**kwargs: Any) -> list[WebhookEvent]:
        events = claim(**kwargs)
        claimed.append([e.pk for e in events])
        return events

    monkeypatch.setattr(webhook_processing, "_events_claim", recording_claim)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            while webhook_processing.webhook_events_process(realm_id="777"):
                pass
        except BaseException as exc:  # a deadlock or a lock timeout fails the test
            failures.append(exc)
        finally:
            connection.close()

    runners = [threading.Thread(target=run) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=120)

    assert failures == []
    pks = [pk for batch in claimed for pk in batch]
    assert sorted(pks) == sorted(WebhookEvent.objects.values_list("pk", flat=True))
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {NO_COMPANY}


def test_an_event_of_a_realm_no_company_connected_is_closed_with_that_outcome(
    db: None, enqueued: list[dict[str, Any]]
) -> None:
    event = _event("555", "7", "Delete", 1)
    _run("555")
    event.refresh_from_db()
    assert event.processed_at is not None and event.outcome == NO_COMPANY


def test_a_message_of_the_old_one_event_task_processes_its_realm(
    personas: Personas, connected: QboEmulator, enqueued: list[dict[str, Any]]
) -> None:
    ids = list(
        QboCustomer.objects.filter(company=personas.company).values_list("qbo_id", flat=True)[:2]
    )
    realm = _realm(connected)
    first, second = (_event(realm, entity_id, "Update", n) for n, entity_id in enumerate(ids))

    tasks.process_qbo_webhook.apply(kwargs={"event_id": first.pk})
    tasks.process_qbo_webhook.apply(kwargs={"event_id": second.pk})  # already done: nothing

    assert not WebhookEvent.objects.filter(processed_at=None).exists()
    assert _qbo_reads(connected) == {"POST query": 1}


# --- the queue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_name", ["integrations.process_qbo_webhooks", "integrations.process_qbo_webhook"]
)
def test_webhook_tasks_are_routed_to_the_webhooks_queue(task_name: str) -> None:
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue_name(WEBHOOKS)
    assert route["queue"].name.endswith(".webhooks")


@pytest.fixture
def webhooks_worker(celery_workers: WorkerPool, qbo_emulator: QboEmulator) -> Iterator[str]:
    """A worker that consumes the webhooks queue and nothing else, in place of the pool's
    default one: if the work went to any other queue, nothing would take it."""
    celery_workers.processes[0].terminate()
    webhooks_queue = queue_name(WEBHOOKS, celery_workers.queue)
    command = celery_worker_command(
        concurrency=2, queue=celery_workers.queue, name=f"wh-{uuid.uuid4().hex[:6]}@%h"
    )
    command[command.index("-Q") + 1] = webhooks_queue
    log_path = ROOT / "var" / f"test-worker-{webhooks_queue}.log"
    env = {**worker_env(celery_workers.queue), **qbo_env(qbo_emulator)}
    celery_workers.processes.append(spawn_logged(command, log_path=log_path, env=env))
    celery_workers.log_paths.append(log_path)
    try:
        yield webhooks_queue
    finally:
        # Connecting QBO queued a customer refresh on the default queue nobody consumes.
        with app.connection_for_write() as broker:
            broker.default_channel.queue_purge(celery_workers.queue)


@pytest.mark.worker
def test_a_5000_customer_delivery_is_processed_by_a_worker_of_the_webhooks_queue_alone(
    personas: Personas,
    qbo_emulator: QboEmulator,
    celery_workers: WorkerPool,
    webhooks_worker: str,
) -> None:
    connect_company(personas.company)
    refresh_customers(personas.company)
    known = list(
        QboCustomer.objects.filter(company=personas.company).values_list("qbo_id", flat=True)
    )
    QboCustomer.objects.filter(company=personas.company).update(display_name="stale name")
    control(qbo_emulator, "POST", "counters/reset")
    realm = _realm(qbo_emulator)
    entity_ids = [*known, *(str(100_000 + i) for i in range(5000 - len(known)))]

    body = _legacy([(entity_id, "Update") for entity_id in entity_ids], realm=realm)
    response = _deliver(Client(), body)

    assert response.json() == {"accepted": 5000}
    started = time.monotonic()
    wait_for(
        lambda: not WebhookEvent.objects.filter(processed_at=None).exists(),
        timeout=240,
        interval=1,
        pool=celery_workers,
    )
    print(f"\n5,000 customers processed by the worker in {time.monotonic() - started:.1f} s")
    reads = _qbo_reads(qbo_emulator)  # (the worker's OAuth discovery look-ups aside)
    assert reads["POST query"] == 50 and "GET customer/{id}" not in reads  # 100 a query
    assert not QboCustomer.objects.filter(display_name="stale name").exists()
    active = QboCustomer.objects.filter(company=personas.company, active=True).count()
    assert WebhookEvent.objects.filter(outcome="Customer cache refreshed.").count() == active
    assert WebhookEvent.objects.filter(outcome="Flagged 0 project(s).").count() == 5000 - active


def test_the_sweep_sends_a_run_only_for_realms_whose_events_wait_with_no_live_run(
    db: None, monkeypatch: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from integrations import tasks
    from integrations.models import WebhookEvent

    old = timezone.now() - timedelta(minutes=5)
    for key, realm, claimed_at in (
        ("lost", "111", None),  # never taken: its message was lost
        ("dead", "222", timezone.now() - timedelta(hours=1)),  # its run died long ago
        ("live", "333", timezone.now()),  # a run holds it now
    ):
        WebhookEvent.objects.create(
            dedupe_key=key,
            realm_id=realm,
            entity="Customer",
            entity_id="5",
            operation="Update",
            received_at=old,
            claim_id="c" if claimed_at else "",
            claimed_at=claimed_at,
        )
    WebhookEvent.objects.create(
        dedupe_key="new", realm_id="444", entity="Customer", entity_id="5", operation="Update"
    )  # just arrived: its own message is on the way
    sent: list[str] = []
    monkeypatch.setattr(
        tasks.process_qbo_webhooks, "delay", lambda *, realm_id: sent.append(realm_id)
    )
    assert tasks.sweep_qbo_webhooks() == 2
    assert sorted(sent) == ["111", "222"]
