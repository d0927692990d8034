"""Checks a Celery worker of this project makes as it starts.

One budget per QBO realm: QBO counts every request of a realm + app against the same
limits (https://developer.intuit.com/app/developer/qbo/docs/learn/rest-api-features#limits-and-throttles),
so every worker process must draw from one shared budget. That budget lives in Redis
(``RATE_LIMIT_REDIS_URL``, or the broker's Redis). Without Redis it lives in process memory
(qbo_client/ratelimit.py): each pool process then spends the realm's whole budget on its
own, and N processes can send QBO up to N times its limits and collect 429s. `make run`
without Redis therefore starts one pool process (staging/devstack.py); a worker started
any other way says so in its log.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def rate_limit_budget_is_shared(url: str | None) -> bool:
    """Whether worker processes share the realm budget: as RealmRateLimiter.from_url reads
    ``url``, None and ``memory://`` keep it in each process."""
    return bool(url) and not str(url).startswith("memory://")


def limiter_processes(controller: Any) -> int:
    """How many processes of this worker may call QBO at once, each with its own memory:
    the prefork pool's size (its autoscale maximum); 1 for pools of threads or greenlets,
    which share one process and so one in-memory limiter."""
    from celery.concurrency.prefork import TaskPool as PreforkPool

    pool_cls = getattr(controller, "pool_cls", None)
    if not (isinstance(pool_cls, type) and issubclass(pool_cls, PreforkPool)):
        return 1
    return int(getattr(controller, "max_concurrency", None) or controller.concurrency or 1)


def warn_if_rate_limit_budget_is_split(sender: Any = None, **kwargs: Any) -> None:
    """``worker_ready`` handler (its sender is the worker's consumer)."""
    from django.conf import settings

    controller = getattr(sender, "controller", None)
    if controller is None or rate_limit_budget_is_shared(settings.RATE_LIMIT_REDIS_URL):
        return
    processes = limiter_processes(controller)
    if processes > 1:
        log.warning(
            "QBO rate limits: this worker has %d pool processes and no Redis for the rate "
            "limiter (RATE_LIMIT_REDIS_URL is not set), so each process spends every "
            "realm's whole QBO budget on its own: together they can exceed QBO's limits "
            "and get 429s. Set RATE_LIMIT_REDIS_URL (or a Redis CELERY_BROKER_URL), or "
            "start the worker with --concurrency 1.",
            processes,
        )


def connect() -> None:
    """Connect the checks to Celery's worker signals (staging/celery.py calls this)."""
    from celery.signals import worker_ready

    worker_ready.connect(
        warn_if_rate_limit_budget_is_split, dispatch_uid="staging.worker_checks.rate_limits"
    )
