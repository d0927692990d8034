"""Scenario 4: several companies syncing at once (issue #13): fairness, scale-out, many.

    .venv/bin/python -m bench.multi_company [--parts fairness,scale,many] [--quick] [--big]

Every company has its own QBO realm in ONE QBO emulator process (the emulator keeps several
companies and throttles each realm on its own: ``POST /__emulator__/companies`` and the
``realm_id`` authorize extension). Real Celery workers on Redis sync through the public
services only (``projects_enqueue_sync``, ``project_retry``), and the results are read from
the database (``StagedProject.status`` / ``last_synced_at``, ``ChangeEvent``) and the
emulator's counters, so the benchmark measures whichever sync engine is in place.

1. **fairness**: company A queues N_A rows; 1 s later company B queues 30 rows and company C
   retries its one Failed row; B2 and C2 do the same 2 windows after A (A's backlog is then
   surely in the broker). Their waits in windows, A's rows per window against A alone
   (measured first, same run), 429s, duplicates, and what the reaper did during the
   backlog (history rows "requeued", messages it sent). The lease is short (12 s) so that
   the backlog outlives it.
2. **scale**: R = 1 and 3 realms syncing at once, 2x3 and 2x1 worker processes, with a
   window long enough (30 s) that the machine's CPU is not the bound: aggregate rows per
   window against R times one realm's.
3. **many**: 100 companies of 30 rows queued at the same moment: all Synced within how many
   windows.

The reaper (``staging.requeue_stale_projects``, every 60 s under beat in production) runs in
this process every window (60 s compressed like the window), so what it sends is counted
exactly. Results go to ``docs/benchmarks-multi-company.md`` (blocks named by ``--label``),
raw numbers to ``var/bench-multi_company-<label>.json``. bench/README.md, section 5.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import common
from bench.sync_throughput import Throughput, projects_create_mapped, throughput

RESULTS = common.ROOT / "docs" / "benchmarks-multi-company.md"
REAPER_TASK = "staging.requeue_stale_projects"
# Files whose content identifies the sync engine measured (their hash goes in the report).
ENGINE_FILES = (
    "staging/services/sync.py",
    "staging/services/qbo_push.py",
    "staging/sync_tasks.py",
    "staging/celery.py",
    "qbo_client/ratelimit.py",
)
ENGINE_DIRS = ("staging/sync",)

_realm_ids = itertools.count(1)


def realm_id_new() -> str:
    return f"46208163{next(_realm_ids):08d}"


def latency_for(window: float) -> float:
    """QBO's ~150 ms per request, compressed with the 60 s window."""
    return round(150 * window / 60, 2)


# --- machine CPU ----------------------------------------------------------------------------


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs (/proc/stat); (0, 0) elsewhere."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)
    return 0.0, 0.0


class CpuMeter:
    """Share of the whole machine's CPU time that was busy between start and stop."""

    def __init__(self) -> None:
        self.busy0, self.total0 = _cpu_times()

    def busy_fraction(self) -> float:
        busy, total = _cpu_times()
        return round((busy - self.busy0) / (total - self.total0), 3) if total > self.total0 else 0


# --- messages sent from this process ----------------------------------------------------------


class PublishCounter:
    """Counts Celery messages published by this process, by (label, task name): the label
    says who sent them (``enqueue``: the services the benchmark called, ``reaper``)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.label = "other"
        self._local = threading.local()

    def __call__(self, sender: Any = None, **kwargs: Any) -> None:
        label = getattr(self._local, "label", None) or self.label
        self.counts[(label, str(sender))] += 1

    @contextlib.contextmanager
    def labelled(self, label: str) -> Iterator[None]:
        previous = getattr(self._local, "label", None)
        self._local.label = label
        try:
            yield
        finally:
            self._local.label = previous

    def total(self, label: str) -> int:
        return sum(n for (lab, _), n in self.counts.items() if lab == label)

    def by_task(self, label: str) -> dict[str, int]:
        return {task: n for (lab, task), n in sorted(self.counts.items()) if lab == label}

    @contextlib.contextmanager
    def connected(self) -> Iterator[PublishCounter]:
        from celery.signals import before_task_publish

        before_task_publish.connect(self, weak=False)
        try:
            yield self
        finally:
            before_task_publish.disconnect(self)


def reaper_task() -> Any | None:
    """The reaper's Celery task as the engine in place registers it (None if it has none)."""
    with contextlib.suppress(ModuleNotFoundError):
        _engine_module("staging.sync.tasks", "staging.sync_tasks")  # registers the tasks
    from staging.celery import app

    return app.tasks.get(REAPER_TASK)


# --- companies, realms and rows -------------------------------------------------------------


@dataclass
class Tenant:
    """One company of a phase: its own realm in the emulator and its staged rows."""

    label: str
    company: Any
    realm_id: str
    rows: int
    queued_at: float = 0.0  # time.time() just before its rows were queued


def tenant_create(
    emulator: Any, label: str, *, rows: int, parents: int = 40, failed: int = 0
) -> Tenant:
    """A company connected (real OAuth) to a fresh realm seeded with the demo customers,
    with ``rows`` mapped projects in Needs Sync; the first ``failed`` of them set to Failed
    (as a QBO error would leave them)."""
    from staging.models import StagedProject, SyncStatus

    realm_id = common.qbo_realm_add(emulator, realm_id_new(), name=f"Bench {label}")
    company = common.company_create(f"Bench {label}")
    common.qbo_connect(company, realm_id=realm_id)
    projects_create_mapped(company, count=rows, parents=parents, tag=uuid.uuid4().hex[:4])
    if failed:
        ids = list(
            StagedProject.objects.filter(company=company).order_by("pk").values_list("pk")[:failed]
        )
        StagedProject.objects.filter(pk__in=[pk for (pk,) in ids]).update(
            status=SyncStatus.FAILED,
            status_reason="QBO was unavailable (set by the benchmark)",
        )
    return Tenant(label=label, company=company, realm_id=realm_id, rows=rows)


def sync_services() -> Any:
    """The module with the public services ``projects_enqueue_sync`` and ``project_retry``:
    ``staging.sync.queue`` (the engine with lanes) or ``staging.services.sync`` (before)."""
    return _engine_module("staging.sync.queue", "staging.services.sync")


def _engine_module(*names: str) -> Any:
    """The first of ``names`` whose file is in this tree (not merely importable: an
    editable install may resolve a missing subpackage from another checkout)."""
    import importlib

    for name in names:
        base = common.ROOT / Path(*name.split("."))
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return importlib.import_module(name)
    raise ModuleNotFoundError(f"none of {names} in {common.ROOT}")


def queue_all(tenant: Tenant) -> None:
    from staging.models import StagedProject

    projects_enqueue_sync = sync_services().projects_enqueue_sync
    tenant.queued_at = time.time()
    projects_enqueue_sync(
        company=tenant.company,
        projects=StagedProject.objects.filter(company=tenant.company),
        actor=None,
    )


def retry_failed_row(tenant: Tenant) -> None:
    """What the Retry button does: ``project_retry`` of one Failed row."""
    from staging.models import StagedProject, SyncStatus

    project_retry = sync_services().project_retry
    row = StagedProject.objects.filter(company=tenant.company, status=SyncStatus.FAILED).first()
    if row is None:
        raise RuntimeError(f"{tenant.label} has no Failed row to retry")
    tenant.queued_at = time.time()
    project_retry(company=tenant.company, project_id=row.pk, actor=None)


def emulator_configure(emulator: Any, *, window: float, latency_ms: float) -> None:
    """The emulator's throttle window (its per-second limit scales with it) and latency."""
    common.requests_control(
        emulator, "POST", "throttle", json={"window_seconds": window, "reset_windows": True}
    )
    common.requests_control(emulator, "POST", "latency", json={"ms": latency_ms})


# --- one phase: start workers, queue, wait, measure ----------------------------------------


@dataclass
class TenantResult:
    label: str
    realm_id: str
    rows: int
    statuses: dict[str, int]
    wait_first_s: float  # queueing → its first row Synced
    wait_last_s: float  # queueing → its last row Synced (nan if not all synced)
    wait_windows: float
    throughput: Throughput
    jobs_in_qbo: int
    duplicates: int  # extra copies of a name in the realm + rows sharing one job
    orphans: int  # jobs with a bench name that no row points at
    not_synced: int
    last_synced_at: float  # epoch seconds of its last Synced row (nan: none)


@dataclass
class PhaseResult:
    name: str
    window: float
    latency_ms: float
    lease_seconds: float
    workers: int
    concurrency: int
    settled: bool
    elapsed_s: float  # first queueing → last row settled
    tenants: list[TenantResult]
    sent_429: int
    throttled_by_limit: dict[str, int]
    routes: dict[str, int]
    requeued_events: int  # ChangeEvent kind "requeued" of the phase's companies
    reaper_runs: int
    reaper_rows: int  # what the reaper task returned, summed (rows it re-sent)
    reaper_messages: dict[str, int]  # messages the reaper published, by task
    enqueue_messages: dict[str, int]  # messages the services published when queueing
    worker_tasks: dict[str, int]  # messages the workers received, by task
    worker_cpu_s: float
    emulator_cpu_s: float
    machine_busy: float  # share of all CPUs busy during the phase
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reaper_messages_total(self) -> int:
        return sum(self.reaper_messages.values())

    def tenant(self, label: str) -> TenantResult:
        return next(t for t in self.tenants if t.label == label)


def _duplicates(emulator: Any, tenant: Tenant) -> tuple[int, int, int]:
    """(jobs in QBO with the tenant's names, duplicates, orphans) of one realm."""
    from staging.models import StagedProject, SyncStatus

    rows = StagedProject.objects.filter(company=tenant.company)
    names = {name.lower() for name in rows.values_list("name", flat=True)}
    state = common.requests_control(emulator, "GET", "state", params={"realm_id": tenant.realm_id})
    jobs = [c for c in state["Customer"] if str(c.get("DisplayName", "")).lower() in names]
    by_name = Counter(str(c["DisplayName"]).lower() for c in jobs)
    referenced = [
        r for r in rows.filter(status=SyncStatus.SYNCED).values_list("qbo_record_id", flat=True)
    ]
    extra_copies = sum(n - 1 for n in by_name.values() if n > 1)
    shared = len(referenced) - len(set(referenced))
    orphans = len({str(c["Id"]) for c in jobs} - set(referenced))
    return len(jobs), extra_copies + shared, orphans


def _tenant_result(emulator: Any, tenant: Tenant, *, window: float, end: float) -> TenantResult:
    from staging.models import StagedProject, SyncStatus

    rows = StagedProject.objects.filter(company=tenant.company)
    statuses = dict(Counter(rows.values_list("status", flat=True)))
    synced = list(rows.filter(status=SyncStatus.SYNCED).values_list("last_synced_at", flat=True))
    # last_synced_at is the worker's clock (same machine); an engine that does not set it
    # is charged the moment the benchmark saw the phase settle.
    times = sorted(at.timestamp() if at is not None else end for at in synced)
    not_synced = sum(n for s, n in statuses.items() if s != SyncStatus.SYNCED)
    wait_first = times[0] - tenant.queued_at if times else math.nan
    wait_last = times[-1] - tenant.queued_at if times and not not_synced else math.nan
    jobs, duplicates, orphans = _duplicates(emulator, tenant)
    return TenantResult(
        label=tenant.label,
        realm_id=tenant.realm_id,
        rows=tenant.rows,
        statuses=statuses,
        wait_first_s=round(wait_first, 2),
        wait_last_s=round(wait_last, 2),
        wait_windows=round(wait_last / window, 2),
        throughput=throughput(times, started=tenant.queued_at, window=window),
        jobs_in_qbo=jobs,
        duplicates=duplicates,
        orphans=orphans,
        not_synced=not_synced,
        last_synced_at=times[-1] if times else math.nan,
    )


def phase_run(
    *,
    name: str,
    emulator: Any,
    worker_env: dict[str, str],
    tenants: list[Tenant],
    schedule: Sequence[tuple[float, Callable[[], None]]],
    workers: int,
    concurrency: int,
    window: float,
    lease: float,
    reaper_every: float | None = None,
    timeout: float | None = None,
) -> PhaseResult:
    """Start the workers, run ``schedule``'s steps (seconds after the first, an action that
    queues tenants' rows and stamps their ``queued_at``), run the reaper every
    ``reaper_every`` seconds until every step ran and no row of the tenants is Queued, and
    measure. Django must be configured and point at ``emulator``."""
    from django.conf import settings

    from integrations.services.qbo import rate_limiter
    from staging.models import ChangeEvent, StagedProject, SyncStatus

    companies = [t.company for t in tenants]
    total = sum(t.rows for t in tenants)
    timeout = timeout if timeout is not None else 120 + 4 * window * (1 + total / 1000)
    reaper_every = reaper_every if reaper_every is not None else window
    latency = float(common.requests_control(emulator, "GET", "latency")["ms"])
    env = {
        **worker_env,
        "SYNC_LEASE_SECONDS": str(int(lease)),
        "QBO_RATE_WINDOW_SECONDS": str(int(window)),
    }
    previous_lease = settings.SYNC_LEASE_SECONDS
    settings.SYNC_LEASE_SECONDS = int(lease)  # the reaper runs in this process
    reaper = reaper_task()
    reaper_runs = reaper_rows = 0
    events_before = ChangeEvent.objects.filter(company__in=companies, kind="requeued").count()
    emulator_pid = getattr(getattr(emulator, "process", None), "pid", None)
    counter = PublishCounter()
    try:
        with (
            counter.connected(),
            common.running_workers(env, count=workers, concurrency=concurrency) as pool,
        ):
            # Setup traffic (OAuth, customer refreshes) must not count against the phase.
            for tenant in tenants:
                rate_limiter().reset(tenant.realm_id)
            common.requests_control(emulator, "POST", "counters/reset")
            cpu = CpuMeter()
            worker_cpu0 = pool.cpu_seconds()
            emulator_cpu0 = common.tree_cpu_seconds(emulator_pid) if emulator_pid else 0.0
            steps = sorted(schedule, key=lambda step: step[0])
            first = time.time()
            queued = StagedProject.objects.filter(company__in=companies, status=SyncStatus.QUEUED)
            next_reap = first + reaper_every
            settled = False
            while time.time() < first + timeout:
                while steps and time.time() >= first + steps[0][0]:
                    with counter.labelled("enqueue"):
                        steps.pop(0)[1]()
                if not steps and not queued.exists():
                    settled = True
                    break
                if reaper is not None and time.time() >= next_reap:
                    with counter.labelled("reaper"):
                        answer = reaper()
                    reaper_runs += 1
                    reaper_rows += answer if isinstance(answer, int) else 0
                    next_reap = time.time() + reaper_every
                pause = 0.2 if not steps else first + steps[0][0] - time.time()
                time.sleep(min(0.2, max(0.0, pause)))
            stamps = [t.queued_at for t in tenants if t.queued_at]
            first = min(stamps, default=first)
            end = time.time()
            worker_cpu = pool.cpu_seconds() - worker_cpu0
            emulator_cpu = (
                common.tree_cpu_seconds(emulator_pid) - emulator_cpu0 if emulator_pid else 0.0
            )
            busy = cpu.busy_fraction()
            worker_tasks = pool.task_counts()
            if not settled:
                print(f"{name}: not settled within {timeout:.0f} s\n{pool.logs(3000)}")
    finally:
        settings.SYNC_LEASE_SECONDS = previous_lease
    counters = common.requests_control(emulator, "GET", "counters")
    results = [_tenant_result(emulator, t, window=window, end=end) for t in tenants]
    all_synced = settled and not any(r.not_synced for r in results)
    elapsed = (max(r.last_synced_at for r in results) if all_synced else end) - first
    requeued = (
        ChangeEvent.objects.filter(company__in=companies, kind="requeued").count() - events_before
    )
    return PhaseResult(
        name=name,
        window=window,
        latency_ms=latency,
        lease_seconds=lease,
        workers=workers,
        concurrency=concurrency,
        settled=settled,
        elapsed_s=round(elapsed, 2),
        tenants=results,
        sent_429=int(counters.get("sent_429", 0)),
        throttled_by_limit=dict(counters.get("throttled_by_limit", {})),
        routes={k: v for k, v in counters.get("routes", {}).items() if not k.startswith("GET d")},
        requeued_events=requeued,
        reaper_runs=reaper_runs,
        reaper_rows=reaper_rows,
        reaper_messages=counter.by_task("reaper"),
        enqueue_messages=counter.by_task("enqueue"),
        worker_tasks=worker_tasks,
        worker_cpu_s=round(worker_cpu, 1),
        emulator_cpu_s=round(emulator_cpu, 1),
        machine_busy=busy,
    )


# --- part 1: fairness -------------------------------------------------------------------


def run_fairness(
    *,
    emulator: Any,
    worker_env: dict[str, str],
    a_rows: int,
    b_rows: int = 30,
    delay: float = 1.0,
    late_delay: float | None = None,
    workers: int = 2,
    concurrency: int = 3,
    window: float = 6,
    lease: float = 12,
    reaper_every: float | None = None,
    latency_ms: float | None = None,
) -> dict[str, PhaseResult]:
    """A alone (the baseline), then A + B (``delay`` s later) + C's retry, fresh realms each;
    and B2 + C2 the same ``late_delay`` s after A (default 2 windows; 0: none), when A's
    backlog is certainly in the broker (at 1 s an engine may still be splitting it)."""
    emulator_configure(
        emulator,
        window=window,
        latency_ms=latency_for(window) if latency_ms is None else latency_ms,
    )
    common_args: dict[str, Any] = {
        "emulator": emulator,
        "worker_env": worker_env,
        "workers": workers,
        "concurrency": concurrency,
        "window": window,
        "lease": lease,
        "reaper_every": reaper_every,
    }
    late_delay = 2 * window if late_delay is None else late_delay
    alone = tenant_create(emulator, "A", rows=a_rows)
    baseline = phase_run(
        name=f"A alone ({a_rows:,})",
        tenants=[alone],
        schedule=[(0.0, lambda: queue_all(alone))],
        **common_args,
    )
    print(_phase_line(baseline))
    a = tenant_create(emulator, "A", rows=a_rows)
    b = tenant_create(emulator, "B", rows=b_rows)
    c = tenant_create(emulator, "C", rows=1, failed=1)
    tenants = [a, b, c]
    schedule = [
        (0.0, lambda: queue_all(a)),
        (delay, lambda: queue_all(b)),
        (delay, lambda: retry_failed_row(c)),
    ]
    if late_delay:
        b2 = tenant_create(emulator, "B2", rows=b_rows)
        c2 = tenant_create(emulator, "C2", rows=1, failed=1)
        tenants += [b2, c2]
        schedule += [
            (late_delay, lambda: queue_all(b2)),
            (late_delay, lambda: retry_failed_row(c2)),
        ]
    mixed = phase_run(
        name=f"A ({a_rows:,}) + B ({b_rows}) + C (retry 1)" + (" + B2, C2" if late_delay else ""),
        tenants=tenants,
        schedule=schedule,
        **common_args,
    )
    mixed.extra["delay_s"] = delay
    mixed.extra["late_delay_s"] = late_delay
    print(_phase_line(mixed))
    return {"alone": baseline, "mixed": mixed}


# --- part 2: scale-out over realms -----------------------------------------------------------


def run_scale(
    *,
    emulator: Any,
    worker_env: dict[str, str],
    rows: int,
    realms: Sequence[int] = (1, 3),
    pools: Sequence[tuple[int, int]] = ((2, 3), (2, 1)),
    window: float = 30,
    lease: float | None = None,
    reaper_every: float | None = None,
    latency_ms: float | None = None,
) -> list[PhaseResult]:
    """R realms of ``rows`` rows queued together, for every R and every (workers, processes)."""
    emulator_configure(
        emulator,
        window=window,
        latency_ms=latency_for(window) if latency_ms is None else latency_ms,
    )
    # Production's lease is 5 windows (300 s at 60 s); keep that ratio here.
    lease = lease if lease is not None else 5 * window
    results = []
    for workers, concurrency in pools:
        for count in realms:
            tenants = [tenant_create(emulator, f"R{i + 1}", rows=rows) for i in range(count)]

            def queue_each(tenants: list[Tenant] = tenants) -> None:
                for tenant in tenants:
                    queue_all(tenant)

            result = phase_run(
                name=f"{count} realm(s) × {rows:,}, {workers}×{concurrency}",
                emulator=emulator,
                worker_env=worker_env,
                tenants=tenants,
                schedule=[(0.0, queue_each)],
                workers=workers,
                concurrency=concurrency,
                window=window,
                lease=lease,
                reaper_every=reaper_every,
            )
            result.extra["realms"] = count
            print(_phase_line(result))
            results.append(result)
    return results


def aggregate_per_window(result: PhaseResult) -> float:
    """All realms' rows ÷ (first queueing → last row Synced), per window."""
    rows = sum(t.statuses.get("synced", 0) for t in result.tenants)
    return rows * result.window / result.elapsed_s if result.elapsed_s > 0 else 0.0


# --- part 3: many small companies ------------------------------------------------------------


def run_many(
    *,
    emulator: Any,
    worker_env: dict[str, str],
    companies: int = 100,
    rows: int = 30,
    threads: int = 8,
    workers: int = 2,
    concurrency: int = 3,
    window: float = 6,
    lease: float = 12,
    reaper_every: float | None = None,
    latency_ms: float | None = None,
) -> PhaseResult:
    """``companies`` companies of ``rows`` rows, queued at the same moment from ``threads``
    threads (each with its own database connection, like concurrent web requests)."""
    emulator_configure(
        emulator,
        window=window,
        latency_ms=latency_for(window) if latency_ms is None else latency_ms,
    )
    tenants = [tenant_create(emulator, f"M{i + 1:03d}", rows=rows) for i in range(companies)]

    def queue_closing(tenant: Tenant) -> None:
        from django.db import connection

        try:
            queue_all(tenant)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    def schedule() -> None:
        if threads <= 1:
            for tenant in tenants:
                queue_all(tenant)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(queue_closing, tenants))

    result = phase_run(
        name=f"{companies} companies × {rows}",
        emulator=emulator,
        worker_env=worker_env,
        tenants=tenants,
        schedule=[(0.0, schedule)],
        workers=workers,
        concurrency=concurrency,
        window=window,
        lease=lease,
        reaper_every=reaper_every,
    )
    stamps = [t.queued_at for t in tenants]
    result.extra["enqueue_spread_s"] = round(max(stamps) - min(stamps), 2)
    result.extra["threads"] = threads
    print(_phase_line(result))
    return result


# --- report --------------------------------------------------------------------------------


def _phase_line(r: PhaseResult) -> str:
    waits = ", ".join(f"{t.label} {t.wait_windows:g} win" for t in r.tenants[:4]) + (
        " …" if len(r.tenants) > 4 else ""
    )
    return (
        f"{r.name}: {'settled' if r.settled else 'NOT SETTLED'} in {r.elapsed_s} s "
        f"({r.elapsed_s / r.window:.2f} windows); waits: {waits}; 429s {r.sent_429}; "
        f"requeued {r.requeued_events}; reaper msgs {r.reaper_messages_total}; "
        f"CPU busy {r.machine_busy:.0%}"
    )


def _f(value: float, digits: int = 2) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def _dups(r: PhaseResult) -> int:
    return sum(t.duplicates for t in r.tenants)


def _messages(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "0"


def report_fairness(parts: dict[str, PhaseResult]) -> str:
    alone, mixed = parts["alone"], parts["mixed"]
    a0, a = alone.tenant("A"), mixed.tenant("A")
    w = mixed.window
    delay = float(mixed.extra.get("delay_s", 1))
    late = float(mixed.extra.get("late_delay_s", 0))
    ratio = a.throughput.per_window / a0.throughput.per_window if a0.throughput.per_window else 0
    a0_rate = a0.rows * w / a0.wait_last_s if a0.wait_last_s > 0 else math.nan
    a_rate = a.rows * w / a.wait_last_s if a.wait_last_s > 0 else math.nan
    labels = [t.label for t in mixed.tenants]
    rows = []
    for b_label, c_label, after in (("B", "C", delay), ("B2", "C2", late)):
        if b_label not in labels:
            continue
        b, c = mixed.tenant(b_label), mixed.tenant(c_label)
        rows += [
            [
                f"**{b_label}: {b.rows} rows queued {after:g} s after A, until all Synced**",
                f"**{_f(b.wait_windows)} windows** ({_f(b.wait_last_s, 1)} s; first row after "
                f"{_f(b.wait_first_s, 1)} s)",
            ],
            [
                f"**{c_label}: retry of one Failed row {after:g} s after A, until Synced**",
                f"**{_f(c.wait_windows)} windows** ({_f(c.wait_last_s, 1)} s)",
            ],
        ]
    rows += [
        [
            "A's first row Synced after (alone / beside)",
            f"{_f(a0.wait_first_s, 1)} s / {_f(a.wait_first_s, 1)} s",
        ],
        [
            "A alone: rows per window (whole windows) / all rows in",
            f"{a0.throughput.per_window:.0f} / {_f(a0.wait_windows)} windows "
            f"({_f(a0_rate, 0)} rows per window overall)",
        ],
        [
            "A beside the others: rows per window / all rows in",
            f"{a.throughput.per_window:.0f} / {_f(a.wait_windows)} windows "
            f"({_f(a_rate, 0)} rows per window overall)",
        ],
        ["**A beside the others ÷ A alone** (rows per window)", f"**{ratio:.2f}×**"],
        [
            "A per window, alone / beside (timeline)",
            f"{a0.throughput.per_window_timeline} / {a.throughput.per_window_timeline}",
        ],
        ["429s (alone / beside)", f"{alone.sent_429} / {mixed.sent_429}"],
        [
            "429s by limit (beside)",
            ", ".join(f"{k}: {v}" for k, v in mixed.throttled_by_limit.items()) or "—",
        ],
        ["duplicates in QBO (alone / beside)", f"{_dups(alone)} / {_dups(mixed)}"],
        [
            "not synced at the end (alone / beside)",
            f"{sum(t.not_synced for t in alone.tenants)} / "
            f"{sum(t.not_synced for t in mixed.tenants)}",
        ],
        [
            '**reaper during the backlog: history rows "requeued"** (alone / beside)',
            f"**{alone.requeued_events} / {mixed.requeued_events}**",
        ],
        [
            "**reaper: messages sent** (alone / beside)",
            f"**{alone.reaper_messages_total} / {mixed.reaper_messages_total}** "
            f"(runs: {alone.reaper_runs} / {mixed.reaper_runs}; rows it re-sent: "
            f"{alone.reaper_rows} / {mixed.reaper_rows})",
        ],
        ["messages sent by queueing (beside)", _messages(mixed.enqueue_messages)],
        ["messages the workers took (alone)", _messages(alone.worker_tasks)],
        ["messages the workers took (beside)", _messages(mixed.worker_tasks)],
        [
            "QBO requests (beside)",
            ", ".join(f"{k}: {v}" for k, v in sorted(mixed.routes.items())),
        ],
        [
            "CPU: machine busy / workers / emulator (beside)",
            f"{mixed.machine_busy:.0%} / {mixed.worker_cpu_s} s / {mixed.emulator_cpu_s} s",
        ],
    ]
    if not (alone.settled and mixed.settled):
        rows.append(
            ["**not settled within the timeout**", f"alone {alone.settled}, beside {mixed.settled}"]
        )
    late_text = (
        f" B2 and C2 do the same {late:g} s after A, when A's backlog is certainly queued "
        "(at 1 s an engine may still be splitting A's run into messages)."
        if "B2" in labels
        else ""
    )
    head = (
        f"A: {a.rows:,} rows; B: {mixed.tenant('B').rows} rows queued {delay:g} s after A; "
        f"C: one Failed row retried at the same moment.{late_text} Each company its own "
        f"realm. Window {w:g} s, latency {mixed.latency_ms:g} ms, {mixed.workers} workers × "
        f"{mixed.concurrency} processes, SYNC_LEASE_SECONDS={mixed.lease_seconds:g}, the "
        f"reaper every {w:g} s. Baseline: A alone on a fresh realm just before, same settings. "
        "Waits are from the click (the service call) to the last row's `last_synced_at`.\n\n"
    )
    return head + common.md_table(["measure", "value"], rows)


def report_scale(results: list[PhaseResult]) -> str:
    by_pool: dict[tuple[int, int], dict[int, PhaseResult]] = {}
    for r in results:
        by_pool.setdefault((r.workers, r.concurrency), {})[int(r.extra["realms"])] = r
    rows = []
    for (workers, concurrency), by_realms in by_pool.items():
        one = by_realms.get(1)
        one_rate = aggregate_per_window(one) if one else math.nan
        for count, r in sorted(by_realms.items()):
            rate = aggregate_per_window(r)
            finish = sorted(t.wait_last_s / r.window for t in r.tenants)
            rows.append(
                [
                    f"{workers} × {concurrency}",
                    count,
                    f"{sum(t.rows for t in r.tenants):,}",
                    f"{_f(r.elapsed_s, 1)} s = {_f(r.elapsed_s / r.window)}",
                    " / ".join(_f(x) for x in finish),
                    f"{rate:.0f}",
                    f"**{rate / (count * one_rate):.2f}**" if one else "—",
                    r.sent_429,
                    _dups(r),
                    r.requeued_events,
                    f"{r.machine_busy:.0%}",
                    f"{r.worker_cpu_s} / {r.emulator_cpu_s}",
                ]
            )
    first = results[0]
    head = (
        f"Window {first.window:g} s (latency {first.latency_ms:g} ms), SYNC_LEASE_SECONDS="
        f"{first.lease_seconds:g}, the reaper every {first.window:g} s. The R realms' rows are "
        "queued one company after another (well under a second), each realm fresh. *Rows per "
        "window* = all rows ÷ (first queueing → last Synced), in windows; the ratio divides "
        "it by R × the same pool's one-realm figure (1.00 = the realms do not slow each "
        "other). *CPU busy* is the whole machine's (2 CPUs), to show CPU is not the bound.\n\n"
    )
    return head + common.md_table(
        [
            "workers × processes",
            "realms R",
            "rows",
            "all Synced after (s = windows)",
            "each realm done (windows)",
            "rows per window, all realms",
            "÷ (R × one realm)",
            "429s",
            "duplicates",
            "requeued",
            "CPU busy",
            "CPU s workers / emulator",
        ],
        rows,
    )


def report_many(r: PhaseResult) -> str:
    waits = [t.wait_windows for t in r.tenants if not math.isnan(t.wait_windows)]
    unsettled = sum(1 for t in r.tenants if t.not_synced)
    overall = r.elapsed_s / r.window
    spread = float(r.extra.get("enqueue_spread_s", 0.0))
    after_last = r.elapsed_s - spread if not unsettled else math.nan
    rows = [
        [
            "**all Synced within** (first queueing → last row Synced)",
            f"**{overall:.2f} windows** ({r.elapsed_s} s)",
        ],
        [
            "per company, queueing → its last row Synced: p50 / p95 / max",
            f"{_f(common.percentile(waits, 50))} / {_f(common.percentile(waits, 95))} / "
            f"{_f(max(waits, default=math.nan))} windows",
        ],
        [
            "after the last company queued → last row Synced",
            f"{_f(after_last / r.window)} windows ({_f(after_last, 1)} s)",
        ],
        ["companies not all Synced", str(unsettled)],
        [
            "queueing all companies took",
            f"{r.extra.get('enqueue_spread_s')} s ({r.extra.get('threads')} threads)",
        ],
        ["429s", str(r.sent_429)],
        ["duplicates in QBO", str(_dups(r))],
        [
            'history rows "requeued" / reaper messages',
            f"{r.requeued_events} / {r.reaper_messages_total}",
        ],
        ["messages the workers received", _messages(r.worker_tasks)],
        ["QBO requests", ", ".join(f"{k}: {v}" for k, v in sorted(r.routes.items()))],
        [
            "CPU: machine busy / workers / emulator",
            f"{r.machine_busy:.0%} / {r.worker_cpu_s} s / {r.emulator_cpu_s} s",
        ],
    ]
    head = (
        f"{len(r.tenants)} companies × {r.tenants[0].rows} rows, each its own realm, queued at "
        f"the same moment; window {r.window:g} s, latency {r.latency_ms:g} ms, {r.workers} "
        f"workers × {r.concurrency} processes, SYNC_LEASE_SECONDS={r.lease_seconds:g}.\n\n"
    )
    return head + common.md_table(["measure", "value"], rows)


def engine_fingerprint() -> str:
    """Which sync engine ran: the git commit, and a hash of the engine's files as they were."""
    digest = hashlib.sha256()
    for name in ENGINE_FILES:
        path = common.ROOT / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"-"))
    dirs = []
    for name in ENGINE_DIRS:
        path = common.ROOT / name
        if path.is_dir():
            dirs.append(name)
            for file in sorted(path.rglob("*.py")):
                digest.update(str(file.relative_to(common.ROOT)).encode() + file.read_bytes())
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=common.ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    extra = f", with {', '.join(dirs)}" if dirs else ""
    where = f"commit {commit} (+ any uncommitted changes), " if commit else ""
    return f"{where}engine files sha256 {digest.hexdigest()[:12]}{extra}"


INTRO = """# Benchmarks: several companies at once

Written by `python -m bench.multi_company` (how to run and what it measures:
[bench/README.md](../bench/README.md), section 5). Each company has its own realm in one QBO
emulator with QBO's per-realm limits, windows compressed (60 s → the window stated); real
Celery workers on Redis; only the public services are called (`projects_enqueue_sync`,
`project_retry`), results are read from the database and the emulator's counters. The
tables between `<!-- bench:… -->` markers are rewritten by every run of the same label;
ratios are against baselines measured in the same run. The machine is a shared 2-CPU VM:
read the ratios, not the absolute figures.
"""


def write_results(label: str, blocks: dict[str, str], path: Path = RESULTS) -> None:
    if not path.exists():
        path.write_text(INTRO)
    for name, markdown in blocks.items():
        common.write_section(f"multi_company:{label}:{name}", markdown, path=path)


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--parts", default="fairness,scale,many", help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a minute or so)")
    parser.add_argument(
        "--big",
        action="store_true",
        help="fairness also with A = 20,000 rows (100,000 is out of reach on 2 CPUs: README)",
    )
    parser.add_argument("--a-rows", default=None, help="comma-separated A sizes (default 6000)")
    parser.add_argument("--b-rows", type=int, default=30)
    parser.add_argument("--delay", type=float, default=1.0, help="B and C queue this much later")
    parser.add_argument(
        "--late-delay", type=float, default=None, help="B2 and C2 (default 2 windows; 0: none)"
    )
    parser.add_argument("--window", type=float, default=6, help="fairness and many (s)")
    parser.add_argument("--lease", type=float, default=12, help="SYNC_LEASE_SECONDS, fairness/many")
    parser.add_argument("--reaper-every", type=float, default=None, help="default: the window")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--scale-window", type=float, default=30)
    parser.add_argument("--scale-rows", type=int, default=2000, help="rows per realm")
    parser.add_argument("--scale-realms", default="1,3")
    parser.add_argument("--scale-pools", default="2x3,2x1", help="workers x processes, ...")
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--company-rows", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8, help="queueing threads, part many")
    parser.add_argument("--label", default="current", help="names the results' blocks")
    parser.add_argument("--engine-note", default="", help="what engine this is, for the report")
    parser.add_argument("--database", default="bench_multi")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"fairness", "scale", "many"}
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    a_sizes = [int(v) for v in (args.a_rows or "6000").split(",")]
    if args.big:
        a_sizes.append(20000)
    if args.quick:
        a_sizes = [min(n, 600) for n in a_sizes[:1]]
        args.scale_rows = min(args.scale_rows, 300)
        args.scale_window = min(args.scale_window, 6)
        args.companies = min(args.companies, 10)
    pools = [tuple(int(x) for x in p.split("x")) for p in args.scale_pools.split(",")]
    realms = [int(x) for x in args.scale_realms.split(",")]

    emulator = common.QboEmulatorProcess(
        latency_ms=latency_for(args.window), window_seconds=args.window
    )
    extra = {**common.qbo_settings_env(emulator), "QBO_RATE_WINDOW_SECONDS": str(int(args.window))}
    started = time.monotonic()
    data: dict[str, Any] = {}
    blocks: dict[str, str] = {}
    try:
        env = common.bench_setup(database=args.database, extra_env=extra)
        info = common.machine_info()
        note = f" ({args.engine_note})" if args.engine_note else ""
        info["engine"] = engine_fingerprint() + note
        with contextlib.suppress(OSError):
            info["load before"] = Path("/proc/loadavg").read_text().split()[0]
        pool = {"workers": args.workers, "concurrency": args.concurrency}
        if "fairness" in parts:
            data["fairness"] = {}
            texts = []
            for size in a_sizes:
                fair = run_fairness(
                    emulator=emulator,
                    worker_env=env,
                    a_rows=size,
                    b_rows=args.b_rows,
                    delay=args.delay,
                    late_delay=args.late_delay,
                    window=args.window,
                    lease=args.lease,
                    reaper_every=args.reaper_every,
                    **pool,
                )
                data["fairness"][size] = {k: asdict(v) for k, v in fair.items()}
                texts.append(f"**A = {size:,} rows**\n\n" + report_fairness(fair))
            blocks["fairness"] = "\n\n".join(texts)
        if "scale" in parts:
            results = run_scale(
                emulator=emulator,
                worker_env=env,
                rows=args.scale_rows,
                realms=realms,
                pools=pools,
                window=args.scale_window,
                reaper_every=args.reaper_every,
            )
            data["scale"] = [asdict(r) for r in results]
            blocks["scale"] = report_scale(results)
        if "many" in parts:
            many = run_many(
                emulator=emulator,
                worker_env=env,
                companies=args.companies,
                rows=args.company_rows,
                threads=args.threads,
                window=args.window,
                lease=args.lease,
                reaper_every=args.reaper_every,
                **pool,
            )
            data["many"] = asdict(many)
            blocks["many"] = report_many(many)
        with contextlib.suppress(OSError):
            info["load after"] = Path("/proc/loadavg").read_text().split()[0]
        info["run took"] = f"{time.monotonic() - started:.0f} s"
    finally:
        emulator.stop()
        common.bench_teardown(args.database, keep=args.keep_db)
    titles = {
        "fairness": "1. Fairness: B and C behind A's backlog",
        "scale": "2. Scale-out over realms",
        "many": "3. 100 companies at the same moment",
    }
    run_line = f"Run: {common.machine_line(info)}"
    blocks = {
        name: f"### {titles[name]} ({args.label})\n\n{run_line}\n\n{markdown}"
        for name, markdown in blocks.items()
    }
    saved = common.ROOT / "var" / f"bench-multi_company-{args.label}.json"
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(saved.read_text())  # a run of some parts keeps the others
    common.save_json(f"multi_company-{args.label}", {**previous, **data, "machine": info})
    text = "\n\n".join(blocks.values())
    print(text)
    if not args.no_write:
        write_results(args.label, blocks)


if __name__ == "__main__":
    main()
