"""A Redis restart does not take the workers down (issue #13, item 9).

First the cause, in this process and in about a second: Celery 5.7's consumer handling a
lost broker connection, against kombu's stock Redis transport (the worker's
"Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")")
and against the project's (staging/broker.py). Then the whole product: real workers
syncing two companies through a Redis restart, every row Synced exactly once.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from staging.broker import TRANSPORT
from staging.models import Run, RunState, StagedProject, SyncStatus
from staging.sync.queue import projects_enqueue_sync
from tests.fixtures.workers import ROOT, wait_for
from tests.reliability.harness import (
    REDIS_SERVER,
    WORKERS,
    Disruption,
    PrivateRedis,
    Stack,
    audit_projects,
    drive_until_settled,
    mapped_rows,
    second_company,
    write_report,
)

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server on PATH")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _consumer_mid_brpop_with_unacked(server: PrivateRedis, transport: str) -> Connection:
    """A consumer that holds two unacknowledged messages and waits on BRPOP for more: a
    worker with tasks in progress and a free pool process, the usual state of a busy one."""
    connection = Connection(server.url(0), transport=transport)
    queue = Queue("restart-test", Exchange("restart-test", type="direct"), "restart-test")
    producer = connection.Producer()
    for n in range(2):
        producer.publish(
            {"n": n}, exchange=queue.exchange, routing_key="restart-test", declare=[queue]
        )
    received: list[object] = []
    consumer = connection.Consumer(queue, callbacks=[lambda body, message: received.append(body)])
    consumer.consume()
    # Like the worker's remote control (celery.worker.pidbox), a second channel listening on
    # a fanout exchange with an auto-delete queue: closing it needs Redis, so with Redis gone
    # its close fails first and the connection's other channels are left for later.
    control = connection.channel()
    broadcast = Exchange("restart-test.control", type="fanout", auto_delete=True)
    connection.Consumer(
        Queue("restart-test.pidbox", broadcast, auto_delete=True), channel=control
    ).consume()
    while len(received) < 2:
        connection.drain_events(timeout=2)
    with pytest.raises(socket.timeout):  # the next BRPOP is sent and waits
        for _ in range(20):  # past events that carry no message (the SUBSCRIBE reply)
            connection.drain_events(timeout=0.2)
    assert connection.default_channel._in_poll
    assert len(connection.default_channel.qos._delivered) == 2
    return connection


def _celery_handles_connection_loss(connection: Connection) -> None:
    # What Celery 5.7's consumer does when the broker connection breaks
    # (celery/worker/consumer/consumer.py, on_connection_error_after_connected): collect the
    # connection, then close it; the close raising anything but a connection error is the
    # worker's "Unrecoverable error".
    with contextlib.suppress(Exception):  # as Celery does
        connection.collect(socket_timeout=5.0)
    connection.close()


@needs_redis
def test_redis_restart_with_unacked_messages_closes_cleanly_with_our_transport(
    private_redis: PrivateRedis,
) -> None:
    connection = _consumer_mid_brpop_with_unacked(private_redis, TRANSPORT)
    channel = connection.default_channel
    private_redis.stop()
    _celery_handles_connection_loss(connection)  # raises nothing
    assert channel.closed


@needs_redis
def test_stock_kombu_redis_transport_still_crashes_so_ours_is_still_needed(
    private_redis: PrivateRedis,
) -> None:
    """The failure staging/broker.py works around. When a kombu or Celery release fixes it,
    this test fails: then drop staging/broker.py and CELERY_BROKER_TRANSPORT."""
    connection = _consumer_mid_brpop_with_unacked(private_redis, "redis")
    channel = connection.default_channel
    private_redis.stop()
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'hostname'"):
        _celery_handles_connection_loss(connection)
    channel.qos.restore_at_shutdown = False  # nor again when the interpreter exits


# --- the whole product through a Redis restart -----------------------------------------

SECOND_REALM = "9341000000000913"
ROWS_PER_COMPANY = 150
REDIS_DOWN_SECONDS = 1.5
LATENCY_MS = 800  # every QBO answer: a chunk takes ~2 s, the whole sync ~10 s


def _workers_use_our_transport(stack: Stack) -> bool:
    """Whether the workers' settings select staging/broker.py (CELERY_BROKER_TRANSPORT)."""
    answer = subprocess.run(
        [sys.executable, "-c", "from staging.celery import app; print(app.conf.broker_transport)"],
        env=stack.worker_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return answer.stdout.strip().splitlines()[-1] == TRANSPORT


@pytest.mark.worker
def test_two_companies_sync_exactly_once_through_a_redis_restart_without_losing_a_worker(
    reliability_stack: Stack,
) -> None:
    stack = reliability_stack
    other, other_admin = second_company(stack, SECOND_REALM)
    wait_for(
        lambda: not Run.objects.exclude(state__in=(RunState.DONE, RunState.FAILED)).exists(),
        timeout=30,
        pool=stack.pool,
    )
    ours = mapped_rows(stack.company, ROWS_PER_COMPANY, "Restart")
    theirs = mapped_rows(other, ROWS_PER_COMPANY, "Restart")
    stack.control("POST", "counters/reset")
    # Slow answers keep chunks in the workers' hands (unacknowledged: acks are late) while
    # Redis goes away, which is when a worker used to exit.
    stack.control("POST", "latency", json={"ms": LATENCY_MS})
    for company, actor, ids in ((stack.company, stack.actor, ours), (other, other_admin, theirs)):
        summary = projects_enqueue_sync(
            company=company, projects=StagedProject.objects.filter(pk__in=ids), actor=actor
        )
        assert summary.queued == len(ids), summary.describe()

    down: dict[str, float] = {}

    def stop_redis() -> bool:
        claimed = StagedProject.objects.filter(
            pk__in=ours + theirs, status=SyncStatus.QUEUED, lease_id__isnull=False
        )
        if not claimed.exists():
            return False  # not yet: the restart must find chunks in the workers' hands
        stack.redis.stop()
        down["at"] = time.monotonic()
        return True

    def start_redis() -> bool:
        stack.redis.start()
        stack.redis.restarts += 1
        return True

    drive = drive_until_settled(
        stack,
        ours + theirs,
        timeout=120,
        disruptions=[
            Disruption("stop redis", lambda progress, seconds: progress >= 0.1, stop_redis),
            Disruption(
                "start redis",
                lambda progress, seconds: (
                    "at" in down and time.monotonic() >= down["at"] + REDIS_DOWN_SECONDS
                ),
                start_redis,
            ),
        ],
    )
    audits = {
        "first": audit_projects(stack, ours),
        "second": audit_projects(stack, theirs, realm_id=SECOND_REALM),
    }
    crashed = [
        path.name
        for path in stack.pool.log_paths
        if "Unrecoverable error" in path.read_text(errors="replace")
    ]
    write_report(
        "redis-restart",
        {
            "drive": drive.__dict__,
            "workers_exited_and_restarted": len(stack.revived),
            "unrecoverable_errors": crashed,
            "audits": {name: audit.__dict__ for name, audit in audits.items()},
            "counters": stack.counters(),
        },
    )

    for audit, ids in zip(audits.values(), (ours, theirs), strict=True):
        assert audit.problems == []
        assert audit.statuses == {SyncStatus.SYNCED: len(ids)}
        assert audit.jobs_in_qbo == len(ids)  # each project exactly once in its realm
    assert stack.redis.restarts == 1
    # Every worker that exited was started again (the supervisor's job: docker-compose's
    # restart policy, `make run`'s devstack, here the harness), and all are running.
    assert len(stack.live_workers()) == WORKERS, stack.pool.logs()
    if _workers_use_our_transport(stack):
        assert stack.revived == [] and crashed == [], stack.pool.logs()
