"""Real Celery worker processes for the integration tests and the benchmarks.

Each worker is a separate ``celery worker`` process started with the project's own command
line (staging.worker_process), consuming the queues of one base queue name and writing its
output to a log file under var/. The tests' fixture (tests/fixtures/workers.py) and the
benchmarks (bench/common.py) both start, watch and stop them through :class:`WorkerPool`.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from staging.worker_process import celery_worker_command, spawn_logged

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WorkerPool:
    """Worker processes on ``queue``, started one by one; the n-th is named
    ``{node_prefix}{n}-{queue}@host`` and logs to ``var/{log_prefix}-{queue}-{n}.log``."""

    queue: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_paths: list[Path] = field(default_factory=list)
    node_prefix: str = "w"
    log_prefix: str = "test-worker"

    def start_one(
        self, env: Mapping[str, str], concurrency: int = 1, *, app: str = "staging"
    ) -> subprocess.Popen[bytes]:
        """One more worker (prefork, ``concurrency`` children)."""
        index = len(self.processes)
        log_path = ROOT / "var" / f"{self.log_prefix}-{self.queue}-{index}.log"
        command = celery_worker_command(
            concurrency=concurrency,
            queue=self.queue,
            name=f"{self.node_prefix}{index}-{self.queue}@%h",
            app=app,
            heartbeat=False,
        )
        process = spawn_logged(command, log_path=log_path, env=env)
        self.processes.append(process)
        self.log_paths.append(log_path)
        return process

    def start(
        self, env: Mapping[str, str], *, count: int, concurrency: int = 1, app: str = "staging"
    ) -> None:
        for _ in range(count):
            self.start_one(env, concurrency, app=app)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every worker has logged "ready" (it consumes from then on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(" ready." in self._text(path) for path in self.log_paths):
                return
            if any(process.poll() is not None for process in self.processes):
                raise RuntimeError(f"a worker exited early:\n{self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"workers not ready within {timeout}s:\n{self.logs()}")

    def logs(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of every worker's log."""
        return "\n".join(self._text(path)[-chars:] for path in self.log_paths if path.exists())

    def task_counts(self) -> dict[str, int]:
        """Messages the workers received so far, by task name (their ``-l info`` logs say
        "Task <name>[<id>] received" for each). Read before a :meth:`stop` that deletes
        the logs."""
        counts: dict[str, int] = {}
        for path in self.log_paths:
            for name in re.findall(r"Task ([\w.]+)\[[0-9a-f-]+\] received", self._text(path)):
                counts[name] = counts.get(name, 0) + 1
        return counts

    def stop(self, timeout: float = 15.0, *, delete_logs: bool = False) -> None:
        """SIGTERM (a warm shutdown: running tasks finish), SIGKILL after ``timeout``."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        if delete_logs:
            for path in self.log_paths:
                with contextlib.suppress(OSError):
                    path.unlink()

    @staticmethod
    def _text(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""
