"""Scenario 1: bulk Sync to QBO throughput against QBO's own ceiling.

    .venv/bin/python -m bench.sync_throughput [--projects 3000] [--workers 2] [--window 6]

The QBO emulator enforces QBO's per-realm limits (500 requests, 10 per second, 40 batch
requests and 10 in flight per window) with a request latency; window and latency are both
compressed by the same factor (60 s / 150 ms in real time → 6 s / 15 ms by default), so the
ratios are those of real time and a run takes seconds. Real Celery workers on Redis sync
the projects, sharing the per-realm limiter through Redis with
``QBO_RATE_WINDOW_SECONDS`` equal to the emulator's window.

Reported per run: projects per window over whole windows, its ratio to the theoretical
ceiling, 429s, duplicates, failures, and peak worker RSS. Baseline, in the same run: a
plain python-quickbooks ``Customer.save()`` loop against a fresh emulator with the same
limits (no batch, no limiter, sleeps a window after a 429).

Sources:
[limits] Intuit, limits and throttles:
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
"""

from __future__ import annotations

import argparse
import math
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import common

# QBO's published per-realm limits, per window ([limits]); the emulator enforces them.
REQUESTS_PER_WINDOW = 500
BATCHES_PER_WINDOW = 40
BATCH_ITEMS = 30
REQUESTS_PER_SECOND = 10  # per window/60 s: 600 per window, so never the binding limit

NAME_PREFIX = "BX"

# The sync as shipped, and earlier designs of it (bench/sync_before.py): batches only, and
# one transaction per row's outcome. (Celery app, extra env).
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "shipped": ("staging", {}),
    "batch-only": ("bench.sync_before", {"BENCH_SYNC_BEFORE": "batch-only"}),
    "per-row-commits": ("bench.sync_before", {"BENCH_SYNC_BEFORE": "per-row-commits"}),
}


def ceiling_per_window(names_per_lookup: int = BATCH_ITEMS) -> dict[str, int]:
    """The most sub-customers a window can create under QBO's limits when every create is
    preceded by a name lookup (DESIGN "Writing to QBO without duplicates" point 2).

    * /batch: 40 requests x 30 items = 1,200 creates, needing ⌈1200 / names_per_lookup⌉
      lookup queries (one per 30-item chunk in our design);
    * every other request of the 500 can be a single ``POST /customer``: S singles need
      ⌈S / names_per_lookup⌉ lookups, so S + ⌈S/n⌉ <= 500 - 40 - batch lookups.
    The per-second cap (10 per window/60) allows 600 per window and concurrency 10 at
    ~150 ms allows ~4,000, so neither binds.
    """
    batch_creates = BATCHES_PER_WINDOW * BATCH_ITEMS
    batch_lookups = math.ceil(batch_creates / names_per_lookup)
    left = REQUESTS_PER_WINDOW - BATCHES_PER_WINDOW - batch_lookups
    singles = max(s for s in range(left + 1) if s + math.ceil(s / names_per_lookup) <= left)
    return {
        "batch_creates": batch_creates,
        "batch_lookups": batch_lookups,
        "single_creates": singles,
        "single_lookups": math.ceil(singles / names_per_lookup),
        "total": batch_creates + singles,
        "batch_only": batch_creates,
    }


# --- metrics --------------------------------------------------------------------------------


@dataclass
class Throughput:
    """Completions over time, in projects per window.

    ``per_window``: completions within the first k whole windows after the first
    completion, divided by k (k = whole windows the run spans). A sliding-window limiter
    lets a fresh realm burst a full window at once, so "N / elapsed" overstates short runs;
    whole windows do not. ``best_window``: the most completions in any window-long interval.
    """

    completed: int
    elapsed_seconds: float
    windows_spanned: float
    whole_windows: int
    per_window: float
    best_window: int
    overall_per_window: float
    per_window_timeline: list[int] = field(default_factory=list)


def throughput(times: list[float], *, started: float, window: float) -> Throughput:
    times = sorted(times)
    if not times:
        return Throughput(0, 0.0, 0.0, 0, 0.0, 0, 0.0)
    first, last = times[0], times[-1]
    elapsed = last - started
    whole = int((last - first) / window)
    if whole >= 1:
        cutoff = first + whole * window
        per_window = sum(1 for t in times if t < cutoff) / whole
    else:
        per_window = float(len(times))  # all within one window: a lower bound
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:  # the interval (t - window, t]
            j += 1
        best = max(best, i - j + 1)
    return Throughput(
        completed=len(times),
        elapsed_seconds=round(elapsed, 2),
        windows_spanned=round(elapsed / window, 2),
        whole_windows=whole,
        per_window=round(per_window, 1),
        best_window=best,
        overall_per_window=round(len(times) * window / elapsed, 1) if elapsed > 0 else 0.0,
        per_window_timeline=[
            sum(1 for t in times if first + k * window <= t < first + (k + 1) * window)
            for k in range(int((last - first) / window) + 1)
        ],
    )


# --- the run ------------------------------------------------------------------------------


@dataclass
class SyncResult:
    variant: str
    projects: int
    workers: int
    concurrency: int
    window_seconds: float
    latency_ms: float
    statuses: dict[str, int]
    throughput: Throughput
    sent_429: int
    throttled_by_limit: dict[str, int]
    max_in_flight: int
    routes: dict[str, int]
    jobs_in_qbo: int
    duplicates: int
    failed: int
    failure_samples: list[str]
    worker_peak_rss_mb: list[float]
    worker_cpu_ms_per_project: float
    enqueue_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def project_names(count: int, tag: str) -> list[str]:
    kinds = ("Clinic Fit-Out", "Parking Deck", "School Gym", "Warehouse Shell", "Lab Retrofit")
    return [f"{NAME_PREFIX}{tag} {i:05d} {kinds[i % len(kinds)]}" for i in range(count)]


def projects_create_mapped(company: Any, *, count: int, parents: int, tag: str) -> list[str]:
    """``count`` staged projects, Needs Sync, mapped round-robin to ``parents`` customers."""
    from integrations.models import QboCustomer
    from staging.models import StagedProject, SyncStatus

    customers = list(
        QboCustomer.objects.filter(company=company, is_job=False, active=True).order_by("qbo_id")[
            :parents
        ]
    )
    if not customers:
        raise RuntimeError("the customer cache is empty: was the company connected?")
    names = project_names(count, tag)
    StagedProject.objects.bulk_create(
        [
            StagedProject(
                company=company,
                linarc_id=f"{tag}-{i}",
                number=f"B-{i:05d}",
                name=name,
                project_status="Active",
                client_name=customers[i % len(customers)].display_name,
                address={"line1": f"{100 + i} Main St", "city": "Boise", "state": "ID"},
                qbo_customer=customers[i % len(customers)],
                status=SyncStatus.NEEDS_SYNC,
            )
            for i, name in enumerate(names)
        ],
        batch_size=1000,
    )
    return names


def sync_run(
    *,
    company: Any,
    emulator: Any,
    worker_env: dict[str, str],
    workers: int,
    window: float,
    concurrency: int = 1,
    timeout: float | None = None,
    variant: str = "shipped",
) -> SyncResult:
    """Sync every Needs Sync project of ``company`` with real workers; wait until settled.

    Django must be configured (the bench database, or pytest-django's test database with
    committed data) and the settings must point at ``emulator``.
    """
    from integrations.services.qbo import rate_limiter
    from staging.models import StagedProject, SyncStatus
    from staging.sync.queue import projects_enqueue_sync

    rows = StagedProject.objects.filter(company=company)
    total = rows.filter(status=SyncStatus.NEEDS_SYNC).count()
    # Setup traffic (OAuth, the customer refresh) must not count against the run.
    rate_limiter().reset(emulator.realm_id)
    common.requests_control(emulator, "POST", "counters/reset")
    timeout = timeout if timeout is not None else 60 + 4 * window * (1 + total / 1000)
    app, extra_env = VARIANTS[variant]
    env = {**worker_env, **extra_env}
    with common.running_workers(env, count=workers, concurrency=concurrency, app=app) as pool:
        cpu_before = pool.cpu_seconds()
        started_wall = time.time()
        started = time.monotonic()
        summary = projects_enqueue_sync(company=company, projects=rows, actor=None)
        enqueue_seconds = time.monotonic() - started
        run_rows = rows.filter(sync_run_id=summary.run_id)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not run_rows.filter(status=SyncStatus.QUEUED).exists():
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"sync did not settle within {timeout:.0f}s:\n{pool.logs(3000)}")
        peak_rss = pool.peak_rss_mb()
        worker_cpu = pool.cpu_seconds() - cpu_before
    statuses = dict(Counter(run_rows.values_list("status", flat=True)))
    synced = list(
        run_rows.filter(status=SyncStatus.SYNCED).values_list("last_synced_at", "qbo_record_id")
    )
    times = [at.timestamp() for at, _ in synced if at is not None]
    counters = emulator.counters()
    # Duplicates: bench jobs in QBO that no staged row points at, plus rows sharing a job.
    names = set(run_rows.values_list("name", flat=True))
    jobs = [c for c in emulator.entities("Customer") if c.get("DisplayName") in names]
    job_ids = {str(c["Id"]) for c in jobs}
    referenced = [record_id for _, record_id in synced]
    duplicates = len(job_ids - set(referenced)) + (len(referenced) - len(set(referenced)))
    failures = list(
        run_rows.exclude(status=SyncStatus.SYNCED).values_list("status_reason", flat=True)[:5]
    )
    return SyncResult(
        variant=variant,
        projects=total,
        workers=workers,
        concurrency=concurrency,
        window_seconds=window,
        latency_ms=_latency_ms(emulator),
        statuses=statuses,
        throughput=throughput(times, started=started_wall, window=window),
        sent_429=int(counters.get("sent_429", 0)),
        throttled_by_limit=dict(counters.get("throttled_by_limit", {})),
        max_in_flight=int(counters.get("max_in_flight", 0)),
        routes={k: v for k, v in counters.get("routes", {}).items() if not k.startswith("GET d")},
        jobs_in_qbo=len(jobs),
        duplicates=duplicates,
        failed=total - statuses.get(SyncStatus.SYNCED, 0),
        failure_samples=failures,
        worker_peak_rss_mb=peak_rss,
        worker_cpu_ms_per_project=round(worker_cpu * 1000 / max(1, total), 2),
        enqueue_seconds=round(enqueue_seconds, 3),
    )


def _latency_ms(emulator: Any) -> float:
    # QboEmulator (in-process) keeps it on its core; QboEmulatorProcess on itself.
    core = getattr(emulator, "core", None)
    return float(core.latency_ms if core is not None else emulator.latency_ms)


# --- baseline: one Customer.save() at a time --------------------------------------------


@dataclass
class BaselineResult:
    projects: int
    throughput: Throughput
    sent_429: int
    failed: int


def baseline_run(*, emulator: Any, count: int, window: float, parents: int = 40) -> BaselineResult:
    """What a straightforward script does: python-quickbooks, one ``Customer.save()`` per
    project, no batch and no limiter; on a 429 it waits a window (QBO's advice) and resends."""
    from intuitlib.client import AuthClient
    from quickbooks import QuickBooks
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.base import Ref
    from quickbooks.objects.customer import Customer

    tokens = emulator.mint_tokens()
    auth = AuthClient(
        emulator.client_id,
        emulator.client_secret,
        common.QBO_REDIRECT_URI,
        environment=emulator.discovery_url,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )
    qb = QuickBooks(
        auth_client=auth,
        refresh_token=tokens["refresh_token"],
        company_id=emulator.realm_id,
        minorversion=75,
    )
    qb.api_url_v3 = qb.sandbox_api_url_v3 = emulator.api_base_url
    parent_ids = [
        str(c["Id"])
        for c in emulator.entities("Customer")
        if not c.get("Job") and c.get("Active", True)
    ][:parents]
    common.requests_control(emulator, "POST", "counters/reset")
    names = project_names(count, f"base{uuid.uuid4().hex[:4]}")
    failed = 0
    times: list[float] = []
    started = time.time()
    for index, name in enumerate(names):
        customer = Customer()
        customer.DisplayName = name
        customer.Job = True
        customer.BillWithParent = True
        parent = Ref()
        parent.value = parent_ids[index % len(parent_ids)]
        customer.ParentRef = parent
        for _attempt in range(10):
            try:
                customer.save(qb=qb)
                times.append(time.time())
                break
            except QuickbooksException as exc:
                if "ThrottleExceeded" in f"{exc.message} {exc.detail}" or exc.error_code == 3001:
                    time.sleep(window)
                    continue
                failed += 1
                break
    counters = emulator.counters()
    return BaselineResult(
        projects=count,
        throughput=throughput(times, started=started, window=window),
        sent_429=int(counters.get("sent_429", 0)),
        failed=failed,
    )


# --- report -------------------------------------------------------------------------------


def report(
    result: SyncResult,
    baseline: BaselineResult | None,
    info: dict[str, str],
    others: list[SyncResult] | None = None,
) -> str:
    ceiling = ceiling_per_window()
    t = result.throughput
    rows = [
        ["projects synced / failed", f"{result.statuses.get('synced', 0)} / {result.failed}"],
        ["elapsed (s) / windows", f"{t.elapsed_seconds} / {t.windows_spanned}"],
        [
            "**projects per window** (whole windows)",
            f"**{t.per_window:.0f}** over {t.whole_windows} window(s)",
        ],
        ["best window-long interval", str(t.best_window)],
        [
            "ratio to the QBO ceiling (batch + singles)",
            f"**{t.per_window / ceiling['total']:.1%}** of {ceiling['total']}",
        ],
        [
            "ratio to the batch-only ceiling",
            f"{t.per_window / ceiling['batch_only']:.1%} of {ceiling['batch_only']}",
        ],
        ["429s received", str(result.sent_429)],
        ["duplicates in QBO", str(result.duplicates)],
        ["QBO requests", ", ".join(f"{k}: {v}" for k, v in sorted(result.routes.items()))],
        ["max in flight (emulator)", str(result.max_in_flight)],
        ["worker peak RSS (MB, each process)", ", ".join(map(str, result.worker_peak_rss_mb))],
        ["worker CPU per project (ms)", str(result.worker_cpu_ms_per_project)],
        ["enqueue of all rows (s)", str(result.enqueue_seconds)],
    ]
    if baseline is not None:
        b = baseline.throughput
        rows += [
            [
                "baseline: Customer.save() loop",
                f"{b.per_window:.0f}/window ({baseline.projects} projects, "
                f"{b.elapsed_seconds} s, 429s: {baseline.sent_429}, failed: {baseline.failed})",
            ],
            ["**ours / baseline**", f"**{t.per_window / b.per_window:.1f}×**"],
        ]
    header = (
        f"Run: {common.machine_line(info)}\n\n"
        f"{result.projects} mapped projects, {result.workers} Celery workers (prefork, "
        f"{result.concurrency} child(ren) each) on Redis; emulator window "
        f"{result.window_seconds:g} s, latency "
        f"{result.latency_ms:g} ms (real-time equivalent: 60 s and "
        f"{result.latency_ms * 60 / result.window_seconds:.0f} ms); limiter "
        f"QBO_RATE_WINDOW_SECONDS={result.window_seconds:g}.\n\n"
        f"Ceiling per window: {ceiling['batch_creates']} batch creates "
        f"(40 × 30, {ceiling['batch_lookups']} lookups) + {ceiling['single_creates']} single "
        f"creates ({ceiling['single_lookups']} lookups) = **{ceiling['total']}**; "
        f"batch-only: {ceiling['batch_only']}.\n"
    )
    text = (
        header
        + f"\nVariant **{result.variant}**:\n\n"
        + common.md_table(["measure", "value"], rows)
    )
    if others:
        compare = [
            [
                r.variant,
                f"{r.throughput.per_window:.0f}",
                f"{r.throughput.per_window / ceiling['total']:.1%}",
                f"{r.throughput.per_window / result.throughput.per_window:.2f}×",
                r.sent_429,
                r.duplicates,
                r.failed,
                ", ".join(f"{k}: {v}" for k, v in sorted(r.routes.items())),
                max(r.worker_peak_rss_mb, default=0),
            ]
            for r in [result, *others]
        ]
        text += "\n\nIn the same run:\n\n" + common.md_table(
            [
                "variant",
                "projects/window",
                "of ceiling",
                f"vs {result.variant}",
                "429s",
                "duplicates",
                "failed",
                "QBO requests",
                "peak worker RSS MB",
            ],
            compare,
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=3, help="pool processes per worker")
    parser.add_argument("--window", type=int, default=6, help="compressed 60 s window (s)")
    parser.add_argument(
        "--variants",
        default="shipped,batch-only,per-row-commits",
        help="comma-separated, the first is the headline: " + ", ".join(VARIANTS),
    )
    parser.add_argument(
        "--latency-ms", type=float, default=None, help="default: 150 ms × window / 60 s"
    )
    parser.add_argument("--parents", type=int, default=40)
    parser.add_argument("--baseline-projects", type=int, default=1000)
    parser.add_argument("--database", default="bench_sync")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="don't update docs/benchmarks.md")
    args = parser.parse_args(argv)
    latency = args.latency_ms if args.latency_ms is not None else 150 * args.window / 60

    def new_emulator() -> common.QboEmulatorProcess:
        return common.QboEmulatorProcess(latency_ms=latency, window_seconds=args.window)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    emulator = new_emulator()
    extra = {**common.qbo_settings_env(emulator), "QBO_RATE_WINDOW_SECONDS": str(args.window)}
    env = common.bench_setup(database=args.database, extra_env=extra)
    results: list[SyncResult] = []
    try:
        for variant in variants:
            # A fresh QBO company, tokens, counters and throttle windows for every variant.
            common.requests_control(emulator, "POST", "reset")
            company = common.company_create(f"Bench Sync {variant}")
            common.qbo_connect(company)
            projects_create_mapped(
                company, count=args.projects, parents=args.parents, tag=uuid.uuid4().hex[:4]
            )
            results.append(
                sync_run(
                    company=company,
                    emulator=emulator,
                    worker_env=env,
                    workers=args.workers,
                    window=args.window,
                    concurrency=args.concurrency,
                    variant=variant,
                )
            )
            print(f"{variant}: {results[-1].throughput}")
        emulator.stop()
        baseline = None
        if args.baseline_projects:
            baseline_emulator = new_emulator()
            try:
                baseline = baseline_run(
                    emulator=baseline_emulator, count=args.baseline_projects, window=args.window
                )
            finally:
                baseline_emulator.stop()
        info = common.machine_info()
    finally:
        emulator.stop()
        common.bench_teardown(args.database, keep=args.keep_db)
    data = {
        "results": [asdict(r) for r in results],
        "baseline": asdict(baseline) if baseline else None,
    }
    common.save_json("sync_throughput", {"machine": info, **data})
    text = report(results[0], baseline, info, others=results[1:])
    print(text)
    if not args.no_write:
        common.write_section("sync_throughput", text)


if __name__ == "__main__":
    main()
