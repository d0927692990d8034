"""Scenario 7: the integration health page (ERP Integration → Health) at 1,000 and then
100,000 staged projects in one company.

    .venv/bin/python -m bench.health_page [--sizes 1000,100000] [--repeat 30] [--postgres]

Issue #16 wants the page cheap at 100,000 rows, since it polls every 10 s while open. One
company with a realistic mix (STATUS_MIX: mostly Synced, Failed rows of five kinds, Needs
Action of two, some Needs Sync and Queued) and a run history that grows with it (one run per
five rows, mostly scheduled pulls), first at the smallest size, then grown to each next one.
At each size, through Django's test client, ``--repeat`` requests after 3 warm-ups: p50/p95
server time, SQL statements and their summed time, and the slowest statement, of

* the health page (full page) and its HTMX partial (what the 10 s poll fetches);
* the baseline, in the same run: the QuickBooks connection tab, the same layout and
  middleware with a few one-row reads.

Reported as ratios (the page at N rows ÷ at the smallest size; the page ÷ the baseline at
the same size), never as a time to meet. SQLite by default (a throw-away file, like the
embedded default); ``--postgres`` runs on PostgreSQL in its own database (``bench_health``,
bench/README.md: the server from ``BENCH_PG_URL``, Redis db 7 flushed).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import common

HEALTH_URL = "/portfolio/integration/erp/health/"
BASELINE_URL = "/portfolio/integration/erp/qbo/"

# (status, failure_code, status_reason) per 100 rows: a company a year into the product.
STATUS_MIX: tuple[tuple[str, str, str, int], ...] = (
    ("synced", "", "", 78),
    ("needs_sync", "", "", 4),
    ("queued", "", "", 2),
    ("needs_action", "", "No QBO customer selected: choose the client in the QBO Customer "
     "column.", 6),
    ("needs_action", "6240", 'The name "{name}" is already used in QuickBooks by another '
     "record.", 2),
    ("failed", "", "QuickBooks did not answer after several tries (503).", 3),
    ("failed", "6000", "Business Validation Error: the billing address of {name} is longer "
     "than 41 characters.", 2),
    ("failed", "6190", "Invalid Company Status: the QuickBooks subscription has ended.", 1),
    ("failed", "3200", "AuthenticationFailed: reconnect QuickBooks.", 1),
    ("failed", "3001", "ThrottleExceeded: the request was throttled by QuickBooks.", 1),
)  # fmt: skip
# The failure kinds the page must list for that mix (staging/selectors/health.py).
KINDS = {
    "QuickBooks unavailable",
    "Refused by QuickBooks",
    "QuickBooks authorisation",
    "Throttled by QuickBooks",
    "No customer chosen",
    "Duplicate name in QuickBooks",
}
RUNS_PER_ROWS = 5  # one run per 5 staged rows: 20,000 runs at 100,000 rows
PLACES = ("Harbor Point", "Maple Ridge", "Cedar Falls", "Riverside", "Summit", "Lakeview")
BUILDINGS = ("Hotel", "Gym", "Clinic", "School", "Warehouse", "Library", "Parking Deck")
BATCH = 2000


# --- database ------------------------------------------------------------------------------


def sqlite_setup(path: Path) -> None:
    """Django on a fresh SQLite file with production settings (DEBUG off), migrated, static
    files collected (DEBUG off serves hashed names from the manifest). Call before importing
    modules that load Django models."""
    path.unlink(missing_ok=True)
    env = {"DATABASE_URL": f"sqlite:///{path}", **common.production_env(path.parent)}
    common.django_start(env, collectstatic=True)


# --- data ----------------------------------------------------------------------------------


def _mix_for(index: int) -> tuple[str, str, str]:
    slot = index % 100
    for status, code, reason, share in STATUS_MIX:
        if slot < share:
            return status, code, reason
        slot -= share
    raise AssertionError("STATUS_MIX must add up to 100")


def health_setup() -> tuple[Any, Any, list[Any]]:
    """A company with an admin, 60 QBO customers, QuickBooks connected, Linarc configured and
    a worker that just reported in; returns (company, user, customers)."""
    from django.utils import timezone

    from integrations.models import LinarcConnection, QboConnection, QboConnectionStatus
    from staging.models import WorkerHeartbeat

    now = timezone.now()
    company, user, customers = common.company_with_admin("Bench Health Co")
    QboConnection.objects.create(
        company=company,
        realm_id="9341453050",
        status=QboConnectionStatus.CONNECTED,
        connected_by=user,
        connected_at=now - timedelta(days=200),
        refreshed_at=now - timedelta(minutes=30),
        refresh_expires_at=now + timedelta(days=99),
        customers_refreshed_at=now - timedelta(hours=2),
    )
    LinarcConnection.objects.create(company=company, base_url="https://api.linarc.test")
    WorkerHeartbeat.objects.update_or_create(hostname="bench-worker", defaults={"seen_at": now})
    return company, user, customers


def stage_rows(company: Any, *, start: int, count: int, customers: list[Any]) -> None:
    """``count`` staged projects numbered from ``start`` (statuses from STATUS_MIX), and
    their share of the run history (every RUNS_PER_ROWS-th row adds a run)."""
    from django.utils import timezone

    from staging.models import Run, RunKind, RunState, StagedProject

    now = timezone.now()
    projects: list[StagedProject] = []
    runs: list[Run] = []
    for index in range(start, start + count):
        status, code, reason = _mix_for(index)
        name = f"{PLACES[index % len(PLACES)]} {BUILDINGS[index % len(BUILDINGS)]} {index}"
        no_customer = status == "needs_action" and not code
        synced = status == "synced"
        projects.append(
            StagedProject(
                company=company,
                linarc_id=str(100001 + index),
                number=f"P-{1001 + index}",
                name=name,
                project_status="Active",
                client_name=customers[index % len(customers)].display_name,
                source_hash=f"{index:064x}",
                qbo_customer=None if no_customer else customers[index % len(customers)],
                status=status,
                status_reason=reason.format(name=name),
                failure_code=code,
                qbo_record_id=str(5000 + index) if synced else "",
                last_synced_at=now - timedelta(minutes=index % 5000) if synced else None,
                queued_at=now - timedelta(seconds=index % 600) if status == "queued" else None,
            )
        )
        if index % RUNS_PER_ROWS == 0:
            # Mostly scheduled pulls (every 15 min), each tenth run a sync or an import.
            run_index = index // RUNS_PER_ROWS
            kind = (RunKind.SYNC, RunKind.IMPORT_NEW, RunKind.REFRESH_CUSTOMERS)[run_index % 3]
            runs.append(
                Run(
                    company=company,
                    kind=kind if run_index % 10 == 0 else RunKind.SCHEDULED_PULL,
                    state=RunState.FAILED if run_index % 97 == 0 else RunState.DONE,
                    total=30,
                    processed=30,
                    error="Linarc did not answer (timeout)." if run_index % 97 == 0 else "",
                    created_at=now - timedelta(minutes=15 * run_index),
                )
            )
        if len(projects) == BATCH:
            StagedProject.objects.bulk_create(projects)
            projects = []
    StagedProject.objects.bulk_create(projects)
    Run.objects.bulk_create(runs, batch_size=BATCH)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    rows: int
    p50_ms: float
    p95_ms: float
    queries: int
    sql_ms_p50: float
    status: int
    # Every statement of the request in the order it runs: (p50 ms, SQL).
    statements: list[tuple[float, str]]


class StatementTimer:
    """Each SQL statement of the default connection with its time (``execute_wrapper``):
    Django's own capture rounds to whole milliseconds, too coarse for these reads."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, float]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((sql, (time.perf_counter() - started) * 1000))


def measure_request(
    client: Any, name: str, url: str, *, rows: int, repeat: int, htmx: bool = False
) -> tuple[Timing, str]:
    """p50/p95 of ``repeat`` GETs after 3 warm-ups; returns the timing and the last body."""
    from django.db import connection

    headers = {"HX-Request": "true"} if htmx else {}
    for _warm in range(3):
        client.get(url, headers=headers)
    times: list[float] = []
    sql_times: list[float] = []
    by_position: dict[int, tuple[str, list[float]]] = {}
    queries = 0
    status = 0
    body = ""
    for _round in range(repeat):
        timer = StatementTimer()
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
        body = response.content.decode()
        queries = len(timer.statements)
        sql_times.append(sum(ms for _sql, ms in timer.statements))
        for position, (sql, ms) in enumerate(timer.statements):
            by_position.setdefault(position, (sql, []))[1].append(ms)
    statements = [
        (round(common.median(samples), 2), sql[:400]) for sql, samples in by_position.values()
    ]
    timing = Timing(
        name=name,
        rows=rows,
        p50_ms=round(common.percentile(times, 50), 1),
        p95_ms=round(common.percentile(times, 95), 1),
        queries=queries,
        sql_ms_p50=round(common.percentile(sql_times, 50), 1),
        status=status,
        statements=statements,
    )
    return timing, body


def measure_size(company: Any, user: Any, *, rows: int, repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client

    # What autovacuum (PostgreSQL) does soon after a bulk load, and what SQLite's planner
    # needs to know the indexes' selectivity.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE staging_stagedproject")
            cursor.execute("VACUUM ANALYZE staging_run")
        else:
            cursor.execute("ANALYZE")
    client = Client()
    client.force_login(user)
    page, body = measure_request(client, "health page", HEALTH_URL, rows=rows, repeat=repeat)
    poll, _ = measure_request(
        client, "health page, HTMX poll", HEALTH_URL, rows=rows, repeat=repeat, htmx=True
    )
    baseline, _ = measure_request(
        client, "baseline: QuickBooks connection tab", BASELINE_URL, rows=rows, repeat=repeat
    )
    return {
        "rows": rows,
        "kinds_listed": sorted(kind for kind in KINDS if kind in body),
        "timings": [asdict(t) for t in (page, poll, baseline)],
    }


# --- report ---------------------------------------------------------------------------------


def report(results: list[dict[str, Any]], info: dict[str, str], *, database: str) -> str:
    sizes = [r["rows"] for r in results]
    first, last = results[0], results[-1]
    header = ["request", *[f"{n:,} rows: p50 / p95 ms (SQL)" for n in sizes]]
    if len(results) > 1:
        header.append(f"p50 {sizes[-1]:,} ÷ {sizes[0]:,}")
    table = []
    for index, name in enumerate(t["name"] for t in first["timings"]):
        row = [name]
        for result in results:
            t = result["timings"][index]
            row.append(
                f"{t['p50_ms']} / {t['p95_ms']} ({t['queries']} q, {t['sql_ms_p50']} ms SQL)"
            )
        if len(results) > 1:
            growth = last["timings"][index]["p50_ms"] / first["timings"][index]["p50_ms"]
            row.append(f"{growth:.2f}×")
        table.append(row)
    vs_baseline = ", ".join(
        f"{r['timings'][0]['p50_ms'] / r['timings'][2]['p50_ms']:.2f}× at {r['rows']:,} rows"
        for r in results
    )
    text = (
        f"Run ({database}): {common.machine_line(info)}\n\n"
        f"One company, {sizes[-1]:,} staged rows at most ({_mix_line()}), one run per "
        f"{RUNS_PER_ROWS} rows (mostly scheduled pulls). Django's test client, "
        f"{first['timings'][0]['status']} responses, p50 / p95 over repeated requests after "
        "3 warm-ups; SQL = statements per request and their summed time (p50).\n\n"
    )
    text += common.md_table(header, table)
    text += (
        f"\n\nHealth page ÷ the QuickBooks connection tab (p50, same run): {vs_baseline}. "
        f"The health page's slowest statements (p50): {_slowest(results)}."
    )
    return text


def _slowest(results: list[dict[str, Any]], count: int = 2) -> str:
    """The ``count`` slowest statements of the health page at the largest size, each with
    its time at every size (the same position in the request: the page runs the same
    statements whatever the row count)."""
    last = results[-1]["timings"][0]["statements"]
    positions = sorted(range(len(last)), key=lambda i: last[i][0], reverse=True)[:count]
    parts = []
    for position in positions:
        times = " → ".join(
            f"{r['timings'][0]['statements'][position][0]} ms"
            for r in results
            if position < len(r["timings"][0]["statements"])
        )
        parts.append(f"`{_shorten(last[position][1])}` {times}")
    return "; ".join(parts)


def _mix_line() -> str:
    shares: dict[str, int] = {}
    for status, _code, _reason, share in STATUS_MIX:
        shares[status] = shares.get(status, 0) + share
    return ", ".join(f"{share} % {status.replace('_', ' ')}" for status, share in shares.items())


def _shorten(sql: str) -> str:
    text = " ".join(sql.split()).replace('"', "")
    return text if len(text) <= 110 else text[:107] + "…"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--database", default="bench_health")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-health-"))
    if args.postgres:
        common.bench_setup(database=args.database, collectstatic=True)
        database = "PostgreSQL"
    else:
        sqlite_setup(scratch / f"{args.database}.sqlite3")
        database = "SQLite"
    results = []
    try:
        company, user, customers = health_setup()
        staged = 0
        for size in sorted(int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            stage_rows(company, start=staged, count=size - staged, customers=customers)
            print(f"staged {size - staged} rows in {time.perf_counter() - started:.1f}s")
            staged = size
            results.append(measure_size(company, user, rows=size, repeat=args.repeat))
            print(results[-1])
        info = common.machine_info()
    finally:
        if args.postgres:
            common.bench_teardown(args.database, keep=args.keep_db)
        elif not args.keep_db:
            shutil.rmtree(scratch, ignore_errors=True)
    name = f"health_page-{database.lower()}"
    common.save_json(name, {"machine": info, "database": database, "results": results})
    text = report(results, info, database=database)
    print(text)
    if not args.no_write:
        common.write_section(name, text)


if __name__ == "__main__":
    main()
