"""How a Celery worker process of this project is started: one command line shared by
`make run` (staging.devstack), the integration tests' worker fixture and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker_queues(base: str | None = None) -> list[str]:
    """Every queue a worker of this project consumes: the default one and one per lane
    (staging.celery). ``base`` None is the configured default queue."""
    from staging.celery import MAINTENANCE, SYNC, WEBHOOKS, queue_name

    if base is None:
        from django.conf import settings

        base = settings.CELERY_TASK_DEFAULT_QUEUE
    return [queue_name(lane, base) for lane in (None, SYNC, MAINTENANCE, WEBHOOKS)]


def celery_worker_command(
    *,
    concurrency: int,
    queue: str | None = None,
    name: str | None = None,
    app: str = "staging",
    heartbeat: bool = True,
) -> list[str]:
    """``celery worker`` with the prefork pool. Gossip and mingle are off: workers never
    need each other's state here, and both slow start-up down. ``queue`` is the base of the
    queues consumed (:func:`worker_queues`), None the configured default;
    ``heartbeat=False`` for short-lived workers of tests and benchmarks."""
    command = [sys.executable, "-m", "celery", "-A", app, "worker", "-l", "info"]
    command += ["--pool", "prefork", "--concurrency", str(concurrency)]
    command += ["--without-gossip", "--without-mingle"]
    if not heartbeat:
        command.append("--without-heartbeat")
    command += ["-Q", ",".join(worker_queues(queue))]
    if name:
        command += ["-n", name]
    return command


def spawn_logged(
    command: list[str], *, log_path: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``command`` in the project root with its output written to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
