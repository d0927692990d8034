"""Fixtures of the reliability suite.

The processes are started once for the package (booting three Celery workers costs ~10-30 s
on a small machine): a private Redis, the QBO emulator and the workers. Each test then gets a
fresh database (transactional_db), a reset emulator, an empty limiter and a company connected
through the real OAuth flow; its own process talks to the same broker and limiter as the
workers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kombu import pools

from integrations.services import qbo as qbo_services
from qbo_client import oauth
from qbo_client.emulator import QboEmulator
from staging.celery import app
from staging.models import Run, RunKind, RunState
from tests.conftest import Personas
from tests.fixtures.qbo import CLIENT_ID, CLIENT_SECRET, connect_company, qbo_env, refresh_customers
from tests.fixtures.workers import WorkerPool, wait_for, worker_env
from tests.reliability.harness import (
    LEASE_SECONDS,
    RATE_WINDOW_SECONDS,
    REDIS_SERVER,
    WORKERS,
    PrivateRedis,
    Stack,
)


@dataclass
class Processes:
    redis: PrivateRedis
    emulator: QboEmulator
    pool: WorkerPool
    worker_env: dict[str, str]


def _point_celery_at(broker_url: str | None, queue: str, options: dict[str, Any]) -> None:
    """Send this process's tasks (enqueue, reaper) to ``broker_url``: drop pooled
    connections to the previous broker so the next publish opens one to the new one.
    (Celery prefers the CELERY_BROKER_URL environment variable to its config: the caller
    sets that too.)"""
    pools.reset()  # closes and forgets kombu's pooled connections and producers
    app._pool = None  # Celery has no public way to swap brokers at run time
    app.amqp._producer_pool = None
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = options
    app.conf.task_default_queue = queue


@pytest.fixture(scope="package")
def reliability_processes(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Iterator[Processes]:
    if REDIS_SERVER is None:
        pytest.skip("the reliability suite starts its own broker: redis-server must be on PATH")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    emulator = QboEmulator(port=0, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, seed="demo")
    emulator.start()
    queue = f"reliability-{uuid.uuid4().hex[:8]}"
    env = {
        **worker_env(queue),  # DATABASE_URL of the test database pytest-django created
        **qbo_env(emulator),
        "CELERY_BROKER_URL": server.url(0),
        "RATE_LIMIT_REDIS_URL": server.url(1),
        "SYNC_LEASE_SECONDS": str(LEASE_SECONDS),
        "QBO_RATE_WINDOW_SECONDS": str(RATE_WINDOW_SECONDS),
    }
    processes = Processes(server, emulator, WorkerPool(queue, [], []), env)
    try:
        yield processes
    finally:
        processes.pool.stop()
        emulator.stop()
        server.stop()


def _wait_ready(pool: WorkerPool, timeout: float = 120.0) -> None:
    """Block until every live worker has logged "ready" (it consumes from then on)."""
    deadline = time.monotonic() + timeout
    for process, log_path in zip(pool.processes, pool.log_paths, strict=True):
        while process.poll() is None:
            if log_path.exists() and " ready." in log_path.read_text(errors="replace"):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {log_path.name} not ready\n{pool.logs()}")
            time.sleep(0.2)


@pytest.fixture
def reliability_stack(
    reliability_processes: Processes,
    personas: Personas,
    transactional_db: None,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """A connected company with its customers cached, three ready workers, and this process
    pointed at the same emulator, broker, limiter, lease and compressed rate window."""
    processes = reliability_processes
    emulator, server = processes.emulator, processes.redis
    if not server.running:
        server.start()  # a test that failed with the broker down
    server.restarts = 0  # the broker is shared by the package's tests; each counts its own
    emulator.reset(seed="demo")
    emulator.core.throttle.configure(window_seconds=RATE_WINDOW_SECONDS)
    # Slots a killed worker held and pauses a 429 set belong to the previous test.
    redis.Redis.from_url(server.url(1)).flushdb()

    # Read before the settings change below: Celery's config reads Django's settings live,
    # so read after, "saved" would be the private broker and the teardown would leave every
    # later test publishing to it (on the embedded default, where no environment variable
    # names the broker).
    saved = (app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options)
    settings.QBO_ENVIRONMENT = emulator.discovery_url
    settings.QBO_API_BASE_URL = emulator.api_base_url
    settings.QBO_CLIENT_ID = CLIENT_ID
    settings.QBO_CLIENT_SECRET = CLIENT_SECRET
    settings.QBO_REDIRECT_URI = "http://127.0.0.1:9/callback"
    settings.CELERY_BROKER_URL = server.url(0)
    settings.RATE_LIMIT_REDIS_URL = server.url(1)
    settings.SYNC_LEASE_SECONDS = LEASE_SECONDS
    settings.QBO_RATE_WINDOW_SECONDS = RATE_WINDOW_SECONDS
    oauth.clear_discovery_cache()
    qbo_services._limiter.cache_clear()
    monkeypatch.setenv("CELERY_BROKER_URL", server.url(0))
    for variable in ("CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL"):
        monkeypatch.delenv(variable, raising=False)
    _point_celery_at(server.url(0), processes.pool.queue, {"visibility_timeout": 3600})
    # Never publish this suite's tasks to a shared broker (CI's Redis on 6379).
    with app.connection_for_write() as broker:
        assert f":{server.port}/" in broker.as_uri(), broker.as_uri()

    stack = Stack(
        emulator=emulator,
        redis=server,
        pool=processes.pool,
        company=personas.company,
        actor=personas.operator,
        worker_env=processes.worker_env,
    )
    try:
        while len(stack.live_workers()) < WORKERS:
            stack.start_worker()
        _wait_ready(processes.pool)
        connect_company(personas.company, personas.admin)
        # The refresh is also enqueued: a ready worker may take the run before this process.
        refresh_customers(personas.company)
        wait_for(
            lambda: (
                not Run.objects.filter(kind=RunKind.REFRESH_CUSTOMERS)
                .exclude(state__in=(RunState.DONE, RunState.FAILED))
                .exists()
            ),
            timeout=30,
            pool=processes.pool,
        )
        yield stack
    finally:
        monkeypatch.undo()  # the broker variable first, so Celery sees the old broker again
        _point_celery_at(*saved)
        oauth.clear_discovery_cache()
        qbo_services._limiter.cache_clear()
