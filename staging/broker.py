"""kombu's Redis transport with one fix, so a Redis restart does not take the workers down.

What goes wrong with kombu 5.7.0 and Celery 5.7.0 (the newest releases) when the broker
goes away while a worker holds unacknowledged messages (acks are late here, so any task in
progress):

1. The worker's channel is nearly always waiting on a BRPOP. Closing it first reads that
   BRPOP's reply, so a message Redis already popped is not lost
   (https://github.com/celery/kombu/pull/1733). With Redis gone the read raises a
   connection error, and the channel is left open.
2. Celery's consumer collects the broken connection (``Connection.collect``): it tries
   that close, then closes the connection's other channels, where the remote-control
   channel fails the same way before the consumer's channel gets a second try, swallows
   the errors, and forgets the transport's connection parameters
   (``transport.client = None``).
3. Celery 5.7 then closes the connection once more. This time the channel gets past the
   read and restores its unacknowledged messages ("Restoring N unacknowledged
   message(s)") through a new connection pool, built from the parameters forgotten in 2:
   ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which Celery
   reports as "Unrecoverable error" and the worker exits (compare
   https://github.com/celery/kombu/issues/582, the same error reached another way).

Celery 5.6 did not close the connection again after collecting it; kombu has no release
with a fix yet. The channel below treats a failed read as done (with the connection gone,
so is the reply) and carries on closing, so the close in step 2 succeeds and step 3 has
nothing left to do. Settings select it for Redis brokers (``CELERY_BROKER_TRANSPORT``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = "staging.broker:Transport"  # the value of CELERY_BROKER_TRANSPORT


class Channel(kombu_redis.Channel):
    # kombu's own, missing from its type stubs
    _in_poll: Any
    connection_errors: tuple[type[BaseException], ...]
    _brpop_read: Callable[..., bool]

    def close(self) -> None:
        if self._in_poll:
            # Delivers a message the BRPOP already popped, as kombu does; a connection
            # error means there is no reply to read. _brpop_read clears _in_poll either way.
            with contextlib.suppress(Empty, *self.connection_errors):
                self._brpop_read()
        super().close()


class Transport(kombu_redis.Transport):
    Channel = Channel
