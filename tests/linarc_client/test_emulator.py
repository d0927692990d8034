"""The emulator itself: its wire behaviour, its HTTP control API, its CLI and its data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from linarc_client import LinarcClient, LinarcNotFound
from linarc_client.emulator import DEMO_CLIENT_NAMES, HOSTILE_IDS, LinarcEmulator
from linarc_client.emulator.data import generate_projects
from tests.linarc_client.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _get(emulator, path: str, **params: object) -> requests.Response:
    return requests.get(f"{emulator.base_url}{path}", params=params, headers=AUTH, timeout=5)


# --- the API as served --------------------------------------------------------------------


def test_a_request_without_a_key_gets_401_with_a_json_detail(linarc_emulator):
    response = requests.get(f"{linarc_emulator.base_url}/api/v1/projects", timeout=5)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_next_is_a_full_url_on_every_page_but_the_last(linarc_emulator):
    first = _get(linarc_emulator, "/api/v1/projects", page=1, page_size=40, search="").json()
    last = _get(linarc_emulator, "/api/v1/projects", page=2, page_size=40).json()

    assert (
        first["next"] == f"{linarc_emulator.base_url}/api/v1/projects?page=2&page_size=40&search="
    )
    assert last["next"] is None
    assert first["count"] == last["count"] == 60
    assert len(first["results"]) + len(last["results"]) == 60


@pytest.mark.parametrize(
    "params",
    [{"page_size": 501}, {"page_size": 0}, {"page": 0}, {"page": "x"}, {"updated_since": "soon"}],
)
def test_out_of_contract_query_parameters_get_400(linarc_emulator, params):
    response = _get(linarc_emulator, "/api/v1/projects", **params)

    assert response.status_code == 400
    assert response.json()["detail"]


def test_an_injected_429_carries_retry_after(linarc_emulator):
    linarc_emulator.inject_fault("429", retry_after=12)

    response = _get(linarc_emulator, "/api/v1/projects")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "12"
    assert response.json() == {"detail": "Request was throttled."}


def test_latency_delays_api_calls(linarc_emulator, control):
    assert control("POST", "latency", json={"ms": 150}).json() == {"latency_ms": 150.0}

    started = time.monotonic()
    _get(linarc_emulator, "/api/v1/projects/100001")

    assert time.monotonic() - started >= 0.15


# --- the control API over HTTP ------------------------------------------------------------


def test_patch_edits_fields_and_bumps_updated_at(linarc_emulator, linarc_client, control):
    before = linarc_client.get_project("100001")

    response = control("PATCH", "projects/100001", json={"name": "New Name", "status": "Closed"})

    assert response.status_code == 200
    after = linarc_client.get_project("100001")
    assert (after.name, after.status) == ("New Name", "Closed")
    assert after.client_name == before.client_name
    assert after.updated_at > before.updated_at


def test_patch_merges_nested_fields_and_null_removes(linarc_emulator, control):
    control("PATCH", "projects/100001", json={"address": {"city": "Reno"}, "end_date": None})

    project = linarc_emulator.project("100001")
    assert project["address"]["city"] == "Reno"
    assert project["address"]["line1"]  # untouched
    assert "end_date" not in project


def test_patch_cannot_change_the_id(control):
    response = control("PATCH", "projects/100001", json={"id": "other"})

    assert response.status_code == 400


def test_delete_removes_a_project_from_lists_and_reads(linarc_emulator, linarc_client, control):
    assert control("DELETE", "projects/100002").status_code == 204

    ids = [r.linarc_id for page in linarc_client.iter_pages() for r in page.records]
    assert "100002" not in ids
    assert linarc_client.list_page(1).count == 59
    with pytest.raises(LinarcNotFound):
        linarc_client.get_project("100002")
    assert control("DELETE", "projects/100002").status_code == 404


def test_post_projects_adds_one_or_many(linarc_emulator, linarc_client, control):
    one = control("POST", "projects", json={"name": "Solo", "status": "Bidding"})
    many = control("POST", "projects", json=[{"name": "Twin A"}, {"id": "custom-9", "name": "B"}])

    assert one.status_code == many.status_code == 201
    solo = one.json()["projects"][0]
    assert solo["id"] == "100061"  # the next id after the generated ones
    assert solo["updated_at"].endswith("Z")
    assert [p["id"] for p in many.json()["projects"]] == ["100062", "custom-9"]
    last_page = linarc_client.list_page(1, page_size=500)
    assert [r.name for r in last_page.records[-3:]] == ["Solo", "Twin A", "B"]
    assert last_page.count == 63


def test_post_a_project_with_an_existing_id_is_a_conflict(control):
    response = control("POST", "projects", json={"id": "100001", "name": "Again"})

    assert response.status_code == 409


def test_reset_regenerates_deterministically(linarc_emulator, control):
    first = control("POST", "reset", json={"projects": 10, "seed": 99}).json()
    a = linarc_emulator.project("100001")
    control("POST", "reset", json={"projects": 10, "seed": 100})
    b = linarc_emulator.project("100001")
    control("POST", "reset", json={"projects": 10, "seed": 99})

    assert first["projects"] == 10
    assert list(first["hostile_ids"]) == list(HOSTILE_IDS)[:5]  # at most half are hostile
    assert linarc_emulator.project("100001") == a != b


def test_faults_can_be_listed_and_cleared(linarc_emulator, control):
    queued = control("POST", "faults", json={"fault": "500", "count": 3, "route": "list"})
    assert queued.status_code == 201
    assert queued.json()["faults"][0]["remaining"] == 3

    assert control("DELETE", "faults").status_code == 204

    assert control("GET", "faults").json() == {"faults": []}
    assert _get(linarc_emulator, "/api/v1/projects").status_code == 200


def test_an_unknown_fault_is_refused(control):
    response = control("POST", "faults", json={"fault": "418"})

    assert response.status_code == 400
    assert "Unknown fault '418'" in response.json()["detail"]


def test_counters_count_requests_per_route(linarc_emulator, linarc_client, control):
    linarc_client.list_page(1)
    linarc_client.get_project("100001")
    linarc_client.get_project("100002")

    counters = control("GET", "counters").json()

    assert counters["requests"] == {
        "GET /api/v1/projects": 1,
        "GET /api/v1/projects/{linarc_id}": 2,
    }
    assert control("DELETE", "counters").status_code == 204
    assert control("GET", "counters").json()["requests"] == {}


def test_the_clock_moves_updated_at(linarc_emulator, control):
    assert control("POST", "clock", json={"now": "2030-05-06T07:08:09Z"}).json() == {
        "now": "2030-05-06T07:08:09Z"
    }

    control("PATCH", "projects/100001", json={"name": "Later"})

    assert linarc_emulator.project("100001")["updated_at"].startswith("2030-05-06T07:08:")


def test_an_unknown_control_endpoint_is_404(control):
    assert control("POST", "nothing-here").status_code == 404


# --- state file and CLI -------------------------------------------------------------------


def test_the_state_file_keeps_edits_across_restarts(tmp_path):
    state = tmp_path / "linarc.json"
    with LinarcEmulator(projects=5, seed=1, hostile=False, state_file=state) as emulator:
        emulator.update_project("100001", {"name": "Kept"})
        emulator.delete_project("100002")

    with LinarcEmulator(projects=500, seed=2, state_file=state) as emulator:
        assert emulator.project("100001")["name"] == "Kept"
        assert emulator.project("100002") is None
        assert emulator.state.projects == 4
        assert json.loads(state.read_text())["projects"][0]["name"] == "Kept"


def test_the_cli_serves_the_contract(tmp_path):
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "linarc_client.emulator", "--port", "0"),
            *("--api-key", "cli-key", "--projects", "30", "--seed", "3", "--no-hostile"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        base_url = banner.split(" on ", 1)[1].split()[0]
        with LinarcClient(base_url, "cli-key") as client:
            page = client.list_page(1, page_size=50)
        assert page.count == 30
        assert not any(r.linarc_id in HOSTILE_IDS.values() for r in page.records)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


# --- generated data -----------------------------------------------------------------------


def test_generated_data_is_realistic_and_lines_up_with_the_qbo_demo():
    projects = generate_projects(2000, seed=7, hostile=False)

    assert 35 <= len(DEMO_CLIENT_NAMES) <= 45
    clients = Counter(p["client_name"] for p in projects)
    assert sum(n for name, n in clients.items() if name in DEMO_CLIENT_NAMES) > 0.85 * 2000
    assert len(set(DEMO_CLIENT_NAMES) & set(clients)) == len(DEMO_CLIENT_NAMES)
    assert {p["status"] for p in projects} == {
        "Bidding", "Pre-Construction", "Active", "On Hold", "Completed", "Closed",
    }  # fmt: skip
    assert all(p["number"].startswith("P-") for p in projects)
    dated = [p for p in projects if p["end_date"]]
    assert all(p["start_date"] < p["end_date"] for p in dated)
    assert any(p["end_date"] is None for p in projects)  # open bids


def test_same_seed_same_projects_different_seed_different():
    assert generate_projects(50, seed=3) == generate_projects(50, seed=3)
    assert generate_projects(50, seed=3) != generate_projects(50, seed=4)


def test_a_corrupt_state_file_is_reported_clearly(tmp_path):
    state = tmp_path / "linarc.json"
    state.write_text("{not json")

    with pytest.raises(ValueError, match="delete it to start from generated data"):
        LinarcEmulator(state_file=state)


def test_reset_refuses_a_hostile_flag_that_is_not_a_boolean(control):
    response = control("POST", "reset", json={"hostile": "false"})

    assert response.status_code == 400
    assert response.json() == {"detail": "hostile must be true or false"}
