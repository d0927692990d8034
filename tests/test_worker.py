from __future__ import annotations

import socket

import pytest

from staging.models import WorkerHeartbeat
from staging.services.workers import workers_online
from staging.tasks import heartbeat
from tests.fixtures.workers import WorkerPool, wait_for

pytestmark = pytest.mark.worker


def test_task_runs_in_a_real_worker_process(celery_workers: WorkerPool) -> None:
    # The worker announces itself when it is ready (its node name, not the bare host name).
    wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname__contains="@").exists(), pool=celery_workers
    )
    assert workers_online()
    assert not WorkerHeartbeat.objects.filter(hostname=socket.gethostname()).exists()
    heartbeat.delay()
    # Eager mode is off: only the worker process, through the broker, can write this row.
    wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname=socket.gethostname()).exists(),
        pool=celery_workers,
    )
    assert all(p.poll() is None for p in celery_workers.processes)
