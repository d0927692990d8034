"""Smoke tests of the benchmarks (bench/): each scenario at a tiny size, so a change that
breaks a benchmark is caught by the suite. They assert structure and correctness (every row
synced, no duplicate in QBO, the import's counts), never timings: speed is measured by the
benchmarks themselves, on a quiet machine, and written to docs/benchmarks.md.

They run on whatever the suite runs on (SQLite + the filesystem broker, or PostgreSQL +
Redis): the sync uses one real Celery worker, the import real child processes, the Projects
tab Django's test client and gunicorn.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bench import import_speed, mapping_scale, multi_company, projects_tab, sync_throughput
from integrations.services import qbo as qbo_services
from qbo_client import oauth
from qbo_client.emulator import QboEmulator
from staging.celery import app
from tests.fixtures.qbo import CLIENT_ID, CLIENT_SECRET, connect_company, qbo_env, refresh_customers
from tests.fixtures.workers import worker_env

pytestmark = pytest.mark.timeout(180)

WINDOW = 6  # a compressed QBO window: the limits are per 6 s instead of per minute


@pytest.fixture
def fast_emulator(settings: Any) -> Iterator[QboEmulator]:
    """The QBO emulator with the benchmark's compressed window and latency."""
    emulator = QboEmulator(
        port=0,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        seed="demo",
        latency_ms=15,
        throttle_window_seconds=WINDOW,
    ).start()
    settings.QBO_ENVIRONMENT = emulator.discovery_url
    settings.QBO_API_BASE_URL = emulator.api_base_url
    settings.QBO_CLIENT_ID = CLIENT_ID
    settings.QBO_CLIENT_SECRET = CLIENT_SECRET
    settings.QBO_REDIRECT_URI = "http://127.0.0.1:9/callback"
    settings.QBO_RATE_WINDOW_SECONDS = WINDOW
    oauth.clear_discovery_cache()
    qbo_services._limiter.cache_clear()
    try:
        yield emulator
    finally:
        emulator.stop()
        oauth.clear_discovery_cache()
        qbo_services._limiter.cache_clear()


@pytest.fixture
def bench_queue() -> Iterator[str]:
    """A queue of its own, so the benchmark's tasks reach only the benchmark's worker."""
    queue = f"bench-smoke-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    app.conf.task_default_queue = previous


def test_sync_benchmark_syncs_every_project_once(
    transactional_db: None, personas: Any, fast_emulator: QboEmulator, bench_queue: str
) -> None:
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    sync_throughput.projects_create_mapped(personas.company, count=45, parents=5, tag="smk")
    env = {
        **worker_env(bench_queue),
        **qbo_env(fast_emulator),
        "QBO_RATE_WINDOW_SECONDS": str(WINDOW),
    }

    result = sync_throughput.sync_run(
        company=personas.company,
        emulator=fast_emulator,
        worker_env=env,
        workers=1,
        window=WINDOW,
        timeout=120,
    )

    assert result.statuses == {"synced": 45}, result.failure_samples
    assert result.failed == 0 and result.duplicates == 0
    assert result.jobs_in_qbo == 45
    assert result.throughput.completed == 45 and result.throughput.per_window > 0
    assert result.routes.get("POST batch") == 2  # 45 projects: a batch of 30 and one of 15
    assert result.worker_peak_rss_mb and all(mb > 0 for mb in result.worker_peak_rss_mb)
    report = sync_throughput.report(result, None, {"date": "smoke"})
    assert "projects per window" in report


def test_sync_baseline_loop_creates_each_project(fast_emulator: QboEmulator) -> None:
    result = sync_throughput.baseline_run(emulator=fast_emulator, count=6, window=WINDOW)
    assert result.failed == 0 and result.throughput.completed == 6
    names = [c["DisplayName"] for c in fast_emulator.entities() if c.get("Job")]
    assert sum(name.startswith(sync_throughput.NAME_PREFIX) for name in names) == 6


def test_sync_ceiling_is_batch_items_plus_the_remaining_single_requests() -> None:
    ceiling = sync_throughput.ceiling_per_window()
    assert ceiling["batch_creates"] == 1200 and ceiling["batch_lookups"] == 40
    # 500 - 40 batch requests - 40 lookups = 420 requests: 406 creates + 14 lookups.
    assert ceiling["single_creates"] + ceiling["single_lookups"] == 420
    assert ceiling["total"] == 1606


def test_throughput_counts_whole_windows_only() -> None:
    # 10 completions in the first window, 10 in the second, 1 just after: 10 per window.
    times = [0.5 * i for i in range(10)] + [6 + 0.5 * i for i in range(10)] + [12.5]
    result = sync_throughput.throughput(times, started=0.0, window=6)
    assert result.whole_windows == 2 and result.per_window == 10.0
    assert result.best_window == 10


def test_import_benchmark_stages_then_skips_unchanged_rows(transactional_db: None) -> None:
    env = worker_env("unused")  # this test database's URL, for the child processes

    result = import_speed.run_size(120, changed_fraction=0.05, baseline=True, env=env, repeat=1)

    steps = {step["name"]: step for step in result["steps"]}
    assert steps["first Import All"]["counts"] == {"fetched": 120, "created": 120}
    unchanged = steps["re-import, nothing changed"]["counts"]
    assert unchanged == {"fetched": 120, "unchanged": 120}
    changed = steps["re-import, 5% changed"]["counts"]
    assert changed == {"fetched": 120, "updated": 6, "unchanged": 114}
    assert steps["baseline: update_or_create"]["counts"] == {"created": 120}
    assert all(s["peak_rss_mb"] > 0 and s["queries"] > 0 for s in result["steps"])
    assert result["emulator"]["client_per_second"] > 0
    assert "first Import All" in import_speed.report([result], {"date": "smoke"})


def test_projects_tab_benchmark_measures_every_request(transactional_db: None) -> None:
    company, user, customers = projects_tab.tab_setup()
    projects_tab.stage_rows(company, start=0, count=300, customers=customers)

    result = projects_tab.measure_size(
        company,
        user,
        rows=300,
        repeat=2,
        http_seconds=1,
        sync_repeat=1,
        env=worker_env("unused"),
    )

    timings = {t["name"]: t for t in result["client"]}
    assert set(projects_tab.REQUESTS) <= set(timings)
    assert all(t["status"] == 200 and t["queries"] > 0 for t in timings.values())
    enqueue = timings["Select All (Needs Sync chip) → Sync to QBO"]
    assert enqueue["extra"]["selected"] == 30  # 10 % of the rows are Needs Sync
    assert set(result["http"]) == set(projects_tab.REQUESTS)
    assert all(h["p50_ms"] > 0 for h in result["http"].values())
    assert "first page" in projects_tab.report([result], {"date": "smoke"})


def test_mapping_benchmark_maps_what_its_confirmation_listed(transactional_db: None) -> None:
    result = mapping_scale.one_try(0, rows=200, customers=50)

    # 20 clients, 10 rows each: 14 same-name, 2 respelled, 2 with mapped siblings, 2 unknown.
    # The per-row baseline mapped the first 20 rows (2 same-name clients) before.
    assert result["evidence_by_client_kind"] == {
        "exact": {"exact": 14},
        "close": {"close": 2},
        "sibling": {"sibling": 2},
        "none": {"none": 2},
    }
    assert result["unmapped_before_map"] == 180 and result["mapped"] == 180 - 20
    assert result["tab_unmapped"]["status"] == result["tab_mapped"]["status"] == 200
    assert "Map selected" in mapping_scale.report([result], {"date": "smoke"})


def test_multi_company_benchmark_fairness_parts_sync_every_company(
    transactional_db: None, fast_emulator: QboEmulator, bench_queue: str
) -> None:
    env = {
        **worker_env(bench_queue),
        **qbo_env(fast_emulator),
        "QBO_RATE_WINDOW_SECONDS": str(WINDOW),
    }

    parts = multi_company.run_fairness(
        emulator=fast_emulator,
        worker_env=env,
        a_rows=60,
        b_rows=5,
        delay=0.2,
        late_delay=0.5,
        workers=1,
        concurrency=2,
        window=WINDOW,
    )

    alone, mixed = parts["alone"], parts["mixed"]
    assert alone.settled and mixed.settled
    assert {t.label: t.statuses for t in mixed.tenants} == {
        "A": {"synced": 60},
        "B": {"synced": 5},
        "C": {"synced": 1},  # its Failed row, retried
        "B2": {"synced": 5},
        "C2": {"synced": 1},
    }
    assert len({t.realm_id for t in mixed.tenants}) == 5  # one realm per company
    assert all(t.duplicates == 0 and t.jobs_in_qbo == t.rows for t in mixed.tenants)
    assert mixed.tenant("B").wait_last_s >= 0 and mixed.tenant("C").wait_last_s >= 0
    assert alone.tenant("A").throughput.completed == 60
    assert mixed.worker_tasks  # the workers' logs were read
    assert "windows" in multi_company.report_fairness(parts)


def test_multi_company_benchmark_scale_and_many_parts(
    transactional_db: None, fast_emulator: QboEmulator, bench_queue: str
) -> None:
    env = {
        **worker_env(bench_queue),
        **qbo_env(fast_emulator),
        "QBO_RATE_WINDOW_SECONDS": str(WINDOW),
    }

    scale = multi_company.run_scale(
        emulator=fast_emulator,
        worker_env=env,
        rows=20,
        realms=(1, 2),
        pools=((1, 2),),
        window=WINDOW,
    )
    many = multi_company.run_many(
        emulator=fast_emulator,
        worker_env=env,
        companies=3,
        rows=5,
        threads=1,
        workers=1,
        concurrency=2,
        window=WINDOW,
    )

    assert [len(r.tenants) for r in scale] == [1, 2]
    assert all(r.settled and multi_company.aggregate_per_window(r) > 0 for r in scale)
    assert all(t.statuses == {"synced": 20} and t.duplicates == 0 for r in scale for t in r.tenants)
    assert "realms R" in multi_company.report_scale(scale)
    assert many.settled and len(many.tenants) == 3
    assert all(t.statuses == {"synced": 5} and t.duplicates == 0 for t in many.tenants)
    assert "all Synced within" in multi_company.report_many(many)
