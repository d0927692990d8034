"""Scenario 3: the Projects tab with 10,000 and then 100,000 staged rows in PostgreSQL.

    .venv/bin/python -m bench.projects_tab [--sizes 10000,100000] [--repeat 30]

At each size: server time and SQL statements of the list requests (first page, a status
filter, a search, a sort, page 500) with Django's test client (p50/p95 over ``--repeat``
requests), the same requests over HTTP against gunicorn on loopback with ``wrk`` (or a
small threaded Python client when wrk is missing), and Select All → Sync to QBO of the
Needs Sync chip (10,000 rows at 100,000; 1,000 at 10,000), whose queued rows are put back
after each try so every try does the same work. Nothing consumes the queued tasks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from bench import common

PROJECTS_URL = "/portfolio/integration/erp/projects/"
SYNC_URL = "/portfolio/integration/erp/projects/sync/"

# Status mix per 100 rows (a company well into its first year on the product).
STATUS_MIX = (
    ("needs_action", 25),
    ("needs_sync", 10),
    ("queued", 2),
    ("synced", 55),
    ("failed", 8),
)
PLACES = ("Harbor Point", "Maple Ridge", "Cedar Falls", "Riverside", "Summit", "Lakeview")
BUILDINGS = ("Hotel", "Gym", "Clinic", "School", "Warehouse", "Library", "Parking Deck")
WORKS = ("Expansion", "Renovation", "Addition", "Fit-Out", "Retrofit", "New Build")
PROJECT_STATUSES = ("Active", "Completed", "Pre-Construction", "Closed", "Bidding", "On Hold")

# name → query string of the list requests measured.
REQUESTS = {
    "first page": {},
    "status filter (Failed)": {"status": "failed"},
    "search ('harbor')": {"q": "harbor"},
    "search + status chip ('harbor', Failed)": {"q": "harbor", "status": "failed"},
    "search, selective ('P-1234')": {"q": "P-1234"},
    "sort (start date, desc)": {"sort": "-start_date"},
    "page 500": {"page": "500"},
    # Outside the list: two letters that match nothing have no trigram for the
    # index to look up, so PostgreSQL reads every row to find that out (docs/benchmarks.md).
    "search, 2 letters matching nothing ('zq')": {"q": "zq"},
}


# --- data -----------------------------------------------------------------------------------


def _status_for(index: int) -> str:
    slot = index % 100
    for status, share in STATUS_MIX:
        if slot < share:
            return status
        slot -= share
    raise AssertionError("STATUS_MIX must add up to 100")


def stage_rows(company: Any, *, start: int, count: int, customers: list[Any]) -> None:
    """``count`` staged projects numbered from ``start``, statuses from STATUS_MIX."""
    from staging.models import StagedProject

    today = date(2025, 6, 30)
    batch: list[StagedProject] = []
    for index in range(start, start + count):
        status = _status_for(index)
        # Half of the Needs Action rows have no customer yet; every other row has one.
        mapped = status != "needs_action" or index % 2 == 0
        customer = customers[index % len(customers)]
        begin = today - timedelta(days=index % 900)
        batch.append(
            StagedProject(
                company=company,
                linarc_id=str(100001 + index),
                number=f"P-{1001 + index}",
                name=(
                    f"{PLACES[index % len(PLACES)]} {BUILDINGS[index % len(BUILDINGS)]} "
                    f"{WORKS[index % len(WORKS)]} {index}"
                ),
                project_status=PROJECT_STATUSES[index % len(PROJECT_STATUSES)],
                start_date=begin,
                end_date=begin + timedelta(days=200) if index % 3 else None,
                client_name=customer.display_name,
                address={"line1": f"{index} Main St", "city": "Boise", "state": "ID"},
                source_payload={"id": str(100001 + index), "name": f"Project {index}"},
                source_hash=f"{index:064x}",
                qbo_customer=customer if mapped else None,
                status=status,
                status_reason="Choose a QBO customer"
                if status == "needs_action"
                else ("QuickBooks said no (6000)" if status == "failed" else ""),
                qbo_record_id=str(5000 + index) if status == "synced" else "",
            )
        )
        if len(batch) == 2000:
            StagedProject.objects.bulk_create(batch)
            batch = []
    if batch:
        StagedProject.objects.bulk_create(batch)


def tab_setup() -> tuple[Any, Any, list[Any]]:
    """A company with an admin and 60 QBO customers; returns (company, user, customers)."""
    return common.company_with_admin("Bench Projects Tab Co")


# --- in-process: Django's test client -------------------------------------------------------


@dataclass
class Timing:
    name: str
    rows: int
    p50_ms: float
    p95_ms: float
    queries: int
    sql_ms_p50: float
    status: int
    extra: dict[str, Any] = field(default_factory=dict)


def measure_request(
    client: Any, name: str, params: dict[str, str], *, rows: int, repeat: int
) -> Timing:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _warm in range(3):
        client.get(PROJECTS_URL, params)
    times: list[float] = []
    sql_times: list[float] = []
    queries = 0
    status = 0
    for _round in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(PROJECTS_URL, params)
            times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
        queries = len(captured.captured_queries)
        sql_times.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
    return Timing(
        name=name,
        rows=rows,
        p50_ms=round(common.percentile(times, 50), 1),
        p95_ms=round(common.percentile(times, 95), 1),
        queries=queries,
        sql_ms_p50=round(common.percentile(sql_times, 50), 1),
        status=status,
    )


def measure_select_all_sync(client: Any, company: Any, *, rows: int, repeat: int) -> Timing:
    """POST Select All (the Needs Sync chip) → Sync to QBO; put the rows back after each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from staging.models import ChangeEvent, EventKind, Run, RunKind, StagedProject

    chip = StagedProject.objects.filter(company=company, status="needs_sync")
    selected = chip.count()
    times: list[float] = []
    queries = 0
    status = 0
    for _round in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.post(
                SYNC_URL, {"select_all": "1", "status": "needs_sync"}, HTTP_HX_REQUEST="true"
            )
            times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
        queries = len(captured.captured_queries)
        run = Run.objects.filter(company=company, kind=RunKind.SYNC).latest("id")
        if run.total != selected:
            raise RuntimeError(f"queued {run.total} of {selected} selected rows")
        StagedProject.objects.filter(sync_run=run).update(
            status="needs_sync", sync_run=None, attempt_id=None, queued_at=None
        )
        ChangeEvent.objects.filter(project__company=company, kind=EventKind.QUEUED).delete()
        run.delete()
    return Timing(
        name="Select All (Needs Sync chip) → Sync to QBO",
        rows=rows,
        p50_ms=round(common.percentile(times, 50), 1),
        p95_ms=round(common.percentile(times, 95), 1),
        queries=queries,
        sql_ms_p50=0.0,
        status=status,
        extra={"selected": selected},
    )


# --- over HTTP: gunicorn + wrk -------------------------------------------------------------


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(workers: int, env: dict[str, str] | None = None) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "staging.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=common.ROOT,
        env=env if env is not None else dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):  # still booting
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


_WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {\\"p50\\": %d, \\"p95\\": %d, \\"requests\\": %d,
  \\"errors\\": %d, \\"non2xx\\": %d, \\"duration_us\\": %d}\\n",
    latency:percentile(50), latency:percentile(95), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration))
end
"""


def http_load(url: str, cookie: str, *, seconds: float, connections: int) -> dict[str, float]:
    """p50/p95 (ms) and requests/s for ``url``: wrk when installed, else Python threads."""
    wrk = shutil.which("wrk")
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(_WRK_SCRIPT.replace("\n  \\", " \\"))
        try:
            output = subprocess.run(
                [
                    wrk,
                    "-t1",
                    f"-c{connections}",
                    f"-d{seconds:g}s",
                    "-s",
                    script.name,
                    "-H",
                    f"Cookie: {cookie}",
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            os.unlink(script.name)
        line = next(x for x in output.splitlines() if x.startswith("WRKJSON"))
        data = json.loads(line.split(" ", 1)[1])
        # wrk counts a request still in flight when the time is up as a timeout: tolerate
        # those, never a non-2xx answer or a socket error.
        if data["non2xx"] or data["errors"] > connections:
            raise RuntimeError(f"wrk saw errors: {output}")
        return {
            "tool": "wrk",
            "p50_ms": round(data["p50"] / 1000, 1),
            "p95_ms": round(data["p95"] / 1000, 1),
            "requests_per_second": round(data["requests"] / (data["duration_us"] / 1e6), 1),
        }
    return _threaded_load(url, cookie, seconds=seconds, connections=connections)


def _threaded_load(url: str, cookie: str, *, seconds: float, connections: int) -> dict[str, Any]:
    import requests

    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        session.headers["Cookie"] = cookie
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(url, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "tool": "python threads",
        "p50_ms": round(common.percentile(latencies, 50), 1),
        "p95_ms": round(common.percentile(latencies, 95), 1),
        "requests_per_second": round(len(latencies) / seconds, 1),
    }


# --- the run -------------------------------------------------------------------------------


def measure_size(
    company: Any,
    user: Any,
    *,
    rows: int,
    repeat: int,
    http_seconds: float,
    sync_repeat: int,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    from urllib.parse import urlencode

    from django.db import connection
    from django.test import Client

    if connection.vendor == "postgresql":
        # What autovacuum does soon after a bulk load: statistics for the planner and a set
        # visibility map, without which the status counts cannot be index-only scans.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE staging_stagedproject")
    client = Client()
    client.force_login(user)
    timings = [
        measure_request(client, name, params, rows=rows, repeat=repeat)
        for name, params in REQUESTS.items()
    ]
    htmx = Client(headers={"HX-Request": "true"})
    htmx.force_login(user)
    timings.append(measure_request(htmx, "first page (HTMX partial)", {}, rows=rows, repeat=repeat))
    http: dict[str, dict[str, Any]] = {}
    if http_seconds > 0:
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        with gunicorn(workers=2, env=env) as base:
            for name, params in REQUESTS.items():
                query = f"?{urlencode(params)}" if params else ""
                http[name] = http_load(
                    f"{base}{PROJECTS_URL}{query}", cookie, seconds=http_seconds, connections=2
                )
    # Last: each try updates the Needs Sync rows twice (queued, then put back), which leaves
    # dead row versions in every index until autovacuum passes; the list requests above, in
    # process and over HTTP alike, read the table as it was after the VACUUM.
    timings.append(measure_select_all_sync(client, company, rows=rows, repeat=sync_repeat))
    return {"rows": rows, "client": [asdict(t) for t in timings], "http": http}


def report(results: list[dict[str, Any]], info: dict[str, str]) -> str:
    sizes = [r["rows"] for r in results]
    header = ["request", *[f"{n:,} rows: p50 / p95 ms (SQL)" for n in sizes]]
    if any(r["http"] for r in results):
        header += [f"{n:,} rows over HTTP: p50 / p95 ms" for n in sizes]
    names = [t["name"] for t in results[0]["client"]]
    rows = []
    for index, name in enumerate(names):
        row = [name]
        for result in results:
            t = result["client"][index]
            label = f"{t['p50_ms']} / {t['p95_ms']} ({t['queries']} q"
            label += f", {t['sql_ms_p50']} ms SQL)" if t["sql_ms_p50"] else ")"
            if t.get("extra", {}).get("selected"):
                label += f" — {t['extra']['selected']:,} queued"
            row.append(label)
        if any(r["http"] for r in results):
            for result in results:
                h = result["http"].get(name)
                row.append(f"{h['p50_ms']} / {h['p95_ms']}" if h else "")
        rows.append(row)
    tool = next((h["tool"] for r in results for h in r["http"].values()), "none")
    text = (
        f"Run: {common.machine_line(info)}\n\n"
        f"Django test client: {results[0]['client'][0]['status']} responses, medians over "
        "repeated requests after 3 warm-ups; SQL = statements per request and their summed "
        f"time. HTTP: gunicorn (2 sync workers) on loopback, load by {tool} with 2 "
        "connections.\n\n"
    )
    return text + common.md_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--sync-repeat", type=int, default=5)
    parser.add_argument("--http-seconds", type=float, default=8.0)
    parser.add_argument("--database", default="bench_tab")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    common.bench_setup(database=args.database, collectstatic=True)
    results = []
    try:
        company, user, customers = tab_setup()
        staged = 0
        for size in sorted(int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            stage_rows(company, start=staged, count=size - staged, customers=customers)
            print(f"staged {size - staged} rows in {time.perf_counter() - started:.1f}s")
            staged = size
            results.append(
                measure_size(
                    company,
                    user,
                    rows=size,
                    repeat=args.repeat,
                    http_seconds=args.http_seconds,
                    sync_repeat=args.sync_repeat,
                )
            )
            common.redis_flush()  # the sync tasks queued above (nothing consumes them)
            print(json.dumps(results[-1], indent=1))
        info = common.machine_info()
    finally:
        common.bench_teardown(args.database, keep=args.keep_db)
    common.save_json("projects_tab", {"machine": info, "results": results})
    text = report(results, info)
    print(text)
    if not args.no_write:
        common.write_section("projects_tab", text)


if __name__ == "__main__":
    main()
