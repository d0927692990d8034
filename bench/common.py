"""Shared plumbing of the benchmarks: a throw-away PostgreSQL database and Redis db, Django set
up inside the script, real Celery worker processes, the QBO connection through the emulator's
real OAuth flow, peak-RSS readings, percentiles, and the results file.

Nothing here is imported by the application. The scenario modules call :func:`bench_setup`
*before* importing anything that touches Django models; the smoke tests
(``tests/bench/``) skip it and run the scenarios' ``run_*`` functions inside pytest-django's
already configured test database.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.workers import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks.md"

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")

# The OAuth app the benchmarks' QBO emulators know (any values do: the emulator is local).
QBO_CLIENT_ID = "bench-client-id"
QBO_CLIENT_SECRET = "bench-client-secret"
QBO_REDIRECT_URI = "http://127.0.0.1:9/callback"


# --- database, broker, Django ---------------------------------------------------------------


def _pg_admin() -> Any:
    import psycopg2

    connection = psycopg2.connect(f"{PG_URL}/postgres")
    connection.autocommit = True
    return connection


def pg_create_database(name: str) -> str:
    """Drop and create ``name``; returns its DATABASE_URL."""
    if not re.fullmatch(r"bench_[a-z0-9_]+", name):
        raise ValueError("bench databases are named bench_<something> (never touch others)")
    pg_drop_database(name)
    with contextlib.closing(_pg_admin()) as connection, connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_URL}/{name}"


def pg_drop_database(name: str) -> None:
    if not re.fullmatch(r"bench_[a-z0-9_]+", name):
        raise ValueError("bench databases are named bench_<something> (never touch others)")
    with contextlib.closing(_pg_admin()) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def redis_flush(url: str = REDIS_URL) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def bench_setup(
    *, database: str, extra_env: Mapping[str, str] | None = None, collectstatic: bool = False
) -> dict[str, str]:
    """Create the bench database, flush the bench Redis db, point Django at both, migrate.

    Returns the environment worker processes need to share the same database and broker.
    Call before importing modules that load Django models.
    """
    database_url = pg_create_database(database)
    redis_flush()
    var_dir = Path(tempfile.gettempdir()) / f"bench-var-{database}"
    var_dir.mkdir(exist_ok=True)
    env = {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": REDIS_URL,
        "RATE_LIMIT_REDIS_URL": REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
        "PYTHONUNBUFFERED": "1",
        **production_env(var_dir),
        **(extra_env or {}),
    }
    django_start(env, collectstatic=collectstatic)
    return {**os.environ, **env}


def production_env(var_dir: Path) -> dict[str, str]:
    """Production settings for a bench process, with fresh secrets, the emulators' QBO app
    and ``var_dir`` for the product's files."""
    return {
        "DJANGO_SETTINGS_MODULE": "staging.settings",
        "LOG_LEVEL": "WARNING",
        # Production settings: with DEBUG on, Django keeps every SQL statement of a process
        # in memory (a bulk INSERT of 500 rows is ~0.5 MB of text) and costs CPU per query.
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "QBO_CLIENT_ID": QBO_CLIENT_ID,
        "QBO_CLIENT_SECRET": QBO_CLIENT_SECRET,
        "STAGING_VAR_DIR": str(var_dir),
        # DEBUG off refuses loopback QBO/Linarc URLs (netguard); the emulators are local.
        "OUTBOUND_ALLOW_PRIVATE_HOSTS": "1",
    }


def django_start(env: Mapping[str, str], *, collectstatic: bool = False) -> None:
    """Point this process at ``env``, set Django up and migrate."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if collectstatic:  # DEBUG off serves hashed names from the manifest
        call_command("collectstatic", verbosity=0, interactive=False)


def bench_teardown(database: str, *, keep: bool = False) -> None:
    from django.db import connections

    connections.close_all()
    if not keep:
        pg_drop_database(database)
    redis_flush()
    var_dir = Path(tempfile.gettempdir()) / f"bench-var-{database}"
    if not keep and os.environ.get("STAGING_VAR_DIR") == str(var_dir):
        shutil.rmtree(var_dir, ignore_errors=True)


# --- companies and the QBO connection ------------------------------------------------------


def company_create(name: str) -> Any:
    from integrations.models import Company, SyncRules

    company = Company.objects.create(name=name, slug=f"bench-{uuid.uuid4().hex[:10]}")
    SyncRules.objects.get_or_create(company=company)
    return company


def company_with_admin(name: str, *, customers: int = 60) -> tuple[Any, Any, list[Any]]:
    """A company with an admin and ``customers`` QBO customers in its cache; returns
    (company, user, customers)."""
    from django.contrib.auth import get_user_model

    from integrations.models import Membership, QboCustomer, Role

    company = company_create(name)
    user = get_user_model().objects.create_user(
        username=f"bench-admin-{company.pk}", password="bench-password-123"
    )
    Membership.objects.create(user=user, company=company, role=Role.ADMIN)
    cached = QboCustomer.objects.bulk_create(
        [
            QboCustomer(
                company=company,
                qbo_id=str(100 + i),
                display_name=f"Client {i:02d} Holdings",
                search_name=f"client {i:02d} holdings",
            )
            for i in range(customers)
        ]
    )
    return company, user, cached


def qbo_connect(company: Any, *, realm_id: str | None = None) -> Any:
    """Connect ``company`` to the emulator the settings point at, through the real OAuth
    redirect, then fill the customer cache (in this process; nothing is enqueued).

    ``realm_id`` picks another QBO company of the same emulator (one made with
    :func:`qbo_realm_add`; the emulator's ``realm_id`` authorize extension)."""
    import requests

    from integrations.services.qbo_connection import qbo_connect_finish, qbo_connect_start
    from staging.models import Run, RunKind
    from staging.services.qbo_customer_refresh import qbo_customers_refresh

    session: dict[str, Any] = {}
    authorize_url = qbo_connect_start(company=company, session=session)
    if realm_id is not None:
        authorize_url += ("&" if "?" in authorize_url else "?") + f"realm_id={realm_id}"
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    if answer.status_code not in (302, 303):
        raise RuntimeError(f"authorize failed: {answer.status_code} {answer.text[:200]}")
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    connection = qbo_connect_finish(
        company=company,
        actor=None,
        session=session,
        state=query["state"][0],
        code=query["code"][0],
        realm_id=query["realmId"][0],
    )
    run = Run.objects.create(company=company, kind=RunKind.REFRESH_CUSTOMERS)
    qbo_customers_refresh(run_id=run.pk)
    return connection


def qbo_realm_add(emulator: Any, realm_id: str, *, name: str, seed: str = "demo") -> str:
    """One more QBO company (realm) in the emulator, with its own data and its own
    throttle windows (the emulator throttles per realm). Works with :class:`QboEmulatorProcess`
    and the in-process ``QboEmulator`` alike (control API)."""
    requests_control(
        emulator,
        "POST",
        "companies",
        json={"realm_id": realm_id, "seed": seed, "company_name": name},
    )
    return realm_id


def qbo_settings_env(emulator: Any) -> dict[str, str]:
    return {
        "QBO_ENVIRONMENT": emulator.discovery_url,
        "QBO_API_BASE_URL": emulator.api_base_url,
        "QBO_CLIENT_ID": QBO_CLIENT_ID,
        "QBO_CLIENT_SECRET": QBO_CLIENT_SECRET,
        "QBO_REDIRECT_URI": QBO_REDIRECT_URI,
    }


# --- Celery workers -----------------------------------------------------------------------


class Workers(WorkerPool):
    """The benchmarks' workers (devtools.workers), with what the benchmarks measure of them."""

    def peak_rss_mb(self) -> list[float]:
        """Peak RSS (VmHWM) of every process of every worker tree: the main process and its
        pool children. Read while they still run."""
        return [round(kb / 1024, 1) for p in self.processes for kb in tree_peak_rss_kb(p.pid)]

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by every process of every worker tree."""
        return sum(tree_cpu_seconds(p.pid) for p in self.processes)


@contextlib.contextmanager
def running_workers(
    env: Mapping[str, str], *, count: int, concurrency: int = 1, app: str = "staging"
) -> Iterator[Workers]:
    """``count`` ready workers (prefork, ``concurrency`` children each) on the bench queue;
    stopped and their logs deleted on exit."""
    workers = Workers(
        queue=env["CELERY_TASK_DEFAULT_QUEUE"], node_prefix="bench", log_prefix="bench-worker"
    )
    try:
        workers.start(env, count=count, concurrency=concurrency, app=app)
        workers.wait_ready()
        yield workers
    finally:
        workers.stop(timeout=20, delete_logs=True)


# --- process memory ---------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def tree_peak_rss_kb(pid: int) -> list[int]:
    """VmHWM of ``pid`` and of all its descendants (Linux /proc)."""
    peaks = [_status_kb(pid, "VmHWM")]
    for child in _children(pid):
        peaks.extend(tree_peak_rss_kb(child))
    return peaks


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants (Linux /proc)."""
    total = 0.0
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total + sum(tree_cpu_seconds(child) for child in _children(pid))


def self_peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ``getrusage``: on Linux a child's ru_maxrss
    starts at its parent's RSS (it is carried over fork and exec), which would charge the
    benchmark process (and the emulator in it) to the child."""
    peak_kb = _status_kb(os.getpid(), "VmHWM")
    if peak_kb:
        return round(peak_kb / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- numbers --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class QueryCounter:
    """Counts SQL statements on the default connection (``connection.execute_wrapper``)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def counting(self) -> Iterator[QueryCounter]:
        from django.db import connection

        with connection.execute_wrapper(self):
            yield self


# --- the results file ---------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu} × {os.cpu_count()}",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    with contextlib.suppress(Exception):
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                info["postgresql"] = str(cursor.fetchone()[0])
    with contextlib.suppress(Exception):
        import redis

        info["redis"] = str(redis.Redis.from_url(REDIS_URL).info("server")["redis_version"])
    return info


def machine_line(info: Mapping[str, str]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in info.items())


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace the generated block ``name`` in docs/benchmarks.md (or append it)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def save_json(name: str, data: Any) -> Path:
    """Raw results next to the other run artefacts (var/ is not committed)."""
    path = ROOT / "var" / f"bench-{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def requests_control(emulator: Any, method: str, path: str, **kwargs: Any) -> Any:
    """Call the QBO emulator's control API (``/__emulator__/…``)."""
    import requests

    response = requests.request(method, f"{emulator.control_url}/{path}", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


class QboEmulatorProcess:
    """The QBO emulator in its own process (``python -m qbo_client.emulator``).

    In the benchmark's own process its server threads would share the GIL with the code
    being measured (enqueueing, polling) and slow both; a separate process keeps the
    measurement clean. Same members as :class:`qbo_client.emulator.QboEmulator` where the
    benchmarks need them, over the control API.
    """

    def __init__(
        self,
        *,
        latency_ms: float,
        window_seconds: float,
        seed: str = "demo",
        throttle: bool = True,
    ) -> None:
        self.latency_ms = latency_ms
        self.window_seconds = window_seconds
        self.client_id = QBO_CLIENT_ID
        self.client_secret = QBO_CLIENT_SECRET
        command = [
            sys.executable,
            "-m",
            "qbo_client.emulator",
            "--port",
            "0",
            "--seed",
            seed,
            "--client-id",
            QBO_CLIENT_ID,
            "--client-secret",
            QBO_CLIENT_SECRET,
            "--latency-ms",
            str(latency_ms),
            "--throttle-window-seconds",
            str(window_seconds),
            *([] if throttle else ["--no-throttle"]),
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        values: dict[str, str] = {}
        for line in self.process.stdout:
            key, _, value = line.strip().partition(":")
            values[key.strip()] = value.strip()
            if key.strip() == "client id":
                break
        if "base URL" not in values:
            raise RuntimeError(f"QBO emulator did not start: {values}")
        self.base_url = values["base URL"]
        self.realm_id = values["realm id"]
        self.discovery_url = values["discovery URL"]
        self.api_base_url = values["API base"]
        self.control_url = f"{self.base_url}/__emulator__"

    def counters(self) -> dict[str, Any]:
        return dict(requests_control(self, "GET", "counters"))

    def entities(self, entity_type: str = "Customer") -> list[dict[str, Any]]:
        return list(requests_control(self, "GET", "state")[entity_type])

    def mint_tokens(self) -> dict[str, Any]:
        return dict(requests_control(self, "POST", "tokens"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
