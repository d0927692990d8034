"""The fault-injection run at a larger size, and its figures for docs/reliability.md.

    .venv/bin/python -m bench.reliability_large [--projects 500] [--postgres]

Runs ``tests/reliability`` (the ``slow`` variant of the storm test) through pytest with
``RELIABILITY_PROJECTS`` set, then prints the figures the test wrote to
``var/reliability-storm-large.json``: projects synced, faults injected by kind (the QBO
emulator's ``faults_injected`` counters), workers killed, broker restarts, duplicates, rows
lost and the 429s QuickBooks sent. ``--postgres`` runs on PostgreSQL (what CI uses) instead
of the embedded SQLite default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "var" / "reliability-storm-large.json"
PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def run(projects: int, postgres: bool) -> dict[str, Any]:
    env = {**os.environ, "RELIABILITY_PROJECTS": str(projects)}
    if postgres:
        env["DATABASE_URL"] = env.get("DATABASE_URL") or PG_URL
    REPORT.unlink(missing_ok=True)
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/reliability/test_fault_injection.py",
        "-m",
        "slow",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=1800",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if result.returncode != 0 or not REPORT.exists():
        raise SystemExit(f"the reliability run failed (exit {result.returncode})")
    report: dict[str, Any] = json.loads(REPORT.read_text())
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["database"] = "PostgreSQL" if postgres else "SQLite"
    return report


def figures(report: dict[str, Any]) -> str:
    audit, counters = report["audit"], report["counters"]
    statuses = audit["statuses"]
    faults = counters["faults_injected"]
    lost = len(audit["stuck"]) + len(audit["missing"]) + len(audit["strays"])
    rows = [
        ("database", report["database"]),
        ("projects selected", report["projects"]),
        ("synced / needs action / failed", "{} / {} / {}".format(
            statuses.get("synced", 0), statuses.get("needs_action", 0), statuses.get("failed", 0)
        )),
        ("faults injected by kind", ", ".join(f"{k}: {v}" for k, v in sorted(faults.items()))),
        ("responses replayed by requestid", counters["replays"]),
        ("connections dropped by the emulator", counters["dropped_connections"]),
        ("workers SIGKILLed mid-task", report["workers_killed"]),
        ("broker (Redis) restarts", report["redis_restarts"]),
        ("rows re-queued by the reaper", audit["requeued_rows"]),
        ("429s received", counters["sent_429"]),
        ("requests over QBO's own limits (throttled)", counters["throttled"]),
        ("duplicates found", len(audit["duplicates"])),
        ("rows lost (stuck, missing, or in QBO but not recorded)", lost),
        ("broken histories", len(audit["broken_stories"])),
        ("sync time (first click to last row settled)", f"{report['drive']['seconds']} s"),
        ("whole run incl. worker start-up", f"{report['wall_seconds']} s"),
    ]  # fmt: skip
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    print(figures(run(args.projects, args.postgres)))


if __name__ == "__main__":
    main()
