"""The reliability harness: a private Redis, the QBO emulator, real Celery workers, the faults
the tests throw at them, and the audit that checks the promise afterwards.

The promise (docs/reliability.md): whatever fails — QBO, the network, a worker, the broker —
every project ends in QBO exactly once and its staging row says truthfully what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from django.utils import timezone

from integrations.models import Company, QboCustomer, Role
from qbo_client.emulator import QboEmulator
from staging.celery import app
from staging.models import ChangeEvent, EventKind, Run, RunState, StagedProject, SyncStatus
from staging.sync.queue import projects_enqueue_sync
from staging.sync.reaper import projects_requeue_stale
from tests.factories import CompanyFactory, MembershipFactory, StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, refresh_customers
from tests.fixtures.workers import ROOT, WorkerPool

REDIS_SERVER = shutil.which("redis-server")

# Compressed QBO time (qbo_client.ratelimit): the workers' limiter and the emulator's throttle
# both count 500 requests and 40 batches per 6 s and 10 requests per 0.1 s, and a 429 pauses
# the realm for 6 s instead of 60, so a CI run meets every limit without waiting minutes.
RATE_WINDOW_SECONDS = 6
# The claim lease of the workers (settings.SYNC_LEASE_SECONDS), short so the reaper hands a
# killed worker's rows to another one within the test's time.
LEASE_SECONDS = 8
REAP_EVERY_SECONDS = 1.0  # what beat's "requeue-stale-projects" entry does, only more often
WORKERS = 3
WORKER_CONCURRENCY = 4  # 12 pool processes against a cap of 10 in flight: the limiter must bind
EMULATOR_TIMEOUT_SECONDS = 2.0  # a chaos "timeout" holds the request this long, then hangs up

OUTCOME_KINDS = {
    EventKind.SYNCED: SyncStatus.SYNCED,
    EventKind.FAILED: SyncStatus.FAILED,
    EventKind.NEEDS_ACTION: SyncStatus.NEEDS_ACTION,
}
# One letter per event: every attempt starts with Queued or Retried, may be Re-queued after a
# lost worker any number of times, and ends in exactly one outcome.
_LETTERS = {
    EventKind.QUEUED: "Q",
    EventKind.RETRIED: "T",
    EventKind.REQUEUED: "R",
    EventKind.SYNCED: "S",
    EventKind.FAILED: "F",
    EventKind.NEEDS_ACTION: "N",
}
_STORY = re.compile(r"(?:[QT]R*[SFN])+")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of the suite's own on a free port, never the machine's shared one.

    No persistence: stopping it loses every queued message and every limiter key, which is
    what a broker crash does to the sync (the reaper must bring the rows back).
    """

    def __init__(self, directory: Path) -> None:
        assert REDIS_SERVER is not None
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"private redis-server did not start:\n{log}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for child in children for d in _descendants(child)]


def sigkill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and its pool processes at once, as when its machine dies: no warm
    shutdown, no ack, no message handed back to the broker."""
    for pid in [process.pid, *_descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


@dataclass
class KilledWorker:
    index: int
    at: datetime
    still_queued: list[int]  # rows its sync tasks held, not yet written back when it died


@dataclass
class Stack:
    """Everything a reliability test drives: emulator, broker, workers, the company."""

    emulator: QboEmulator
    redis: PrivateRedis
    pool: WorkerPool
    company: Company
    actor: Any
    worker_env: dict[str, str]
    killed: list[KilledWorker] = field(default_factory=list)
    # Workers that exited on their own and were started again, as a process supervisor
    # (docker-compose's restart policy, systemd) does in production.
    revived: list[int] = field(default_factory=list)

    # --- the QBO emulator ---
    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        return control(self.emulator, method, path, **kwargs)

    def counters(self) -> dict[str, Any]:
        return dict(self.control("GET", "counters"))

    def parent_customers(self, count: int) -> list[QboCustomer]:
        return list(
            QboCustomer.objects.filter(
                company=self.company, is_job=False, active=True, parent_qbo_id=""
            ).order_by("qbo_id")[:count]
        )

    # --- workers ---
    def start_worker(self) -> subprocess.Popen[bytes]:
        return self.pool.start_one(self.worker_env, concurrency=WORKER_CONCURRENCY)

    def live_workers(self) -> list[int]:
        return [i for i, p in enumerate(self.pool.processes) if p.poll() is None]

    def node_index(self, node: str) -> int | None:
        # WorkerPool names its workers "w{index}-{queue}@host".
        match = re.match(r"w(\d+)-", node)
        return int(match.group(1)) if match else None

    def busy_workers(self) -> dict[int, list[int]]:
        """Live workers running a sync task right now, with the rows of those tasks."""
        with contextlib.suppress(Exception):  # the broker may be down: nobody is "busy" then
            replies = app.control.inspect(timeout=1.0).active() or {}
            busy: dict[int, list[int]] = {}
            for node, tasks in replies.items():
                index = self.node_index(node)
                if index is None or self.pool.processes[index].poll() is not None:
                    continue
                # A lane's message names its company, not its rows: the rows it holds are
                # the company's claimed ones (shared by its lanes; a kill takes some of them).
                companies = [
                    (task.get("kwargs") or {}).get("company_id")
                    for task in tasks
                    if task.get("name") == "staging.sync_lane"
                ]
                rows = list(
                    StagedProject.objects.filter(
                        company_id__in=[c for c in companies if c is not None],
                        status=SyncStatus.QUEUED,
                        lease_id__isnull=False,
                    ).values_list("pk", flat=True)
                )
                if rows:
                    busy[index] = rows
            return busy
        return {}

    def revive_exited_workers(self) -> int:
        """Start a replacement for every worker that exited without being killed by the
        test. A broker restart can crash a worker (kombu's Redis transport fails restoring
        unacknowledged messages with "'NoneType' object has no attribute 'hostname'");
        production's supervisor restarts it, and so does this."""
        killed = {k.index for k in self.killed}
        exited = [
            index
            for index, process in enumerate(self.pool.processes)
            if process.poll() is not None and index not in killed and index not in self.revived
        ]
        for index in exited:
            self.revived.append(index)
            self.start_worker()
        return len(exited)

    def kill_busy_worker(self) -> KilledWorker | None:
        """SIGKILL a worker in the middle of a sync task (it holds rows not yet written
        back) and start a replacement. None when no worker is mid-task right now."""
        holding = {
            index: list(
                StagedProject.objects.filter(
                    pk__in=rows, status=SyncStatus.QUEUED, leased_until__gt=timezone.now()
                ).values_list("pk", flat=True)
            )
            for index, rows in self.busy_workers().items()
        }
        holding = {index: rows for index, rows in holding.items() if rows}
        if not holding:
            return None
        index = max(holding, key=lambda i: len(holding[i]))
        sigkill_tree(self.pool.processes[index])
        killed = KilledWorker(
            index=index,
            at=timezone.now(),
            still_queued=list(
                StagedProject.objects.filter(
                    pk__in=holding[index], status=SyncStatus.QUEUED
                ).values_list("pk", flat=True)
            ),
        )
        self.killed.append(killed)
        self.start_worker()
        return killed


def enqueue_in_selections(stack: Stack, project_ids: list[int], sizes: Iterable[int]) -> list[int]:
    """Click "Sync to QBO" once per selection, as people do page by page."""
    ids = list(project_ids)
    start = 0
    for size in sizes:
        chunk = ids[start : start + size]
        if not chunk:
            break
        summary = projects_enqueue_sync(
            company=stack.company,
            projects=StagedProject.objects.filter(pk__in=chunk),
            actor=stack.actor,
        )
        assert summary.queued == len(chunk), summary.describe()
        start += size
    assert start >= len(ids), "selection sizes must cover every project"
    return ids


@dataclass
class Disruption:
    """One fault the drive loop fires once ``when(progress, elapsed)`` holds."""

    name: str
    when: Callable[[float, float], bool]
    fire: Callable[[], bool]  # False: could not fire yet (e.g. no worker busy), try again
    fired_at: float | None = None


@dataclass
class DriveResult:
    seconds: float
    reaped: int
    fired: dict[str, float]


def drive_until_settled(
    stack: Stack,
    project_ids: list[int],
    *,
    timeout: float,
    disruptions: list[Disruption] | None = None,
) -> DriveResult:
    """Poll until no selected row is Queued, firing disruptions and running the reaper.

    The reaper call is what beat would do every minute; a row stuck in Queued past its lease
    is its job. Fails with the stuck rows and the worker logs after ``timeout``.
    """
    disruptions = disruptions or []
    started = time.monotonic()
    next_reap = started
    reaped = 0
    total = len(project_ids)
    while True:
        now = time.monotonic()
        queued = StagedProject.objects.filter(pk__in=project_ids, status=SyncStatus.QUEUED)
        pending = queued.count()
        progress = 1 - pending / total
        for disruption in disruptions:
            due = disruption.fired_at is None and disruption.when(progress, now - started)
            if due and disruption.fire():
                disruption.fired_at = round(time.monotonic() - started, 2)
        if now >= next_reap:
            with contextlib.suppress(Exception):  # broker down: the next round re-dispatches
                reaped += len(projects_requeue_stale())
            next_reap = now + REAP_EVERY_SECONDS
            stack.revive_exited_workers()
        if not pending and all(d.fired_at is not None for d in disruptions):
            break
        if now - started > timeout:
            stuck = list(queued.values("pk", "leased_until", "queued_at", "attempts")[:20])
            unfired = [d.name for d in disruptions if d.fired_at is None]
            raise AssertionError(
                f"{pending} of {total} rows still Queued after {timeout}s "
                f"(unfired disruptions: {unfired}); first ones: {stuck}\n{stack.pool.logs()}"
            )
        time.sleep(0.2)
    return DriveResult(
        seconds=round(time.monotonic() - started, 1),
        reaped=reaped,
        fired={d.name: d.fired_at for d in disruptions if d.fired_at is not None},
    )


# --- the audit ---------------------------------------------------------------------------


@dataclass
class Audit:
    projects: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    jobs_in_qbo: int = 0
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    untruthful: list[str] = field(default_factory=list)
    broken_stories: list[str] = field(default_factory=list)
    unfinished_runs: list[str] = field(default_factory=list)
    requeued_rows: int = 0

    @property
    def problems(self) -> list[str]:
        found = []
        for name in (
            "duplicates",
            "missing",
            "strays",
            "stuck",
            "untruthful",
            "broken_stories",
            "unfinished_runs",
        ):
            values = getattr(self, name)
            if values:
                found.append(f"{name} ({len(values)}): {values[:10]}")
        return found


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()  # QBO's DisplayName uniqueness key


def audit_projects(stack: Stack, project_ids: list[int], *, realm_id: str | None = None) -> Audit:
    """Check every selected row against QBO's state and its own Change History. The rows
    belong to one realm: ``realm_id``, or the emulator's default one."""
    result = Audit(projects=len(project_ids))
    rows = list(StagedProject.objects.filter(pk__in=project_ids).select_related("qbo_customer"))
    assert len(rows) == len(project_ids), "a staged row disappeared"
    result.statuses = dict(Counter(r.status for r in rows))
    state = stack.control("GET", "state", params={"realm_id": realm_id} if realm_id else None)
    jobs_by_name: dict[str, list[dict[str, Any]]] = {}
    for customer in state["Customer"]:
        jobs_by_name.setdefault(_norm(customer["DisplayName"]), []).append(customer)

    events: dict[int, list[ChangeEvent]] = {}
    for event in ChangeEvent.objects.filter(project_id__in=project_ids).order_by("id"):
        events.setdefault(event.project_id, []).append(event)

    ours = set()
    for row in rows:
        assert row.qbo_customer is not None
        name = row.qbo_display_name or row.name
        holders = jobs_by_name.get(_norm(name), [])
        mine = [
            c
            for c in holders
            if c.get("Job") and (c.get("ParentRef") or {}).get("value") == row.qbo_customer.qbo_id
        ]
        if mine:
            ours.add(_norm(name))
        if len(mine) > 1:
            result.duplicates.append(name)
        if row.status == SyncStatus.QUEUED:
            result.stuck.append(row.pk)
        elif row.status == SyncStatus.SYNCED:
            if len(mine) != 1 or mine[0]["Id"] != row.qbo_record_id:
                result.missing.append(f"{row.pk} {name!r} id={row.qbo_record_id} qbo={mine}")
            if not row.last_request or not row.last_response:
                result.untruthful.append(f"{row.pk}: Synced without the exchange recorded")
        elif not row.status_reason:
            result.untruthful.append(f"{row.pk}: {row.status} without a reason")
        story = events.get(row.pk, [])
        letters = "".join(_LETTERS.get(EventKind(e.kind), "?") for e in story)
        if not _STORY.fullmatch(letters):
            result.broken_stories.append(f"{row.pk}: {letters}")
        else:
            last = story[-1]
            if OUTCOME_KINDS[EventKind(last.kind)] != row.status:
                result.broken_stories.append(f"{row.pk}: last event {last.kind}, row {row.status}")
            elif row.status == SyncStatus.SYNCED and last.details.get("qbo_record_id") != (
                row.qbo_record_id
            ):
                result.untruthful.append(f"{row.pk}: history names another QBO record")
        if "R" in letters:
            result.requeued_rows += 1
    # A job under one of our parents with one of our names that no Synced row owns: created
    # in QBO but not recorded (a lost row), unless the row truthfully says it failed.
    parents = {r.qbo_customer.qbo_id for r in rows if r.qbo_customer}
    synced_names = {_norm(r.qbo_display_name) for r in rows if r.status == SyncStatus.SYNCED}
    for key in ours - synced_names:
        result.strays.append(key)
    # The progress bars: every sync run of these rows is done and counted them all.
    for run in Run.objects.filter(projects__pk__in=project_ids).distinct():
        if run.state != RunState.DONE or run.processed != run.total:
            result.unfinished_runs.append(f"run {run.pk}: {run.state} {run.processed}/{run.total}")
    result.jobs_in_qbo = sum(
        1
        for customers in jobs_by_name.values()
        for c in customers
        if c.get("Job")
        and (c.get("ParentRef") or {}).get("value") in parents
        and _norm(c["DisplayName"]) in ours
    )
    return result


def write_report(name: str, report: dict[str, Any]) -> Path:
    path = ROOT / "var" / f"reliability-{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def second_company(stack: Stack, realm_id: str) -> tuple[Company, Any]:
    """Another company of the platform, connected to its own realm in the same emulator."""
    stack.control("POST", "companies", json={"realm_id": realm_id, "seed": "demo"})
    company = CompanyFactory(name=f"Second Co {realm_id[-4:]}")
    admin = MembershipFactory(company=company, role=Role.ADMIN).user
    connect_company(company, admin, realm_id=realm_id)
    refresh_customers(company)
    return company, admin


def mapped_rows(company: Company, count: int, prefix: str) -> list[int]:
    """Mapped Needs Sync rows of a company, over four of its clients."""
    parents = list(
        QboCustomer.objects.filter(
            company=company, is_job=False, active=True, parent_qbo_id=""
        ).order_by("qbo_id")[:4]
    )
    return [
        StagedProjectFactory(
            company=company,
            qbo_customer=parents[i % len(parents)],
            status=SyncStatus.NEEDS_SYNC,
            name=f"{prefix} Job {i:04d}",
            number=f"RR-{i:04d}",
        ).pk
        for i in range(count)
    ]
