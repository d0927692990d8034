from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from staging.models import WorkerHeartbeat

WORKER_STALE_AFTER = timedelta(minutes=2)


def worker_heartbeat_record(*, hostname: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now()}
    )


def workers_online() -> bool:
    cutoff = timezone.now() - WORKER_STALE_AFTER
    return WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).exists()
