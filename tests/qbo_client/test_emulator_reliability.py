"""requestid replay, injected faults, throttling, counters and the request log ([errors],
[limits], [requestid]).

Sources:
[errors] Intuit, error codes:
    https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
[limits] Intuit, limits and throttles:
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
[requestid] Intuit developer blog, Request ID:
    https://blogs.intuit.com/2015/04/06/15346/
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import pytest
import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from quickbooks.objects.customer import Customer
from requests.adapters import HTTPAdapter

from qbo_client.emulator import QboEmulator
from qbo_client.emulator.throttle import Throttler
from tests.qbo_client.conftest import Control, make_qb


def new_customer(name: str) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    return customer


class TimeoutAdapter(HTTPAdapter):
    """The recommended way to give python-quickbooks a timeout ([python-quickbooks])."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def record_responses(qb: QuickBooks) -> list[requests.Response]:
    seen: list[requests.Response] = []
    qb.session.hooks["response"].append(lambda r, *a, **k: seen.append(r))
    return seen


# --- requestid ---


def test_requestid_replays_the_first_response_unchanged(qb: QuickBooks, control: Control) -> None:
    seen = record_responses(qb)
    first = new_customer("Replay Me").save(qb=qb, request_id="lnrc-1-create-v1")
    second = new_customer("Replay Me").save(qb=qb, request_id="lnrc-1-create-v1")
    assert first.Id == second.Id
    assert seen[0].content == seen[1].content  # status and body, byte for byte
    assert seen[0].headers["intuit_tid"] != seen[1].headers["intuit_tid"]
    log = control.get("requests", limit=2)["requests"]
    assert [entry["requestid"] for entry in log] == ["lnrc-1-create-v1"] * 2
    assert [entry["replayed"] for entry in log] == [False, True]
    assert Customer.count("Active IN (true, false)", qb=qb) == 1


def test_requestid_also_replays_a_fault(qb: QuickBooks) -> None:
    new_customer("Holder").save(qb=qb)
    for _ in range(2):
        with pytest.raises(QuickbooksException) as excinfo:
            new_customer("Holder").save(qb=qb, request_id="dup-1")
        assert excinfo.value.error_code == 6240


def test_requestid_over_50_characters_is_rejected(qb: QuickBooks) -> None:
    with pytest.raises(QuickbooksException) as excinfo:
        new_customer("Long Id").save(qb=qb, request_id="x" * 51)
    assert excinfo.value.error_code == 6000


def test_retry_after_lost_response_creates_no_duplicate(qb: QuickBooks, control: Control) -> None:
    control.fault(kind="lost_response", method="POST", entity="Customer", operation="create")
    with pytest.raises(requests.ConnectionError):
        new_customer("Lost Once").save(qb=qb, request_id="lost-1")
    state = control.get("state")["Customer"]
    assert [c["DisplayName"] for c in state] == ["Lost Once"]  # the write was committed

    retried = new_customer("Lost Once").save(qb=qb, request_id="lost-1")
    assert retried.Id == state[0]["Id"]
    assert len(control.get("state")["Customer"]) == 1
    counters = control.get("counters")
    assert counters["dropped_connections"] == 1
    assert counters["replays"] == 1


def test_retry_after_lost_response_without_requestid_hits_the_duplicate(
    qb: QuickBooks, control: Control
) -> None:
    control.fault(kind="lost_response", path="/customer")
    with pytest.raises(requests.ConnectionError):
        new_customer("No Id").save(qb=qb)
    with pytest.raises(QuickbooksException) as excinfo:
        new_customer("No Id").save(qb=qb)
    assert excinfo.value.error_code == 6240


def test_timeout_fault_without_commit(qb: QuickBooks, control: Control) -> None:
    qb.session.mount("http://", TimeoutAdapter(0.2))
    control.fault(kind="timeout", seconds=0.5, path="/customer")
    with pytest.raises(requests.Timeout):
        new_customer("Slow").save(qb=qb, request_id="slow-1")
    assert control.get("state")["Customer"] == []
    assert new_customer("Slow").save(qb=qb, request_id="slow-1").DisplayName == "Slow"


def test_timeout_fault_with_commit_is_recovered_by_replay(qb: QuickBooks, control: Control) -> None:
    qb.session.mount("http://", TimeoutAdapter(0.2))
    control.fault(kind="timeout", seconds=0.4, commit=True, path="/customer")
    with pytest.raises(requests.Timeout):
        new_customer("Slow Commit").save(qb=qb, request_id="slow-2")
    assert len(control.get("state")["Customer"]) == 1
    retried = new_customer("Slow Commit").save(qb=qb, request_id="slow-2")
    assert retried.Id == control.get("state")["Customer"][0]["Id"]


def test_timeout_then_answer_arrives_late(qb: QuickBooks, control: Control) -> None:
    control.fault(kind="timeout", seconds=0.3, then="answer", path="/customer")
    started = time.monotonic()
    saved = new_customer("Late").save(qb=qb)
    assert time.monotonic() - started >= 0.3
    assert saved.DisplayName == "Late"


# --- injected error responses ---


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_faults_have_html_bodies_and_commit_nothing(
    qb: QuickBooks, control: Control, status: int
) -> None:
    seen = record_responses(qb)
    control.fault(kind=str(status), method="POST", count=1)
    with pytest.raises(QuickbooksException) as excinfo:
        new_customer("Not Saved").save(qb=qb, request_id="x-1")
    assert excinfo.value.error_code == 10000  # python-quickbooks cannot parse HTML
    assert seen[-1].status_code == status
    assert seen[-1].headers["Content-Type"].startswith("text/html")
    assert seen[-1].headers["intuit_tid"]
    assert control.get("state")["Customer"] == []
    # The fault was for one request only; the retry (same requestid) executes.
    assert new_customer("Not Saved").save(qb=qb, request_id="x-1").Id


def test_injected_429_json_and_xml_shapes(qb: QuickBooks, control: Control) -> None:
    seen = record_responses(qb)
    control.post(
        "faults",
        {
            "faults": [
                {"kind": "429", "operation": "query"},
                {"kind": "429_xml", "operation": "query"},
            ]
        },
    )
    for _ in range(2):
        with pytest.raises(QuickbooksException):
            Customer.all(qb=qb)
    json_body = seen[0].json()
    assert seen[0].status_code == 429
    assert json_body["fault"]["error"][0]["code"] == "3001"
    assert json_body["fault"]["error"][0]["message"] == (
        "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    )
    assert seen[1].status_code == 429
    assert seen[1].headers["Content-Type"].startswith("application/xml")
    assert '<Error code="3001">' in seen[1].text
    assert seen[1].text.count("<IntuitResponse") == 1
    assert control.get("counters")["sent_429"] == 2
    assert Customer.all(qb=qb) == []


def test_injected_401_and_custom_fault(qb: QuickBooks, control: Control) -> None:
    control.fault(kind="401", operation="query")
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)
    control.fault(
        kind="fault",
        status=400,
        code="6190",
        message="Invalid Company Status",
        detail="Subscription ended",
        operation="create",
    )
    with pytest.raises(QuickbooksException) as excinfo:
        new_customer("Any").save(qb=qb)
    assert excinfo.value.error_code == 6190


def test_faults_match_only_their_criteria_and_count(qb: QuickBooks, control: Control) -> None:
    control.fault(kind="503", entity="Vendor", count=5)
    control.fault(kind="500", operation="update", count=2)
    new_customer("Unaffected").save(qb=qb)  # a Customer create matches neither rule
    listed = control.get("faults")["faults"]
    assert [(f["kind"], f["remaining"]) for f in listed] == [("503", 5), ("500", 2)]
    control.delete("faults")
    assert control.get("faults")["faults"] == []


def test_latency_fault_and_global_latency(qb: QuickBooks, control: Control) -> None:
    control.fault(kind="latency", ms=250, operation="query")
    started = time.monotonic()
    Customer.all(qb=qb)
    assert time.monotonic() - started >= 0.25
    control.post("latency", {"ms": 150})
    started = time.monotonic()
    Customer.all(qb=qb)
    assert time.monotonic() - started >= 0.15
    assert control.get("latency") == {"ms": 150.0}


def test_chaos_is_deterministic_for_a_seed_and_requestid_keeps_writes_single(
    qbo_emulator: QboEmulator, control: Control, qb: QuickBooks
) -> None:
    def run() -> list[str]:
        outcomes: list[str] = []
        for index in range(12):
            for attempt in range(10):
                try:
                    new_customer(f"Chaos {index}").save(qb=qb, request_id=f"chaos-{index}")
                    outcomes.append(f"ok after {attempt}")
                    break
                except (requests.ConnectionError, QuickbooksException):
                    continue
        return outcomes

    control.post("chaos", {"seed": 7, "rates": {"500": 0.3, "lost_response": 0.2}})
    first = run()
    assert control.get("counters")["faults_injected"]  # chaos did fire
    assert len(control.get("state")["Customer"]) == 12
    control.post("reset")
    qb.session.access_token = control.post("tokens")["access_token"]
    control.post("chaos", {"seed": 7, "rates": {"500": 0.3, "lost_response": 0.2}})
    assert run() == first
    control.delete("chaos")
    assert control.get("chaos")["enabled"] is False


# --- throttling ---


def test_per_second_limit_scales_with_the_window(qb: QuickBooks, control: Control) -> None:
    control.post("throttle", {"enabled": True, "window_seconds": 30})  # 10 per 0.5 s
    seen = record_responses(qb)
    for _ in range(10):
        Customer.all(qb=qb)
    with pytest.raises(QuickbooksException) as excinfo:
        Customer.all(qb=qb)
    assert excinfo.value.error_code == 10000
    assert seen[-1].status_code == 429
    assert seen[-1].json()["fault"]["error"][0]["code"] == "3001"
    counters = control.get("counters")
    assert counters["throttled_by_limit"] == {"per_second": 1}
    time.sleep(0.55)
    Customer.all(qb=qb)


def test_throttle_xml_flag(qb: QuickBooks, control: Control) -> None:
    control.post("throttle", {"enabled": True, "window_seconds": 30, "xml": True})
    seen = record_responses(qb)
    for _ in range(10):
        Customer.all(qb=qb)
    with pytest.raises(QuickbooksException):
        Customer.all(qb=qb)
    assert seen[-1].status_code == 429
    assert "message=ThrottleExceeded; errorCode=003001; statusCode=429" in seen[-1].text
    assert seen[-1].headers["Content-Type"].startswith("application/xml")


def test_more_than_10_in_flight_is_throttled(
    qbo_emulator: QboEmulator, control: Control, auth_client: Any
) -> None:
    control.post("throttle", {"enabled": True, "window_seconds": 60})
    control.post("latency", {"ms": 600})
    clients = [make_qb(qbo_emulator, auth_client) for _ in range(12)]
    statuses: list[int] = []
    lock = threading.Lock()

    def remember(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with lock:
            statuses.append(response.status_code)

    start = threading.Barrier(len(clients))

    def call(client: QuickBooks) -> None:
        client.session.hooks["response"].append(remember)
        start.wait()
        with contextlib.suppress(QuickbooksException):
            Customer.all(qb=client)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 10 + [429] * 2
    counters = control.get("counters")
    assert counters["max_in_flight"] > 10  # rejected arrivals count too
    assert counters["throttled_by_limit"] == {"concurrency": 2}


def test_40_batch_requests_per_window(qb: QuickBooks, control: Control) -> None:
    control.post("throttle", {"enabled": True, "window_seconds": 3})  # 10 per 0.05 s
    url = f"{qb.api_url}/company/{qb.company_id}/batch"
    body = json.dumps({"BatchItemRequest": [{"bId": "q", "Query": "SELECT * FROM Customer"}]})
    for _ in range(5):
        for _ in range(8):
            qb.post(url, body)
        time.sleep(0.06)
    # 40 batches sent in under 3 s; regular requests still pass, the 41st batch does not.
    Customer.all(qb=qb)
    with pytest.raises(QuickbooksException):
        qb.post(url, body)
    assert control.get("counters")["throttled_by_limit"] == {"batch_per_window": 1}


def test_per_window_limit_with_a_fake_clock() -> None:
    now = [0.0]
    throttler = Throttler(60.0, now=lambda: now[0])
    admitted = 0
    while throttler.acquire("realm", is_batch=False) is None:
        throttler.release("realm")
        admitted += 1
        now[0] += 0.11  # ~9 per second: under the per-second limit, 500 fit in 60 s
    assert admitted == 500
    assert throttler.acquire("realm", is_batch=False) == "per_window"
    now[0] += 10.0  # the oldest requests slide out of the 60 s window
    assert throttler.acquire("realm", is_batch=False) is None


# --- counters, log, headers ---


def test_counters_count_routes_statuses_and_totals(qb: QuickBooks, control: Control) -> None:
    control.delete("counters")
    saved = new_customer("Counted").save(qb=qb)
    Customer.get(saved.Id, qb=qb)
    Customer.all(qb=qb)
    counters = control.get("counters")
    assert counters["routes"] == {"POST customer": 1, "GET customer/{id}": 1, "POST query": 1}
    assert counters["statuses"] == {"200": 3}
    assert counters["api_requests"] == 3
    assert counters["total_requests"] == 3
    assert counters["max_in_flight"] == 1


def test_request_log_records_method_path_query_body_status(
    qb: QuickBooks, control: Control
) -> None:
    new_customer("Logged").save(qb=qb, request_id="log-1")
    entry = control.get("requests", limit=1)["requests"][0]
    assert entry["method"] == "POST"
    assert entry["path"].endswith("/customer")
    assert entry["query"] == {"minorversion": "75", "requestid": "log-1"}
    assert json.loads(entry["body"])["DisplayName"] == "Logged"
    assert entry["status"] == 200
    assert entry["intuit_tid"]


def test_every_response_has_intuit_tid_and_api_bodies_have_time(
    qbo_emulator: QboEmulator, qb: QuickBooks
) -> None:
    base = qbo_emulator.base_url
    for response in (
        requests.get(f"{base}/nowhere", timeout=5),
        requests.get(f"{base}/__emulator__/counters", timeout=5),
        requests.post(f"{base}/oauth2/v1/tokens/bearer", data={}, timeout=5),
        requests.get(f"{qbo_emulator.api_base_url}/company/{qb.company_id}/customer/1", timeout=5),
    ):
        assert response.headers["intuit_tid"].startswith("1-")
    seen = record_responses(qb)
    with pytest.raises(QuickbooksException):
        Customer.get(77, qb=qb)
    assert "time" in seen[-1].json()


@pytest.mark.parametrize("params", [{}, {"minorversion": "4"}, {"minorversion": "75"}])
def test_any_minorversion_is_accepted(qb: QuickBooks, params: dict[str, str]) -> None:
    response = qb.session.get(
        f"{qb.api_url}/company/{qb.company_id}/query",
        params={"query": "SELECT COUNT(*) FROM Customer", **params},
        headers={
            "Accept": "application/json",
            "Authorization": f"Bearer {qb.session.access_token}",
        },
    )
    assert response.status_code == 200
    assert response.json()["QueryResponse"] == {"totalCount": 0}


def test_malformed_bodies(qb: QuickBooks) -> None:
    url = f"{qb.api_url}/company/{qb.company_id}/customer"
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {qb.session.access_token}",
    }
    not_json = qb.session.post(url, data=b"{not json", headers=headers)
    assert not_json.status_code == 400
    assert not_json.json()["Fault"]["Error"][0]["code"] == "2010"
    not_utf8 = qb.session.post(url, data=b"\xff\xfe", headers=headers)
    assert not_utf8.json()["Fault"]["Error"][0]["code"] == "500"
    unknown = qb.session.get(f"{qb.api_url}/company/{qb.company_id}/Customer/1", headers=headers)
    assert unknown.status_code == 400
    assert unknown.json()["Fault"]["Error"][0]["Message"] == "Unsupported Operation"


def test_concurrent_creates_of_one_name_yield_exactly_one_customer(
    qbo_emulator: QboEmulator, auth_client: Any, control: Control
) -> None:
    clients = [make_qb(qbo_emulator, auth_client) for _ in range(8)]
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients))

    def create(client: QuickBooks, index: int) -> None:
        start.wait()
        for n in range(5):
            for name in (f"Racer {index}-{n}", "Contested Name"):
                try:
                    new_customer(name).save(qb=client)
                    result = "ok"
                except QuickbooksException as exc:
                    result = str(exc.error_code)
                with lock:
                    outcomes.append(f"{name == 'Contested Name'}:{result}")

    threads = [threading.Thread(target=create, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("False:ok") == 40
    assert outcomes.count("True:ok") == 1
    assert outcomes.count("True:6240") == 39
    customers = control.get("state")["Customer"]
    assert len({c["Id"] for c in customers}) == len(customers) == 41
