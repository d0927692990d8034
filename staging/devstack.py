"""`python -m staging.devstack`: the embedded default in one process tree.

Starts the two emulators, the web server, a Celery worker and Celery beat, prints where to
go, and stops everything it started on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from staging.worker_process import celery_worker_command

ROOT = Path(__file__).resolve().parent.parent


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
        ("worker", celery_worker_command(concurrency=2)),
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


def main() -> int:
    web_port = os.environ.get("WEB_PORT", "8000")
    var_dir = Path(os.environ.get("STAGING_VAR_DIR", ROOT / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    # The emulator sends the browser back to this server after "Connect to QuickBooks".
    env.setdefault(
        "QBO_REDIRECT_URI", f"http://127.0.0.1:{web_port}/portfolio/integration/erp/qbo/callback/"
    )
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, command in _commands(web_port, var_dir):
        # Each child gets its own process group so Ctrl-C reaches us once, and we stop them.
        processes.append(
            (name, subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True))
        )
        time.sleep(0.3)
    print(
        f"\n  Linarc staging is running at http://127.0.0.1:{web_port}/\n"
        "  Log in as admin / linarc-demo (also operator / viewer, same password).\n"
        "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    exit_code = 0
    while not stopping:
        for name, process in processes:
            if process.poll() is not None:
                print(f"{name} exited with code {process.returncode}; stopping.", flush=True)
                stopping, exit_code = True, 1
                break
        time.sleep(0.5)
    # Ask each main process to stop (Celery then stops its own pool), then clean up its group.
    for _, process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 15
    for _, process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    print("Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
