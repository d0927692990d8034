"""The integration health page: is the company's integration working, and what needs a
person. Every read is bounded (an index or a small table), so the page stays cheap at
100,000 staged rows and can poll.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Max, Min
from django.utils import timezone
from redis import RedisError

from integrations.models import (
    Company,
    LinarcConnection,
    QboConnection,
    QboConnectionStatus,
)
from integrations.services.qbo import EXPIRY_WARNING, rate_limiter
from integrations.services.qbo_traffic import traffic_store
from qbo_client.errors import TransientError
from staging.imports.runs import IMPORT_KINDS
from staging.models import Run, StagedProject, SyncStatus
from staging.selectors.filters import ProjectFilters
from staging.services.workers import workers_online

RECENT_RUNS = 8
PULL_OVERDUE_AFTER = timedelta(minutes=5)
# (status, failure code) groups given an example reason, biggest first: one row each, read
# by id. A company has a handful; past this many the rest are still counted and classified
# by their code alone.
MAX_SAMPLED_GROUPS = 50


@dataclass(frozen=True)
class FailureClass:
    """Rows that failed, or need a person, for one kind of reason."""

    name: str
    status: str  # SyncStatus.FAILED or NEEDS_ACTION
    count: int
    sample: str  # one row's reason, as the row shows it
    codes: tuple[str, ...]  # the QBO fault codes of its rows ("" for none)
    advice: str

    @property
    def retryable(self) -> bool:
        return self.status == SyncStatus.FAILED

    @property
    def filters(self) -> ProjectFilters:
        """Its rows, as the Projects tab filters them (the status chip and these codes)."""
        return ProjectFilters(status=self.status, codes=self.codes)

    @property
    def projects_query(self) -> str:
        """The Projects tab's query string that lists its rows: status=failed&code=6000."""
        return urlencode(self.filters.as_params())


@dataclass(frozen=True)
class QboBudget:
    """The realm's QuickBooks budget as every worker spends it (qbo_traffic.py)."""

    kept: bool  # False where no shared Redis keeps the figures (the embedded default)
    unreadable: bool = False  # kept, but Redis did not answer this time
    requests_last_minute: int = 0
    per_minute: int = 0
    throttled_last_hour: int = 0
    paused_seconds: int = 0  # QuickBooks said 429: nothing is sent for this long

    @property
    def percent(self) -> int:
        return round(100 * self.requests_last_minute / self.per_minute) if self.per_minute else 0


@dataclass(frozen=True)
class PullSchedule:
    """The company's scheduled Linarc pull (Sync rules: Auto-Create / Auto-Update)."""

    every_minutes: int
    next_at: datetime | None  # None: not run yet, due at the scheduler's next tick

    @property
    def overdue(self) -> bool:
        """Well past its time: the scheduler (celery beat) is likely not running."""
        return self.next_at is not None and timezone.now() - self.next_at > PULL_OVERDUE_AFTER


@dataclass(frozen=True)
class IntegrationHealth:
    qbo: QboConnection | None
    qbo_state: str  # connected, needs_reconnect or disconnected
    refresh_days_left: int | None  # before the connection lapses (QboConnection.ends_at)
    ends_at_hard_limit: bool  # ... and only a reconnect moves that end (the 5-year cap)
    linarc: LinarcConnection | None
    pull: PullSchedule | None  # None: no scheduled pull
    last_import: Run | None
    queued: int
    oldest_queued_at: datetime | None
    workers_online: bool
    budget: QboBudget | None = None  # None until a realm is connected
    runs: list[Run] = field(default_factory=list)
    failures: list[FailureClass] = field(default_factory=list)

    @property
    def queued_within_a_minute(self) -> bool:
        """Every queued project was queued less than a minute ago ("0 minutes" otherwise)."""
        return self.oldest_queued_at is not None and (
            timezone.now() - self.oldest_queued_at < timedelta(minutes=1)
        )

    @property
    def refresh_expiring(self) -> bool:
        return self.refresh_days_left is not None and self.refresh_days_left <= (
            EXPIRY_WARNING.days
        )

    @property
    def healthy(self) -> bool:
        return (
            self.qbo_state == QboConnectionStatus.CONNECTED
            and not self.refresh_expiring
            and self.workers_online
            and not self.failures
            and not (self.last_import and self.last_import.state == "failed")
            and not (self.pull and self.pull.overdue)
        )


def integration_health(*, company: Company) -> IntegrationHealth:
    qbo = QboConnection.objects.filter(company=company).first()
    ends_at = qbo.ends_at if qbo is not None else None
    days_left = max(0, (ends_at - timezone.now()).days) if ends_at is not None else None
    hard_end = qbo.refresh_hard_expires_at if qbo is not None else None
    queue = StagedProject.objects.filter(company=company, status=SyncStatus.QUEUED).aggregate(
        count=Count("pk"), oldest=Min("queued_at")
    )
    # Both reads walk the (company, -created_at, -id) index newest first (run_company_newest)
    # and stop: the last import is nearly always among the recent runs (a scheduled pull
    # every 15 minutes), and read on its own only when it is not.
    runs = list(Run.objects.filter(company=company).order_by("-created_at", "-id")[:RECENT_RUNS])
    last_import = next((run for run in runs if run.kind in IMPORT_KINDS), None)
    if last_import is None and len(runs) == RECENT_RUNS:
        last_import = (
            Run.objects.filter(company=company, kind__in=IMPORT_KINDS)
            .order_by("-created_at", "-id")
            .first()
        )
    linarc, pull = _linarc_and_schedule(company)
    return IntegrationHealth(
        qbo=qbo,
        qbo_state=qbo.status if qbo is not None else QboConnectionStatus.DISCONNECTED,
        refresh_days_left=days_left,
        ends_at_hard_limit=hard_end is not None and hard_end == ends_at,
        linarc=linarc,
        pull=pull,
        last_import=last_import,
        queued=queue["count"],
        oldest_queued_at=queue["oldest"],
        workers_online=workers_online(),
        budget=qbo_budget(realm_id=qbo.realm_id) if qbo is not None and qbo.realm_id else None,
        runs=runs,
        failures=failure_classes(company=company),
    )


def _linarc_and_schedule(company: Company) -> tuple[LinarcConnection | None, PullSchedule | None]:
    """The Linarc connection and its pull schedule, in one read (no connection, no pull)."""
    linarc = (
        LinarcConnection.objects.filter(company=company)
        .select_related("company__sync_rules__periodic_task")
        .first()
    )
    if linarc is None:
        return None, None
    try:
        rules = linarc.company.sync_rules
    except ObjectDoesNotExist:
        return linarc, None
    task = rules.periodic_task
    if not (rules.auto_create or rules.auto_update) or task is None or not task.enabled:
        return linarc, None
    every = timedelta(minutes=rules.pull_every_minutes)
    return linarc, PullSchedule(
        every_minutes=rules.pull_every_minutes,
        next_at=task.last_run_at + every if task.last_run_at else None,
    )


def qbo_budget(*, realm_id: str) -> QboBudget:
    store = traffic_store()
    if store is None:
        return QboBudget(kept=False)
    limiter = rate_limiter()
    try:
        recent = store.recent(realm_id)
        paused = limiter.pause_remaining(realm_id)
    except (RedisError, TransientError):
        return QboBudget(kept=False, unreadable=True)
    limits = limiter.limits
    return QboBudget(
        kept=True,
        requests_last_minute=recent.requests_last_minute,
        per_minute=round(limits.requests_per_window * 60 / limits.window_seconds),
        throttled_last_hour=recent.throttled_last_hour,
        paused_seconds=math.ceil(paused),
    )


def failure_classes(*, company: Company) -> list[FailureClass]:
    """Failed and Needs Action rows by kind of reason, most rows first. Two reads whatever
    the row count: the rows counted per (status, failure code), then one example reason per
    group (its newest row, read by id); classified here.

    The count reads no text: COUNT(*) and MAX(id) of the rows the (company, status) index
    finds. (With an index on (company, status, failure_code, id) it would be an index-only
    scan; docs/benchmarks.md §7.)
    """
    failing = StagedProject.objects.filter(
        company=company, status__in=(SyncStatus.FAILED, SyncStatus.NEEDS_ACTION)
    )
    groups = sorted(
        failing.values_list("status", "failure_code")
        .annotate(count=Count("*"), newest=Max("id"))
        .order_by(),
        key=lambda group: -group[2],
    )
    samples = _sample_reasons(company=company, groups=groups[:MAX_SAMPLED_GROUPS])
    merged: dict[tuple[str, str, str], list[tuple[str, int, str]]] = {}
    for status, code, count, newest in groups:
        sample = samples.get((newest, status, code), "")
        name, advice = _classify(status, code or "", sample)
        merged.setdefault((status, name, advice), []).append((code or "", count, sample))
    classes = []
    for (status, name, advice), rows in merged.items():
        biggest = max(rows, key=lambda row: row[1])
        classes.append(
            FailureClass(
                name=name,
                status=status,
                count=sum(row[1] for row in rows),
                sample=biggest[2],
                codes=tuple(sorted({row[0] for row in rows})),
                advice=advice,
            )
        )
    return sorted(classes, key=lambda c: (-c.count, c.name))


def _sample_reasons(
    *, company: Company, groups: list[tuple[str, str, int, int]]
) -> dict[tuple[int, str, str], str]:
    """(row id, status, code) → the reason of each group's newest row, in one read by
    primary key. A row that left its group since it was counted (retried a moment ago) is
    no example of it and is left out."""
    if not groups:
        return {}
    rows = (
        StagedProject.objects.filter(
            company=company, pk__in=[newest for _s, _c, _n, newest in groups]
        )
        .order_by()
        .values_list("pk", "status", "failure_code", "status_reason")
    )
    return {(pk, status, code): reason or "" for pk, status, code, reason in rows}


# QBO fault codes: https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
_AUTH_CODES = {"3200", "3201", "3202", "401", "403"}
_THROTTLE_CODES = {"3001", "429"}
_DUPLICATE_CODES = {"6240"}


def _classify(status: str, code: str, reason: str) -> tuple[str, str]:
    """(the class's name, what to do about it)."""
    text = reason.casefold()
    if code in _DUPLICATE_CODES or "already used in quickbooks" in text:
        return (
            "Duplicate name in QuickBooks",
            "Link the existing record with Manual Mapping, or change the naming rule.",
        )
    if status == SyncStatus.NEEDS_ACTION:
        if "customer" in text and ("choose" in text or "no qbo customer" in text):
            return "No customer chosen", "Map them: Map selected… on the Needs Action chip."
        return "Needs a fix", "Open a row's reason; fix the data in Linarc or the mapping."
    if code in _AUTH_CODES or "reconnect" in text:
        return "QuickBooks authorisation", "Reconnect QuickBooks, then retry."
    if code in _THROTTLE_CODES or "throttl" in text:
        return "Throttled by QuickBooks", "Retry later; the sync paces itself."
    if "did not answer" in text:
        return "QuickBooks unavailable", "Retry when QuickBooks answers again."
    if not code:
        return "Failed without a QuickBooks code", "Open a row's reason; retry once it is fixed."
    return "Refused by QuickBooks", "Open a row's reason; retry once the cause is fixed."
