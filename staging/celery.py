from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import after_setup_logger, after_setup_task_logger, worker_ready

from staging.log_filters import CorrelationId
from staging.worker_checks import connect as connect_worker_checks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "staging.settings")

app = Celery("staging")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Worker lines carry the correlation id of the request (or beat entry) that sent the task
# (django-guid's Celery integration, settings.DJANGO_GUID), like the web's lines do.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-log-format
app.conf.worker_log_format = (
    "[%(asctime)s: %(levelname)s/%(processName)s] [%(correlation_id)s] %(name)s: %(message)s"
)
app.conf.worker_task_log_format = (
    "[%(asctime)s: %(levelname)s/%(processName)s] [%(correlation_id)s] "
    "%(task_name)s[%(task_id)s]: %(message)s"
)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _correlation_ids_in_worker_logs(logger: logging.Logger, *args: Any, **kwargs: Any) -> None:
    for handler in logger.handlers:
        handler.addFilter(CorrelationId())


app.autodiscover_tasks()
connect_worker_checks()  # warn when a worker's processes would not share a QBO budget

# Work of different kinds waits in different queues, so none waits behind another's backlog:
# a worker consumes all of them (staging.worker_process.worker_queues), and kombu takes from
# its queues in turn (https://docs.celeryq.dev/en/stable/userguide/routing.html). Names hang
# off the default queue, so tests and benchmarks that run on a queue of their own keep all
# four apart from everyone else's.
SYNC, MAINTENANCE, WEBHOOKS = "sync", "maintenance", "webhooks"
_LANE_OF_TASK = {
    "staging.sync_lane": SYNC,
    "staging.sync_projects": SYNC,
    "staging.dispatch_sync_run": SYNC,
    "staging.heartbeat": MAINTENANCE,
    "staging.requeue_stale_projects": MAINTENANCE,
    "staging.expire_lost_imports": MAINTENANCE,
    "staging.scheduled_pull": MAINTENANCE,
    "integrations.process_qbo_webhook": WEBHOOKS,
    "integrations.process_qbo_webhooks": WEBHOOKS,
    "integrations.sweep_qbo_webhooks": MAINTENANCE,
    "integrations.keep_qbo_tokens_fresh": MAINTENANCE,
    "staging.send_daily_digests": MAINTENANCE,
}


def queue_name(lane: str | None, base: str | None = None) -> str:
    """The broker queue of a lane (None: the default queue, for imports and the rest)."""
    base = base or str(app.conf.task_default_queue)
    return f"{base}.{lane}" if lane else base


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
) -> dict[str, str]:
    return {"queue": queue_name(_LANE_OF_TASK.get(name))}


app.conf.task_routes = (route_task,)

# The fixed beat schedule, in one place. Per-company Linarc pulls are not here: they are
# django-celery-beat PeriodicTasks kept in step with each company's SyncRules.
app.conf.beat_schedule = {
    # Tell the UI that workers are alive ("Workers online" in the Projects toolbar).
    "worker-heartbeat": {"task": "staging.heartbeat", "schedule": 30.0},
    # Put rows back to work whose worker died mid-sync (lease expired) or whose message was
    # lost; they keep their attempt id, so QBO replays instead of duplicating.
    "requeue-stale-projects": {"task": "staging.requeue_stale_projects", "schedule": 60.0},
    # Fail import runs whose worker died, so their progress bar stops and says so (a new
    # import would do it too, but nobody may start one).
    "expire-lost-imports": {"task": "staging.expire_lost_imports", "schedule": 300.0},
    # Process webhook events that wait with no run (a lost message, a run that failed).
    "sweep-qbo-webhooks": {"task": "integrations.sweep_qbo_webhooks", "schedule": 120.0},
    # Refresh QuickBooks connections well before their refresh token could lapse.
    "keep-qbo-tokens-fresh": {"task": "integrations.keep_qbo_tokens_fresh", "schedule": 6 * 3600.0},
    # The admins' daily digest of failures; once per company and day however often it runs.
    "send-daily-digests": {
        "task": "staging.send_daily_digests",
        "schedule": crontab(minute=0, hour=7),
    },
}


@worker_ready.connect
def _announce_worker(sender: Any = None, **kwargs: Any) -> None:
    """Say "Workers online" as soon as a worker starts, not at its first beat heartbeat."""
    from staging.services.workers import worker_heartbeat_record

    worker_heartbeat_record(hostname=str(getattr(sender, "hostname", "worker")))
