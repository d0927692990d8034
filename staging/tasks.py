"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

import socket

from celery import shared_task

import staging.imports.tasks
import staging.qbo_tasks  # (registers the customer refresh with Celery)
import staging.sync.tasks  # noqa: F401  (registers the sync tasks with Celery)
from staging.imports.runs import import_runs_expire_lost
from staging.services.digest import digests_send
from staging.services.workers import worker_heartbeat_record


@shared_task(name="staging.heartbeat")
def heartbeat() -> None:
    worker_heartbeat_record(hostname=socket.gethostname())


@shared_task(name="staging.expire_lost_imports")
def expire_lost_imports() -> int:
    return import_runs_expire_lost()


@shared_task(name="staging.send_daily_digests")
def send_daily_digests() -> int:
    """Maintenance: each company's daily digest, at most once a day (re-delivery is safe)."""
    return digests_send()
