"""`python -m staging.devstack`: the embedded default in one process tree.

Starts the two emulators, the web server, a Celery worker and Celery beat, prints where to
go, keeps them running (one that exits is started again, as docker-compose's restart policy
does), and stops everything it started on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from staging.worker_checks import rate_limit_budget_is_shared
from staging.worker_process import celery_worker_command

ROOT = Path(__file__).resolve().parent.parent


def worker_concurrency() -> int:
    """Pool processes of the worker. Two when they share each realm's QBO budget in Redis;
    one without Redis, where each process would spend a whole budget of its own and two
    would get QBO's 429s (staging/worker_checks.py). One is enough here: a sync lane holds
    its process for one chunk and never waits in it for budget (staging/sync/lanes.py)."""
    from django.conf import settings

    return 2 if rate_limit_budget_is_shared(settings.RATE_LIMIT_REDIS_URL) else 1


def _commands(web_port: str, var_dir: Path) -> list[tuple[str, list[str]]]:
    py = sys.executable
    return [
        (
            "qbo-emulator",
            [
                py,
                "-m",
                "qbo_client.emulator",
                "--port",
                "8765",
                "--seed",
                "demo",
                "--client-id",
                "emulator-client-id",
                "--client-secret",
                "emulator-client-secret",
                "--state",
                str(var_dir / "qbo-emulator.json"),
            ],
        ),
        (
            "linarc-emulator",
            [
                py,
                "-m",
                "linarc_client.emulator",
                "--port",
                "8766",
                "--api-key",
                "demo-linarc-key",
                "--projects",
                "250",
                "--seed",
                "7",
                "--state",
                str(var_dir / "linarc-emulator.json"),
            ],
        ),
        ("web", [py, "manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"]),
        ("worker", celery_worker_command(concurrency=worker_concurrency())),
        (
            "beat",
            [
                py,
                "-m",
                "celery",
                "-A",
                "staging",
                "beat",
                "-l",
                "info",
                "--schedule",
                str(var_dir / "celerybeat-schedule"),
            ],
        ),
    ]


Spawn = Callable[[list[str]], subprocess.Popen[bytes]]


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # set while it waits out its backoff
    quick_exits: int = 0  # exits in a row, each soon after it started
    restarts: int = 0


class Supervisor:
    """Keeps every child running. A child that exits is started again after a backoff that
    doubles with each exit in a row soon after a start (1 s, 2 s, 4 s … up to 30 s) and
    starts over once it has stayed up a minute. A worker can exit on its own (a broker
    restart did, staging/broker.py); what it held comes back to the new one (late acks on
    Redis, and the sync's reaper on any broker).
    A child that keeps exiting right after it starts (a port taken, a broken setting) is
    not a crash to ride out: ``check`` then says to stop everything."""

    def __init__(
        self,
        commands: list[tuple[str, list[str]]],
        *,
        spawn: Spawn,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        stable_seconds: float = 60.0,
        max_quick_exits: int = 5,
    ) -> None:
        self.children = [Child(name, command) for name, command in commands]
        self._spawn = spawn
        self._log = log
        self._clock = clock
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._stable = stable_seconds
        self._max_quick_exits = max_quick_exits

    def start(self, *, stagger_seconds: float = 0.0) -> None:
        for child in self.children:
            self._start(child)
            time.sleep(stagger_seconds)

    def _start(self, child: Child) -> None:
        child.process = self._spawn(child.command)
        child.started_at = self._clock()
        child.restart_at = None

    def check(self) -> str | None:
        """One round: restart the children whose backoff is over, notice the ones that
        exited. Returns why everything must stop, or None."""
        now = self._clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                    child.restarts += 1
                    self._log(f"{child.name} started again (restart {child.restarts}).")
                continue
            assert child.process is not None
            code = child.process.poll()
            if code is None:
                continue
            _kill_group(child.process)  # what it left behind, e.g. a dead worker's pool
            if now - child.started_at >= self._stable:
                child.quick_exits = 0
            child.quick_exits += 1
            if child.quick_exits > self._max_quick_exits:
                return (
                    f"{child.name} exited with code {code}, {child.quick_exits} times in a "
                    f"row within {self._stable:.0f} s of starting; stopping."
                )
            delay = min(self._max_backoff, self._backoff * 2 ** (child.quick_exits - 1))
            child.restart_at = now + delay
            self._log(f"{child.name} exited with code {code}; starting it again in {delay:g} s.")
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """Ask each main process to stop (Celery then stops its own pool), wait up to
        ``timeout``, then kill whatever is left of each process group."""
        # Not a child waiting out its backoff: its group is gone, and its pid may be reused.
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # Each child leads its own process group (start_new_session), so this reaches only it
    # and its descendants.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _spawner(env: Mapping[str, str]) -> Spawn:
    def spawn(command: list[str]) -> subprocess.Popen[bytes]:
        # Its own process group, so Ctrl-C reaches us once, and we stop the children.
        return subprocess.Popen(command, cwd=ROOT, env=dict(env), start_new_session=True)

    return spawn


def main() -> int:
    web_port = os.environ.get("WEB_PORT", "8000")
    var_dir = Path(os.environ.get("STAGING_VAR_DIR", ROOT / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    # The emulator sends the browser back to this server after "Connect to QuickBooks".
    env.setdefault(
        "QBO_REDIRECT_URI", f"http://127.0.0.1:{web_port}/portfolio/integration/erp/qbo/callback/"
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor = Supervisor(
        _commands(web_port, var_dir),
        spawn=_spawner(env),
        log=lambda line: print(line, flush=True),
    )
    supervisor.start(stagger_seconds=0.3)
    print(
        f"\n  Linarc staging is running at http://127.0.0.1:{web_port}/\n"
        "  Log in as admin / linarc-demo (also operator / viewer, same password).\n"
        "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    exit_code = 0
    while not stopping:
        reason = supervisor.check()
        if reason:
            print(reason, flush=True)
            exit_code = 1
            break
        time.sleep(0.5)
    supervisor.stop()
    print("Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
