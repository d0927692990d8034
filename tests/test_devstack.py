"""`make run`'s process tree (staging/devstack.py) and its worker (issue #13, items 6 and 9).

* Without Redis the worker runs one pool process, so each realm has one QBO budget: a real
  worker started with the devstack's command syncs 300 rows with QBO's limits on and gets
  no 429.
* Every child is supervised: one that exits is started again with a growing backoff, one
  that keeps exiting at start stops everything, Ctrl-C stops every child and its own
  children.
* A worker started some other way with several processes and no Redis says so in its log.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.thread import TaskPool as ThreadPool
from kombu import pools

from integrations.models import QboCustomer
from qbo_client.emulator import QboEmulator
from staging import devstack
from staging.celery import app
from staging.models import StagedProject, SyncStatus
from staging.sync.queue import projects_enqueue_sync
from staging.worker_checks import warn_if_rate_limit_budget_is_split
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, qbo_env, refresh_customers
from tests.fixtures.workers import ROOT, WorkerPool, wait_for, worker_env

# --- the worker's command line -------------------------------------------------------


def _worker_command(tmp_path: Path) -> list[str]:
    [command] = [c for name, c in devstack._commands("8000", tmp_path) if name == "worker"]
    return command


def _concurrency(command: list[str]) -> int:
    return int(command[command.index("--concurrency") + 1])


def test_without_redis_the_worker_runs_one_process(settings: Any, tmp_path: Path) -> None:
    settings.RATE_LIMIT_REDIS_URL = None
    assert _concurrency(_worker_command(tmp_path)) == 1
    settings.RATE_LIMIT_REDIS_URL = "memory://"  # in process memory too
    assert _concurrency(_worker_command(tmp_path)) == 1


def test_with_a_shared_limiter_the_worker_runs_two_processes(settings: Any, tmp_path: Path) -> None:
    settings.RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:6379/0"
    assert _concurrency(_worker_command(tmp_path)) == 2


# --- the warning of a worker started another way ---------------------------------------


def _consumer(pool_cls: type, concurrency: int) -> SimpleNamespace:
    """What worker_ready sends: the consumer, whose controller is the worker."""
    return SimpleNamespace(controller=SimpleNamespace(pool_cls=pool_cls, concurrency=concurrency))


@pytest.mark.parametrize(
    ("pool_cls", "concurrency", "redis_url", "warns"),
    [
        (PreforkPool, 4, None, True),
        (PreforkPool, 2, "memory://", True),
        (PreforkPool, 1, None, False),
        (PreforkPool, 4, "redis://127.0.0.1:6379/1", False),
        (ThreadPool, 8, None, False),  # threads share one process and its limiter
    ],
)
def test_a_worker_with_processes_that_split_the_budget_says_so(
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    pool_cls: type,
    concurrency: int,
    redis_url: str | None,
    warns: bool,
) -> None:
    settings.RATE_LIMIT_REDIS_URL = redis_url
    with caplog.at_level(logging.WARNING, logger="staging.worker_checks"):
        warn_if_rate_limit_budget_is_split(sender=_consumer(pool_cls, concurrency))
    warnings = [r.getMessage() for r in caplog.records if r.name == "staging.worker_checks"]
    assert bool(warnings) == warns
    if warns:
        assert f"{concurrency} pool processes" in warnings[0]
        assert "RATE_LIMIT_REDIS_URL" in warnings[0] and "--concurrency 1" in warnings[0]


# --- supervision ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


@pytest.fixture
def supervisors() -> Iterator[list[devstack.Supervisor]]:
    made: list[devstack.Supervisor] = []
    yield made
    for supervisor in made:
        supervisor.stop(timeout=5)


def _supervisor(
    made: list[devstack.Supervisor], commands: list[tuple[str, list[str]]], **options: Any
) -> tuple[devstack.Supervisor, Clock, list[str]]:
    clock, lines = Clock(), list[str]()
    supervisor = devstack.Supervisor(
        commands, spawn=_spawn, log=lines.append, clock=clock, **options
    )
    made.append(supervisor)
    supervisor.start()
    return supervisor, clock, lines


def _wait_exit(child: devstack.Child) -> None:
    assert child.process is not None
    child.process.wait(timeout=10)


def test_a_worker_that_exits_is_started_again_after_a_growing_backoff(
    supervisors: list[devstack.Supervisor],
) -> None:
    supervisor, clock, lines = _supervisor(
        supervisors,
        [
            ("worker", _python("raise SystemExit(3)")),
            ("web", _python("import time; time.sleep(60)")),
        ],
    )
    worker, web = supervisor.children
    first = worker.process
    _wait_exit(worker)
    assert supervisor.check() is None
    assert lines == ["worker exited with code 3; starting it again in 1 s."]
    clock.now = 0.5
    assert supervisor.check() is None and worker.process is first  # still backing off
    clock.now = 1.0
    assert supervisor.check() is None
    assert worker.process is not first and worker.restarts == 1
    assert lines[-1] == "worker started again (restart 1)."
    _wait_exit(worker)  # exits again at once: the wait doubles
    clock.now = 1.5
    supervisor.check()
    assert lines[-1] == "worker exited with code 3; starting it again in 2 s."
    assert web.restarts == 0 and web.process is not None and web.process.poll() is None


def test_the_backoff_starts_over_once_a_child_stayed_up(
    supervisors: list[devstack.Supervisor],
) -> None:
    supervisor, clock, lines = _supervisor(
        supervisors, [("beat", _python("raise SystemExit(1)"))], stable_seconds=60
    )
    [beat] = supervisor.children
    beat.quick_exits = 4  # it had crashed at start before
    _wait_exit(beat)
    clock.now = 61.0  # but this run lasted a minute
    assert supervisor.check() is None
    assert lines == ["beat exited with code 1; starting it again in 1 s."]


def test_a_child_that_keeps_exiting_at_start_stops_everything(
    supervisors: list[devstack.Supervisor],
) -> None:
    supervisor, clock, _ = _supervisor(
        supervisors, [("web", _python("raise SystemExit(2)"))], max_quick_exits=2
    )
    [web] = supervisor.children
    reason = None
    for _ in range(3):
        _wait_exit(web)
        reason = supervisor.check()
        if reason:
            break
        clock.now = web.restart_at or clock.now
        supervisor.check()
    assert reason == "web exited with code 2, 3 times in a row within 60 s of starting; stopping."
    assert web.restarts == 2


_LEAVES_A_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
{then}
"""


def _grandchild_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text(), timeout=10)
    return int(path.read_text())


def test_what_an_exited_child_left_running_is_killed_before_it_starts_again(
    supervisors: list[devstack.Supervisor], tmp_path: Path
) -> None:
    """A worker's main process that dies without stopping its pool (the OOM killer)."""
    pid_file = tmp_path / "pool.pid"
    script = _LEAVES_A_CHILD.format(then="raise SystemExit(9)")
    supervisor, _, _ = _supervisor(supervisors, [("worker", [*_python(script), str(pid_file)])])
    pool_pid = _grandchild_pid(pid_file)
    _wait_exit(supervisor.children[0])
    supervisor.check()
    wait_for(lambda: not _alive(pool_pid), timeout=5)


def test_stop_ends_every_child_and_what_it_started(
    supervisors: list[devstack.Supervisor], tmp_path: Path
) -> None:
    pid_file = tmp_path / "pool.pid"
    script = _LEAVES_A_CHILD.format(then="time.sleep(60)")
    supervisor, _, _ = _supervisor(
        supervisors,
        [
            ("worker", [*_python(script), str(pid_file)]),
            ("web", _python("import time; time.sleep(60)")),
        ],
    )
    pool_pid = _grandchild_pid(pid_file)
    supervisor.stop(timeout=5)
    for child in supervisor.children:
        assert child.process is not None and child.process.poll() is not None
    wait_for(lambda: not _alive(pool_pid), timeout=5)


_DEVSTACK = """
import sys
from staging import devstack

devstack._commands = lambda web_port, var_dir: [
    ("worker", [sys.executable, "-c", "import time; time.sleep(0.2); raise SystemExit(1)"]),
    ("web", [sys.executable, "-c", "import time; time.sleep(120)"]),
]
sys.exit(devstack.main())
"""


def test_make_run_restarts_a_worker_that_exits_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "devstack.log"
    with log_path.open("wb") as log:
        devstack_process = subprocess.Popen(
            _python(_DEVSTACK),
            cwd=ROOT,
            env={**os.environ, "STAGING_VAR_DIR": str(tmp_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "worker started again (restart 2)." in log_path.read_text(), timeout=30)
        devstack_process.send_signal(signal.SIGINT)
        assert devstack_process.wait(timeout=20) == 0
    finally:
        if devstack_process.poll() is None:
            devstack_process.kill()
    output = log_path.read_text()
    assert "worker exited with code 1; starting it again in 1 s." in output
    assert "worker exited with code 1; starting it again in 2 s." in output
    assert output.rstrip().endswith("Stopped.")
    assert "web exited" not in output


# --- the realm's budget on the embedded default, with a real worker --------------------

# With the sync's lanes a 30-row chunk costs a worker process about a second (the rows'
# writes), so 300 rows stay within QBO's limits even on two budgets: two processes without
# Redis sent 0 429s there too. What two budgets break is the batch window, 40 per window
# for the realm: 1,300 rows (44 batches) in 30-second windows got 2 429s from two processes
# and none from one. That size takes about a minute, so it runs on request
# (EMBEDDED_BUDGET_LARGE=1), like the reliability suite's large run.
LARGE = bool(os.environ.get("EMBEDDED_BUDGET_LARGE"))


@pytest.fixture
def embedded_broker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process and the worker on `make run`'s broker and limiter, whatever this run's
    environment names (CI names Redis): the filesystem transport in var/broker and each
    process's own in-memory QBO budget. Yields the worker's environment."""
    queue = f"test-budget-{uuid.uuid4().hex[:8]}"
    broker = settings.VAR_DIR / "broker"
    options = {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
        "store_processed": False,
    }
    for folder in ("queue", "processed", "control"):
        (broker / folder).mkdir(parents=True, exist_ok=True)
    saved = (
        app.conf.broker_url,
        app.conf.broker_transport,
        app.conf.broker_transport_options,
        app.conf.task_default_queue,
    )
    settings.RATE_LIMIT_REDIS_URL = None
    settings.CELERY_BROKER_URL = "filesystem://"
    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")
    for variable in ("RATE_LIMIT_REDIS_URL", "CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL"):
        monkeypatch.delenv(variable, raising=False)

    def point_celery_at(
        url: str, transport: str | None, transport_options: Any, default_queue: str
    ) -> None:
        pools.reset()  # forget pooled connections to the previous broker
        app._pool = None  # Celery has no public way to swap brokers at run time
        app.amqp._producer_pool = None
        app.conf.broker_url = url
        app.conf.broker_transport = transport  # a Redis broker's is staging/broker.py's
        app.conf.broker_transport_options = transport_options
        app.conf.task_default_queue = default_queue

    point_celery_at("filesystem://", None, options, queue)
    env = worker_env(queue)  # reads os.environ as patched above
    try:
        yield env
    finally:
        monkeypatch.undo()
        point_celery_at(*saved)


@pytest.mark.worker
@pytest.mark.parametrize(
    ("rows", "window_seconds"),
    [
        pytest.param(300, 60, id="300-rows"),
        pytest.param(1300, 30, id="1300-rows", marks=pytest.mark.slow),
    ],
)
def test_make_runs_worker_syncs_with_qbo_limits_on_and_gets_no_429(
    personas: Personas,
    qbo_emulator: QboEmulator,
    transactional_db: None,
    embedded_broker: dict[str, str],
    rows: int,
    window_seconds: int,
) -> None:
    """QBO's limits on the emulator (per realm: 10 requests a second, 500 requests and 40
    batches a window; QBO's window is a minute); the worker started as `make run` starts it
    without Redis, its limiter keeping the same window."""
    if rows > 300 and not LARGE:
        pytest.skip("larger size: set EMBEDDED_BUDGET_LARGE=1 to run it")
    connect_company(personas.company, personas.admin)
    refresh_customers(personas.company)
    parent = QboCustomer.objects.get(
        company=personas.company, display_name="Northgate Medical Partners"
    )
    projects = StagedProjectFactory.create_batch(
        rows, company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    concurrency = devstack.worker_concurrency()
    assert concurrency == 1
    pool = WorkerPool(
        queue=embedded_broker["CELERY_TASK_DEFAULT_QUEUE"], processes=[], log_paths=[]
    )
    qbo_emulator.core.throttle.configure(window_seconds=window_seconds)
    window = {"QBO_RATE_WINDOW_SECONDS": str(window_seconds)}
    pool.start_one({**embedded_broker, **qbo_env(qbo_emulator), **window}, concurrency=concurrency)
    try:
        wait_for(lambda: " ready." in pool.logs(), timeout=60, pool=pool)
        control(qbo_emulator, "POST", "counters/reset")
        started = time.monotonic()
        projects_enqueue_sync(
            company=personas.company,
            projects=StagedProject.objects.filter(pk__in=[p.pk for p in projects]),
            actor=personas.operator,
        )
        wait_for(
            lambda: not StagedProject.objects.filter(status=SyncStatus.QUEUED).exists(),
            timeout=180,
            pool=pool,
        )
        seconds = time.monotonic() - started
    finally:
        pool.stop()
    counters = control(qbo_emulator, "GET", "counters")
    statuses = set(StagedProject.objects.values_list("status", flat=True))
    assert statuses == {SyncStatus.SYNCED}, statuses
    names = {p.name for p in projects}
    jobs = [
        c for c in control(qbo_emulator, "GET", "state")["Customer"] if c["DisplayName"] in names
    ]
    assert len(jobs) == rows  # each exactly once
    assert counters["sent_429"] == 0, (counters["throttled_by_limit"], seconds)


def test_docker_compose_restarts_every_process_and_runs_migrate_until_it_succeeds() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("web", "worker", "beat"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "on-failure"  # not a loop once migrated
