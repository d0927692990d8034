"""The CLI, persistence, the demo seed and the control API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
from quickbooks.objects.customer import Customer

from qbo_client.emulator import QboEmulator
from tests.qbo_client.conftest import Control, connect, make_qb, new_auth_client

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_its_urls_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qbo_client.emulator",
            "--port",
            "0",
            "--seed",
            "demo",
            "--realm-id",
            "555",
            "--throttle-window-seconds",
            "6",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(7)]
        urls = dict(line.strip().split(":", 1) for line in lines[1:] if ":" in line)
        base_url = urls["base URL"].strip()
        assert urls["discovery URL"].strip() == f"{base_url}/.well-known/openid_configuration"
        assert urls["API base"].strip() == f"{base_url}/v3"
        discovery = requests.get(urls["discovery URL"].strip(), timeout=5).json()
        assert discovery["token_endpoint"] == f"{base_url}/oauth2/v1/tokens/bearer"
        state = requests.get(f"{base_url}/__emulator__/state", timeout=5).json()
        assert state["realm_id"] == "555"
        assert len(state["Customer"]) > 60
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_state_file_persists_entities_tokens_and_replays(tmp_path: Path) -> None:
    state_file = tmp_path / "qbo.json"
    with QboEmulator(state_file=str(state_file), throttle_enabled=False) as first:
        auth = connect(first)
        qb = make_qb(first, auth)
        customer = Customer()
        customer.DisplayName = "Persisted Client"
        saved = customer.save(qb=qb, request_id="persist-1")
    assert state_file.exists()
    with QboEmulator(state_file=str(state_file), throttle_enabled=False) as second:
        qb = make_qb(second, auth)  # the old access token still works
        assert [c.DisplayName for c in Customer.all(qb=qb)] == ["Persisted Client"]
        again = Customer()
        again.DisplayName = "Persisted Client"
        assert again.save(qb=qb, request_id="persist-1").Id == saved.Id  # replayed
        reconnected = new_auth_client(second, refresh_token=auth.refresh_token)
        reconnected.refresh()  # and so does the refresh token
        assert reconnected.access_token


def test_demo_seed_is_realistic_and_deterministic(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    control.post("reset", {"seed": "demo"})
    first = control.get("state")
    control.post("reset", {"seed": "demo"})
    assert control.get("state") == first
    customers = first["Customer"]
    top_level_active = [c for c in customers if not c.get("Job") and c["Active"]]
    assert len(top_level_active) == 95  # 60 of its own + 35 of the Linarc demo's clients
    names = {c["DisplayName"] for c in customers}
    assert {"Cascade County Schools", "Northgate Medical Partners"} <= names
    assert any(c["Active"] is False and not c.get("Job") for c in customers)
    jobs = [c for c in customers if c.get("Job")]
    assert jobs and max(c["Level"] for c in jobs) == 2
    assert len(first["Vendor"]) >= 3 and len(first["Employee"]) >= 3


def test_seed_endpoint_is_all_or_nothing(qbo_emulator: QboEmulator, control: Control) -> None:
    response = requests.post(
        f"{control.base}/seed",
        json={"customers": [{"DisplayName": "Fine"}, {"DisplayName": "fine"}]},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["Fault"]["Error"][0]["code"] == "6240"
    assert control.get("state")["Customer"] == []
    created = control.post(
        "seed",
        {
            "customers": [
                {"DisplayName": "Owner"},
                {"DisplayName": "Owner Job", "parent": "Owner"},
            ],
            "vendors": [{"DisplayName": "Supplier"}],
            "employees": [{"GivenName": "Ann", "FamilyName": "Lee"}],
        },
    )["created"]
    assert [(c["type"], c["DisplayName"]) for c in created] == [
        ("Customer", "Owner"),
        ("Customer", "Owner Job"),
        ("Vendor", "Supplier"),
        ("Employee", "Ann Lee"),
    ]
    assert created[1]["FullyQualifiedName"] == "Owner:Owner Job"


def test_second_company_and_realm_scoped_tokens(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    control.post("companies", {"realm_id": "4620816365000000", "seed": "demo"})
    tokens = control.post("tokens", {"realm_id": "4620816365000000"})
    assert tokens["realm_id"] == "4620816365000000"
    other = requests.get(
        f"{qbo_emulator.api_base_url}/company/4620816365000000/query",
        params={"query": "SELECT COUNT(*) FROM Customer"},
        headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"},
        timeout=5,
    )
    assert other.json()["QueryResponse"]["totalCount"] > 60
    realms = {c["realm_id"] for c in control.get("companies")["companies"]}
    assert realms == {qbo_emulator.realm_id, "4620816365000000"}


def test_clock_endpoint_moves_time_forward_only(control: Control) -> None:
    before = control.get("clock")
    after = control.post("clock", {"advance_seconds": 90})
    assert after["offset_seconds"] == before["offset_seconds"] + 90
    response = requests.post(f"{control.base}/clock", json={"advance_seconds": -1}, timeout=5)
    assert response.status_code == 400


def test_unknown_control_endpoint_is_404(control: Control) -> None:
    response = requests.get(f"{control.base}/nope", timeout=5)
    assert response.status_code == 404
    assert "POST reset" in response.json()["endpoints"]


def test_even_malformed_requests_get_an_intuit_tid(qbo_emulator: QboEmulator) -> None:
    with socket.create_connection(("127.0.0.1", qbo_emulator.port), timeout=5) as raw:
        raw.sendall(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")  # http.server answers 501
        answer = raw.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 501")
    assert "\r\nintuit_tid: 1-" in answer
