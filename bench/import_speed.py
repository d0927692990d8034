"""Scenario 2: *Import All from Linarc* of 10,000 and 100,000 projects into PostgreSQL.

    .venv/bin/python -m bench.import_speed [--sizes 10000,100000] [--baseline-size 10000]

For each size, against the Linarc emulator (``hostile=False``) in this process:

1. the emulator alone: every page fetched raw (HTTP only) and through ``LinarcClient``
   (HTTP + JSON + record validation): the ceiling any import can reach;
2. the first Import All, in a child process (``staging.imports``:
   ``import_run_create`` + ``import_run_execute``, exactly what the Celery task runs);
3. a re-import with nothing changed; 4. a re-import with 1 % of the projects changed;
5. baseline (sizes ≤ ``--baseline-size``): a per-row ``update_or_create`` loop over the
   same records, in a child process too.

Each child reports its wall time, SQL statements (``connection.execute_wrapper``) and its own
peak RSS (VmHWM: ``getrusage``'s ru_maxrss would include the parent's RSS, see
``common.self_peak_rss_mb``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import common

SEED = 7
API_KEY = "bench-linarc-key"


# --- the child process ----------------------------------------------------------------------


def _child(args: argparse.Namespace) -> None:
    """Runs in the child: Django from the inherited environment, one measured operation."""
    import django

    django.setup()
    from integrations.models import Company

    rss_before = common.self_peak_rss_mb()
    company = Company.objects.get(pk=args.company_id)
    counter = common.QueryCounter()
    started = time.perf_counter()
    with counter.counting():
        run = _import_all if args.child == "import" else _update_or_create_loop
        result = run(company)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                **result,
                "seconds": seconds,
                "queries": counter.count,
                "rss_before_mb": rss_before,
                "peak_rss_mb": common.self_peak_rss_mb(),
            }
        )
    )


def _import_all(company: Any) -> dict[str, Any]:
    from staging.imports.pages import import_run_execute
    from staging.imports.runs import import_run_create
    from staging.models import RunKind

    run = import_run_create(company=company, kind=RunKind.IMPORT_ALL, actor=None)
    run = import_run_execute(run_id=run.pk)
    return {"state": run.state, "counts": run.counts, "error": run.error}


def _update_or_create_loop(company: Any) -> dict[str, Any]:
    """The straightforward way: one ``update_or_create`` per Linarc record."""
    from integrations.services.linarc import linarc_client_for
    from staging.models import StagedProject

    created = updated = 0
    with linarc_client_for(company=company) as client:
        for page in client.iter_pages(page_size=500):
            for record in page.records:
                _, was_created = StagedProject.objects.update_or_create(
                    company=company,
                    linarc_id=record.linarc_id,
                    defaults={
                        "number": record.number,
                        "name": record.name,
                        "project_status": record.status,
                        "start_date": record.start_date,
                        "end_date": record.end_date,
                        "client_name": record.client_name,
                        "address": record.address,
                        "source_payload": record.raw,
                        "source_hash": record.content_hash(),
                        "source_updated_at": record.updated_at,
                        "problems": list(record.problems),
                    },
                )
                created += was_created
                updated += not was_created
    return {"state": "done", "counts": {"created": created, "updated": updated}, "error": ""}


# --- the parent ------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    projects: int
    seconds: float
    per_second: float
    queries: int
    queries_per_1000: float
    peak_rss_mb: float
    rss_before_mb: float
    counts: dict[str, int] = field(default_factory=dict)
    state: str = ""


def run_child(
    kind: str,
    company_id: int,
    projects: int,
    name: str,
    env: dict[str, str] | None = None,
) -> Step:
    """Run one measured operation in a child process (``env``: its environment, by default
    this process's; the smoke tests pass their test database's URL)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.import_speed",
            "--child",
            kind,
            "--company-id",
            str(company_id),
        ],
        cwd=common.ROOT,
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{completed.stderr[-3000:]}")
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    if data.get("error"):
        raise RuntimeError(f"{name}: the import run failed: {data['error']}")
    return Step(
        name=name,
        projects=projects,
        seconds=round(data["seconds"], 3),
        per_second=round(projects / data["seconds"], 0),
        queries=data["queries"],
        queries_per_1000=round(data["queries"] * 1000 / max(1, projects), 1),
        peak_rss_mb=data["peak_rss_mb"],
        rss_before_mb=data["rss_before_mb"],
        counts={k: v for k, v in (data.get("counts") or {}).items() if v},
        state=data.get("state", ""),
    )


def emulator_speed(base_url: str, projects: int) -> dict[str, float]:
    """Projects per second the emulator serves alone: raw pages, and through the client."""
    import requests

    from linarc_client import LinarcClient

    def raw_pages() -> int:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        page, fetched = 1, 0
        while True:
            answer = session.get(
                f"{base_url}/api/v1/projects", params={"page": page, "page_size": 500}, timeout=30
            )
            answer.raise_for_status()
            body = answer.json()
            fetched += len(body["results"])
            if not body.get("next"):
                return fetched
            page += 1

    def client_pages() -> int:
        with LinarcClient(base_url, API_KEY) as client:
            return sum(len(p.records) for p in client.iter_pages(page_size=500))

    best: dict[str, float] = {}
    for _round in range(2):  # the first pass also warms the emulator's page cache
        for name, fetch in (("raw_per_second", raw_pages), ("client_per_second", client_pages)):
            started = time.perf_counter()
            assert fetch() == projects
            best[name] = max(best.get(name, 0.0), round(projects / (time.perf_counter() - started)))
    return best


def change_projects(emulator: Any, projects: int, fraction: float, round_: int = 1) -> int:
    """Rename ``fraction`` of the projects, spread evenly (ids are 100001, 100002, …)."""
    count = max(1, int(projects * fraction))
    step = projects // count
    for index in range(count):
        linarc_id = str(100001 + index * step)
        emulator.update_project(linarc_id, {"name": f"Renamed for the benchmark {round_}.{index}"})
    return count


def truncate_staging() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "TRUNCATE staging_changeevent, staging_stagedproject, staging_run "
                "RESTART IDENTITY CASCADE"
            )
        else:
            for table in ("staging_changeevent", "staging_stagedproject", "staging_run"):
                cursor.execute(f"DELETE FROM {table}")


def linarc_company(name: str, base_url: str) -> Any:
    from integrations.models import LinarcConnection

    company = common.company_create(name)
    LinarcConnection.objects.create(company=company, base_url=base_url, api_key=API_KEY)
    return company


def median_step(runs: list[Step]) -> Step:
    """One row for repeated runs of a step: the median speed, the largest peak RSS."""
    ordered = sorted(runs, key=lambda step: step.per_second)
    middle = ordered[len(ordered) // 2]
    return Step(
        **{
            **asdict(middle),
            "name": f"{middle.name} (median of {len(runs)})" if len(runs) > 1 else middle.name,
            "peak_rss_mb": max(step.peak_rss_mb for step in runs),
        }
    )


def run_size(
    projects: int,
    *,
    changed_fraction: float,
    baseline: bool,
    env: dict[str, str] | None = None,
    repeat: int = 3,
) -> dict[str, Any]:
    """The steps of one size, each run ``repeat`` times and reported as the median: the
    first import into emptied tables each time (the last one's rows are what the
    re-imports find); the baseline runs once."""
    from linarc_client.emulator import LinarcEmulator

    emulator = LinarcEmulator(api_key=API_KEY, projects=projects, seed=SEED, hostile=False)
    emulator.start()
    try:
        speed = emulator_speed(emulator.base_url, projects)
        company = linarc_company(f"Bench Import {projects}", emulator.base_url)
        firsts: list[Step] = []
        for _ in range(repeat):
            truncate_staging()
            firsts.append(run_child("import", company.pk, projects, "first Import All", env))
        steps = [median_step(firsts)]
        # No ANALYZE here: the import runs one itself once a run has written enough rows
        # the planner does not know of (a first import into an empty table).
        label = "re-import, nothing changed"
        steps.append(
            median_step(
                [run_child("import", company.pk, projects, label, env) for _ in range(repeat)]
            )
        )
        label = f"re-import, {changed_fraction:.0%} changed"
        runs: list[Step] = []
        for round_ in range(repeat):
            # Fresh edits before every run, so each one has the same share to write.
            change_projects(emulator, projects, changed_fraction, round_=round_)
            runs.append(run_child("import", company.pk, projects, label, env))
        steps.append(median_step(runs))
        if baseline:
            other = linarc_company(f"Bench Baseline {projects}", emulator.base_url)
            label = "baseline: update_or_create"
            steps.append(run_child("baseline", other.pk, projects, label, env))
    finally:
        emulator.stop()
    return {"projects": projects, "emulator": speed, "steps": [asdict(s) for s in steps]}


TARGETS = {"first Import All": 5000, "re-import, nothing changed": 20000}


def report(results: list[dict[str, Any]], info: dict[str, str]) -> str:
    lines = [f"Run: {common.machine_line(info)}\n"]
    rows = []
    for result in results:
        n = result["projects"]
        speed = result["emulator"]
        rows.append(
            [
                f"{n:,}",
                "emulator alone: raw pages / via LinarcClient",
                f"{speed['raw_per_second']:,.0f} / {speed['client_per_second']:,.0f}",
                "",
                "",
                "",
                "",
            ]
        )
        first = next(s for s in result["steps"] if s["name"].startswith("first Import All"))
        for step in result["steps"]:
            target = TARGETS.get(step["name"].split(" (median")[0])
            ratio = f"{step['per_second'] / speed['client_per_second']:.0%} of client"
            if target:
                ratio += (
                    f"; target {target:,}: {'met' if step['per_second'] >= target else 'missed'}"
                )
            if step["name"].startswith("baseline"):
                ratio = f"ours is {first['per_second'] / step['per_second']:.1f}× faster"
            rows.append(
                [
                    f"{n:,}",
                    step["name"],
                    f"{step['per_second']:,.0f}",
                    ratio,
                    f"{step['queries_per_1000']:g}",
                    f"{step['peak_rss_mb']:g} ({step['rss_before_mb']:g} at start)",
                    ", ".join(f"{k}: {v:,}" for k, v in step["counts"].items()),
                ]
            )
    lines.append(
        common.md_table(
            [
                "projects",
                "step",
                "projects/s",
                "ratio",
                "SQL per 1,000",
                "peak RSS MB",
                "counts",
            ],
            rows,
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--changed-fraction", type=float, default=0.01)
    parser.add_argument("--baseline-size", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each re-import")
    parser.add_argument("--database", default="bench_import")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", choices=["import", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--company-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    common.bench_setup(database=args.database)
    results = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(
                run_size(
                    size,
                    changed_fraction=args.changed_fraction,
                    baseline=size <= args.baseline_size,
                    repeat=args.repeat,
                )
            )
            print(json.dumps(results[-1], indent=1))
        info = common.machine_info()
    finally:
        common.bench_teardown(args.database, keep=args.keep_db)
    common.save_json("import_speed", {"machine": info, "results": results})
    text = report(results, info)
    print(text)
    if not args.no_write:
        common.write_section("import_speed", text)


if __name__ == "__main__":
    main()
