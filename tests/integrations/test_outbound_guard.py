"""Secrets never leave for a host they were not saved for, and outbound requests never
reach the server's own network when ``OUTBOUND_ALLOW_PRIVATE_HOSTS`` is off.

* The stored Linarc API key is only ever sent to the base URL it was saved with: *Test
  connection* and *Save* with another base URL and a blank key ask for the key again.
* With private hosts refused (production), Linarc and QBO requests to loopback, private,
  link-local… addresses are refused before any connect, with a clear reason on the Test
  connection result, the failed import run and the failed rows.

Every emulator here listens on 127.0.0.1; requests to other addresses are refused by the
guard (or, were the guard broken, by the ``connect`` patch that fails the test).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from integrations.models import LinarcConnection, QboCustomer, SyncRules
from integrations.services.linarc import linarc_connection_test, linarc_projects_browse
from integrations.services.rules import SyncRulesError, sync_rules_update
from linarc_client import LinarcRefusedHost
from linarc_client.emulator import LinarcEmulator
from qbo_client import oauth
from qbo_client.emulator import QboEmulator
from staging.imports.pages import import_run_execute
from staging.imports.runs import import_run_create
from staging.models import Run, RunKind, RunState, StagedProject, SyncStatus
from staging.sync.outcomes import projects_claim
from staging.sync.push import projects_push
from staging.sync.queue import projects_enqueue_sync
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.linarc import EMULATOR_API_KEY
from tests.fixtures.linarc import connect_company as connect_linarc
from tests.fixtures.qbo import connect_company as connect_qbo
from tests.fixtures.qbo import control, refresh_customers

HTMX = {"HTTP_HX_REQUEST": "true"}
KEY_AGAIN = (
    "The base URL changed: enter the API key again so it is only sent to the host it was saved for."
)
PUBLIC_ONLY = "outbound requests may only go to public hosts"
ROOT = Path(__file__).resolve().parents[2]


def _linarc_requests(emulator: LinarcEmulator) -> int:
    return sum(emulator.counters()["requests"].values())


def _qbo_requests(emulator: QboEmulator) -> int:
    return int(control(emulator, "GET", "counters")["total_requests"])


def _forbid_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _rules(personas: Personas, **overrides: Any) -> dict[str, Any]:
    return {
        "company": personas.company,
        "base_url": "https://api.linarc.example",
        "api_key": "saved-key",
        "auto_create": False,
        "auto_update": False,
        "pull_every_minutes": 15,
        "display_name_template": "{name}",
        "actor": personas.admin,
        **overrides,
    }


# --- the stored key stays with the base URL it was saved for --------------------------------


def test_test_connection_never_sends_the_stored_key_to_another_url(
    personas: Personas, linarc_emulator_factory: Any, linarc_settings: Any
) -> None:
    saved = linarc_emulator_factory()
    # Accepts the very same key: had it received the stored key, it would say Connected.
    other = linarc_emulator_factory()
    connect_linarc(personas.company, saved)
    client = personas.client_for(personas.admin)
    url = reverse("portfolio:sync_rules_test")

    for headers in (HTMX, {}):
        response = client.post(url, {"base_url": other.base_url, "api_key": ""}, **headers)
        assert response.status_code == 422
        html = response.content.decode()
        assert KEY_AGAIN in html
        assert "Connected" not in html
    assert _linarc_requests(other) == 0

    # The same URL, written with a trailing slash, still uses the stored key.
    same = client.post(url, {"base_url": saved.base_url + "/", "api_key": ""}, **HTMX)
    assert "Connected: Linarc accepted the API key." in same.content.decode()
    assert _linarc_requests(saved) == 1

    # A key typed again goes to the new URL, as asked.
    typed = client.post(url, {"base_url": other.base_url, "api_key": EMULATOR_API_KEY}, **HTMX)
    assert "Connected: Linarc accepted the API key." in typed.content.decode()
    assert _linarc_requests(other) == 1


def test_test_connection_service_keeps_the_stored_key_for_its_own_url(
    personas: Personas, linarc_emulator_factory: Any, linarc_settings: Any
) -> None:
    saved = linarc_emulator_factory()
    other = linarc_emulator_factory()
    connect_linarc(personas.company, saved)
    check = linarc_connection_test(company=personas.company, base_url=other.base_url, api_key="")
    assert not check.ok
    assert check.message == KEY_AGAIN
    assert _linarc_requests(other) == 0
    assert linarc_connection_test(
        company=personas.company, base_url=f" {saved.base_url}/ ", api_key=""
    ).ok


@pytest.mark.parametrize("htmx", [True, False])
def test_saving_another_url_with_a_blank_key_is_a_field_error_and_keeps_everything(
    personas: Personas, htmx: bool
) -> None:
    sync_rules_update(**_rules(personas))
    client = personas.client_for(personas.admin)
    data = {
        "base_url": "https://elsewhere.example.test",
        "api_key": "",
        "auto_create": "on",
        "pull_every_minutes": "30",
        "display_name_template": "{number} {name}",
    }
    response = client.post(reverse("portfolio:sync_rules"), data, **(HTMX if htmx else {}))
    assert response.status_code == 422
    html = response.content.decode()
    # On the API key field, under it, as its error.
    field = html[html.index('name="api_key"') :]
    assert field.index(f'<ul class="field-errors"><li>{KEY_AGAIN}</li></ul>') < field.index(
        'name="auto_create"'
    )
    assert ("<html" in html) is not htmx

    connection = LinarcConnection.objects.get(company=personas.company)
    assert (connection.base_url, connection.api_key) == ("https://api.linarc.example", "saved-key")
    rules = SyncRules.objects.get(company=personas.company)
    assert (rules.auto_create, rules.pull_every_minutes, rules.display_name_template) == (
        False,
        15,
        "{name}",
    )
    assert not PeriodicTask.objects.exists()

    # The same URL, with a trailing slash and another letter case, keeps the stored key.
    data["base_url"] = "https://API.linarc.example/"
    saved = client.post(reverse("portfolio:sync_rules"), data, **(HTMX if htmx else {}))
    assert saved.status_code == (200 if htmx else 302)
    connection.refresh_from_db()
    assert connection.api_key == "saved-key"
    assert SyncRules.objects.get(company=personas.company).auto_create


def test_sync_rules_update_refuses_another_url_without_the_key(personas: Personas) -> None:
    sync_rules_update(**_rules(personas))
    for blank in (None, ""):
        with pytest.raises(SyncRulesError) as refused:
            sync_rules_update(
                **_rules(
                    personas, base_url="http://169.254.169.254", api_key=blank, auto_create=True
                )
            )
        assert str(refused.value) == KEY_AGAIN
        assert refused.value.field == "api_key"
    connection = LinarcConnection.objects.get(company=personas.company)
    assert connection.base_url == "https://api.linarc.example"
    assert not SyncRules.objects.get(company=personas.company).auto_create

    sync_rules_update(
        **_rules(personas, base_url="https://linarc.other.example", api_key="new-key")
    )
    connection.refresh_from_db()
    assert (connection.base_url, connection.api_key) == ("https://linarc.other.example", "new-key")


# --- private hosts refused: Test connection, imports ------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://10.0.0.5:8766", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        (
            "http://[::ffff:127.0.0.1]:8766",
            "::ffff:127.0.0.1 is a loopback address (IPv4 127.0.0.1)",
        ),
        ("http://[fd12::1]/", "fd12::1 is a private address"),
        (
            "https://linarc.corp.example/api",
            "linarc.corp.example resolves to 10.20.30.40, a private address",
        ),
    ],
)
def test_test_connection_refuses_a_private_target_with_a_clear_message(
    personas: Personas,
    settings: Any,
    linarc_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    reason: str,
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = False
    client = personas.client_for(personas.admin)
    _forbid_connects(monkeypatch)
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        # One made-up internal name; IP literals only otherwise (never a real DNS query).
        if host == "linarc.corp.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]
        return real_getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    expected = f"Connection failed: Refused: {reason}; {PUBLIC_ONLY}."
    for headers in (HTMX, {}):
        response = client.post(
            reverse("portfolio:sync_rules_test"),
            {"base_url": base_url, "api_key": "typed-key"},
            **headers,
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert expected in html
        assert ("<html" in html) is not bool(headers)


def test_the_local_emulator_is_refused_in_production_and_allowed_in_development(
    personas: Personas,
    settings: Any,
    linarc_emulator: LinarcEmulator,
    linarc_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = personas.client_for(personas.admin)
    form = {"base_url": linarc_emulator.base_url, "api_key": EMULATOR_API_KEY}
    url = reverse("portfolio:sync_rules_test")

    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = False
    with monkeypatch.context() as patched:
        _forbid_connects(patched)
        refused = client.post(url, form, **HTMX)
    assert refused.status_code == 200
    assert (
        f"Connection failed: Refused: 127.0.0.1 is a loopback address; {PUBLIC_ONLY}."
        in refused.content.decode()
    )
    assert _linarc_requests(linarc_emulator) == 0

    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = True
    allowed = client.post(url, form, **HTMX)
    assert "Connected: Linarc accepted the API key." in allowed.content.decode()


def test_an_import_fails_with_the_refusal_as_its_reason(
    personas: Personas,
    settings: Any,
    linarc_connection: Any,
    linarc_emulator: LinarcEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = False
    reason = f"Refused: 127.0.0.1 is a loopback address; {PUBLIC_ONLY}"
    for kind, ids in ((RunKind.IMPORT_ALL, None), (RunKind.IMPORT_SELECTED, ["1", "2"])):
        run = import_run_create(
            company=personas.company, kind=kind, actor=personas.admin, linarc_ids=ids
        )
        with monkeypatch.context() as patched:
            _forbid_connects(patched)
            import_run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.state == RunState.FAILED
        assert run.error == f"Linarc error: {reason}. Nothing was changed in staging."
        assert LinarcConnection.objects.get(company=personas.company).last_error == run.error
    with pytest.raises(LinarcRefusedHost, match="loopback address"):
        linarc_projects_browse(company=personas.company)
    assert not StagedProject.objects.exists()
    assert _linarc_requests(linarc_emulator) == 0


# --- private hosts refused: QuickBooks ---------------------------------------------------------


@pytest.fixture
def qbo_connected(personas: Personas, qbo_emulator: QboEmulator) -> QboEmulator:
    connect_qbo(personas.company, personas.admin)
    refresh_customers(personas.company)
    return qbo_emulator


@pytest.mark.parametrize("discovery_cached", [True, False])
def test_sync_rows_fail_with_the_refusal_as_their_reason(
    personas: Personas,
    settings: Any,
    qbo_connected: QboEmulator,
    monkeypatch: pytest.MonkeyPatch,
    discovery_cached: bool,
) -> None:
    parent = QboCustomer.objects.filter(company=personas.company, is_job=False).first()
    StagedProjectFactory.create_batch(
        2, company=personas.company, qbo_customer=parent, status=SyncStatus.NEEDS_SYNC
    )
    before = _qbo_requests(qbo_connected)
    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = False
    if not discovery_cached:
        oauth.clear_discovery_cache()  # a fresh worker: the client's first call is discovery
    projects_enqueue_sync(
        company=personas.company, projects=StagedProject.objects.all(), actor=personas.operator
    )
    ids = list(StagedProject.objects.values_list("pk", flat=True))
    lease, claimed = projects_claim(project_ids=ids)
    with monkeypatch.context() as patched:
        _forbid_connects(patched)
        projects_push(lease=lease, projects=claimed)
    rows = list(StagedProject.objects.values_list("status", "status_reason"))
    assert (
        rows
        == [(SyncStatus.FAILED, f"Refused: 127.0.0.1 is a loopback address; {PUBLIC_ONLY}")] * 2
    )
    assert _qbo_requests(qbo_connected) == before


def test_customer_refresh_fails_with_the_refusal_as_its_reason(
    personas: Personas, settings: Any, qbo_connected: QboEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = False
    with monkeypatch.context() as patched:
        _forbid_connects(patched)
        refresh_customers(personas.company)
    run = Run.objects.filter(kind=RunKind.REFRESH_CUSTOMERS).latest("pk")
    assert run.state == RunState.FAILED
    assert run.error == f"Refused: 127.0.0.1 is a loopback address; {PUBLIC_ONLY}"


def test_connect_to_quickbooks_shows_the_refusal_instead_of_failing(
    personas: Personas, settings: Any, qbo_emulator: QboEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_HOSTS = False
    oauth.clear_discovery_cache()
    client = personas.client_for(personas.admin)
    with monkeypatch.context() as patched:
        _forbid_connects(patched)
        response = client.post(reverse("portfolio:qbo_connect"))
    assert response.status_code == 302
    assert response["Location"] == reverse("portfolio:qbo_connection")
    page = client.get(response["Location"]).content.decode()
    assert f"Refused: 127.0.0.1 is a loopback address; {PUBLIC_ONLY}" in page


# --- the setting ------------------------------------------------------------------------------


def _setting_with(env: dict[str, str]) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.OUTBOUND_ALLOW_PRIVATE_HOSTS)",
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "STAGING_VAR_DIR": str(ROOT / "var"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_private_hosts_are_allowed_in_development_and_refused_in_production() -> None:
    from cryptography.fernet import Fernet

    production = {
        "DEBUG": "0",
        "SECRET_KEY": "x7!" + "kq2-9vZ_mR4tLw8Bn3Yc6Hd1Jf5Gs0Pa" * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "staging.example.com",
        "QBO_CLIENT_ID": "prod-id",
        "QBO_CLIENT_SECRET": "prod-secret",
        "QBO_ENVIRONMENT": "production",
    }
    assert _setting_with({}) == "True"
    assert _setting_with({"OUTBOUND_ALLOW_PRIVATE_HOSTS": ""}) == "True"  # blank: the default
    assert _setting_with(production) == "False"
    assert _setting_with({**production, "OUTBOUND_ALLOW_PRIVATE_HOSTS": "1"}) == "True"
    assert "OUTBOUND_ALLOW_PRIVATE_HOSTS=" in (ROOT / ".env.example").read_text()
