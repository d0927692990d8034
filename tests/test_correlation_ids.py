"""Correlation ids (issue #16, item 4): one id follows a click from the web request into the
Celery task it sends and down to the QuickBooks exchange with its intuit_tid, in a real
worker process's log."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.urls import reverse

from devtools.workers import WorkerPool
from qbo_client.emulator import QboEmulator
from staging.celery import app
from tests.conftest import Personas
from tests.fixtures.qbo import connect_company, qbo_env
from tests.fixtures.workers import wait_for, worker_env


@pytest.fixture
def qbo_worker(transactional_db: None, qbo_emulator: QboEmulator) -> Iterator[WorkerPool]:
    """A real worker process that reaches the test's QBO emulator."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    pool = WorkerPool(queue=queue, log_prefix="test-correlation")
    pool.start_one({**worker_env(queue), **qbo_env(qbo_emulator)}, concurrency=1)
    try:
        pool.wait_ready()
        yield pool
    finally:
        pool.stop(delete_logs=True)
        app.conf.task_default_queue = previous


def test_a_click_is_followed_into_the_worker_and_to_quickbooks(
    personas: Personas, qbo_worker: WorkerPool
) -> None:
    connect_company(personas.company)
    request_id = uuid.uuid4().hex

    answer = personas.client_for(personas.admin).post(
        reverse("portfolio:qbo_refresh_customers"), HTTP_X_REQUEST_ID=request_id
    )

    assert answer["X-Request-ID"] == request_id
    exchange = re.compile(
        rf"\[{request_id}\] integrations\.services\.qbo_traffic: QBO POST \S+/query -> 200 "
        r"in \d+ ms \(realm \d+, intuit_tid (1-[0-9a-f-]+)\)"
    )
    found = wait_for(lambda: exchange.search(qbo_worker.logs(chars=200_000)), pool=qbo_worker)
    assert found.group(1)  # the id Intuit support asks for, on the same line as the click's
    # The task's own lines carry it too: Celery's "succeeded" line for the refresh.
    assert re.search(
        rf"\[{request_id}\] celery\.app\.trace: Task \S+refresh\S*\[[0-9a-f-]+\] succeeded",
        wait_for(
            lambda: (
                "succeeded" in qbo_worker.logs(chars=200_000) and qbo_worker.logs(chars=200_000)
            ),
            pool=qbo_worker,
        ),
    )


def test_an_id_that_is_not_a_uuid_is_replaced_not_logged(personas: Personas) -> None:
    answer = personas.client_for(personas.admin).get(
        reverse("portfolio:projects"), HTTP_X_REQUEST_ID="forged\nINFO all is well"
    )

    assert answer.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", answer["X-Request-ID"])
