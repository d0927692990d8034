"""Listing, paging, filters and single-project reads against the live emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from linarc_client import LinarcClient, LinarcNotFound, ProjectRecord
from linarc_client.emulator import HOSTILE_IDS, LinarcEmulator
from tests.linarc_client.conftest import API_KEY

LIST_ROUTE = "GET /api/v1/projects"


def _all_ids(client: LinarcClient, **filters: object) -> list[str]:
    return [record.linarc_id for page in client.iter_pages(**filters) for record in page.records]


def test_iter_pages_sees_every_project_exactly_once(linarc_emulator, linarc_client):
    linarc_emulator.reset(projects=1234, seed=5)

    pages = list(linarc_client.iter_pages(page_size=100))
    ids = [record.linarc_id for page in pages for record in page.records]

    assert len(pages) == 13
    assert [page.count for page in pages] == [1234] * 13
    assert [len(page.records) for page in pages] == [100] * 12 + [34]
    assert len(ids) == len(set(ids)) == 1234
    assert all(linarc_emulator.project(linarc_id) for linarc_id in ids[::97])
    assert set(HOSTILE_IDS.values()) <= set(ids)
    assert pages[-1].next_page is None
    assert [page.next_page for page in pages[:3]] == [2, 3, 4]


def test_iter_pages_streams_one_request_per_page(linarc_emulator, linarc_client):
    linarc_emulator.reset(projects=1000, seed=5)
    pages = linarc_client.iter_pages(page_size=250)

    first = next(pages)
    assert len(first.records) == 250
    assert linarc_emulator.counters()["requests"] == {LIST_ROUTE: 1}

    rest = list(pages)
    assert len(rest) == 3
    assert linarc_emulator.counters()["requests"] == {LIST_ROUTE: 4}


def test_default_page_size_is_the_contract_maximum(linarc_emulator, linarc_client):
    linarc_emulator.reset(projects=1001, seed=5)

    pages = list(linarc_client.iter_pages())

    assert [len(page.records) for page in pages] == [500, 500, 1]


def test_list_page_returns_the_requested_window(linarc_emulator, linarc_client):
    second = linarc_client.list_page(2, page_size=25)

    everything = _all_ids(linarc_client)
    assert [record.linarc_id for record in second.records] == everything[25:50]
    assert second.count == 60
    assert second.next_page == 3


def test_list_page_past_the_end_is_empty(linarc_client):
    page = linarc_client.list_page(99, page_size=50)

    assert page.records == [] and page.invalid == []
    assert page.next_page is None
    assert page.count == 60


def test_list_page_rejects_out_of_contract_arguments(linarc_client):
    with pytest.raises(ValueError, match="page_size"):
        linarc_client.list_page(1, page_size=501)
    with pytest.raises(ValueError, match="page"):
        linarc_client.list_page(0)


def test_updated_since_returns_only_projects_changed_since(linarc_emulator, linarc_client):
    cutoff = datetime.now(UTC) - timedelta(seconds=1)
    first, second = _all_ids(linarc_client)[10:12]
    linarc_emulator.update_project(first, {"name": "Renamed A"})
    linarc_emulator.update_project(second, {"status": "On Hold"})

    page = linarc_client.list_page(1, page_size=500, updated_since=cutoff)

    assert sorted(record.linarc_id for record in page.records) == sorted([first, second])
    assert page.count == 2
    assert all(record.updated_at and record.updated_at >= cutoff for record in page.records)


def test_updated_since_is_inclusive(linarc_emulator, linarc_client):
    linarc_id = _all_ids(linarc_client)[3]
    linarc_emulator.update_project(linarc_id, {"updated_at": "2031-02-03T04:05:06Z"})

    exact = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert _all_ids(linarc_client, updated_since=exact) == [linarc_id]
    assert _all_ids(linarc_client, updated_since=exact + timedelta(milliseconds=1)) == []


def test_status_filter_matches_status_case_insensitively(linarc_emulator, linarc_client):
    everything = [r for p in linarc_client.iter_pages() for r in p.records]
    expected = {r.linarc_id for r in everything if r.raw.get("status") == "On Hold"}
    assert expected  # the seed has some

    on_hold = _all_ids(linarc_client, status="on hold")

    assert set(on_hold) == expected


def test_search_matches_name_number_or_client(linarc_emulator, linarc_client):
    linarc_emulator.add_projects(
        {"name": "Zephyr Tower Lobby", "number": "Q-1", "client_name": "A", "status": "Active"},
        {"name": "Plain", "number": "ZEPHYR-7", "client_name": "B", "status": "Active"},
        {"name": "Plain", "number": "Q-2", "client_name": "Zephyr Holdings", "status": "Active"},
    )

    found = [r for p in linarc_client.iter_pages(search="  zephyr ") for r in p.records]

    assert sorted(r.number for r in found) == ["Q-1", "Q-2", "ZEPHYR-7"]


def test_filters_combine(linarc_emulator, linarc_client):
    linarc_emulator.add_projects(
        {"name": "Quokka Clinic", "status": "Active"},
        {"name": "Quokka Depot", "status": "Closed"},
    )

    found = _all_ids(linarc_client, search="quokka", status="Closed")

    assert len(found) == 1
    assert linarc_emulator.project(found[0])["name"] == "Quokka Depot"


def test_get_project_returns_the_parsed_record(linarc_emulator, linarc_client):
    linarc_id = _all_ids(linarc_client)[0]
    raw = linarc_emulator.project(linarc_id)

    record = linarc_client.get_project(linarc_id)

    assert isinstance(record, ProjectRecord)
    assert record.linarc_id == linarc_id
    assert record.name == raw["name"]
    assert record.start_date.isoformat() == raw["start_date"]
    assert record.city == raw["address"]["city"]
    assert record.raw == raw


def test_get_project_quotes_the_id_in_the_path(linarc_emulator, linarc_client):
    linarc_emulator.add_projects({"id": "A/B 7?x", "name": "Odd id", "status": "Active"})

    assert linarc_client.get_project("A/B 7?x").name == "Odd id"


def test_get_unknown_project_raises_not_found(linarc_client):
    with pytest.raises(LinarcNotFound) as caught:
        linarc_client.get_project("no-such-project")

    assert caught.value.reason == "Linarc has no project 'no-such-project'"
    assert caught.value.status == 404


def test_check_connection_passes_with_the_right_key(linarc_emulator, linarc_client):
    linarc_client.check_connection()

    assert linarc_emulator.counters()["requests"] == {LIST_ROUTE: 1}


def test_base_url_with_trailing_slash_works(linarc_emulator):
    with LinarcClient(linarc_emulator.base_url + "/", API_KEY) as client:
        assert client.list_page(1, page_size=1).count == 60


def test_emulator_serves_a_large_dataset_quickly(linarc_emulator):
    # A smoke test for the benchmark path; the real numbers live in bench/.
    linarc_emulator.reset(projects=20_000, seed=9)
    with LinarcClient(linarc_emulator.base_url, API_KEY) as client:
        seen = sum(len(page.records) for page in client.iter_pages())
    assert seen == 20_000


def test_a_fresh_emulator_is_deterministic():
    with LinarcEmulator(projects=30, seed=4) as one, LinarcEmulator(projects=30, seed=4) as two:
        assert [one.project(str(100001 + i)) for i in range(30)] == [
            two.project(str(100001 + i)) for i in range(30)
        ]
