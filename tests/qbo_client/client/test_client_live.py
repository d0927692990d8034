"""QboClient against the live QBO emulator: reads, writes, retries and error mapping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import requests

from qbo_client.client import (
    BatchItem,
    QboClient,
    QboCustomerData,
    RequestRecord,
)
from qbo_client.config import QboConfig
from qbo_client.emulator import QboEmulator
from qbo_client.errors import (
    ConnectionDroppedError,
    NeedsActionError,
    NotFoundError,
    ReconnectRequired,
    StaleObjectError,
    ThrottledError,
    TransientError,
)
from qbo_client.ratelimit import NullRateLimiter, RealmRateLimiter
from qbo_client.transport import TimeoutHTTPAdapter
from tests.qbo_client.client_fixtures import config_for
from tests.qbo_client.conftest import Control


def customers_named(emulator: QboEmulator, name: str) -> list[dict]:
    return [c for c in emulator.entities("Customer") if c["DisplayName"] == name]


def writes(records: list[RequestRecord], path: str = "/customer") -> list[RequestRecord]:
    return [r for r in records if r.method == "POST" and path + "?" in r.url]


# --- reads ---------------------------------------------------------------------------------


def test_find_by_display_name_escapes_and_includes_inactive(
    qbo: QboClient, qbo_emulator: QboEmulator
) -> None:
    name = "O'Brien \\ Site Services"
    created = qbo.create_customer({"DisplayName": name}, request_id="find-1")
    qbo.sparse_update_customer(created.id, created.sync_token, {"Active": False}, "find-2")
    found = qbo.find_customers_by_display_name(name)
    assert [(c.id, c.active) for c in found] == [(created.id, False)]
    assert qbo.find_customers_by_display_name(name, include_inactive=False) == []
    assert qbo.find_customers_by_display_name("Nobody") == []


def test_get_customer_and_not_found(qbo: QboClient) -> None:
    parent = qbo.create_customer({"DisplayName": "Cascade County Schools"}, "get-1")
    job = qbo.create_customer(
        {"DisplayName": "CCS-2417 Gym", "Job": True, "ParentRef": {"value": parent.id}}, "get-2"
    )
    got = qbo.get_customer(job.id)
    assert (got.parent_id, got.is_job, got.level) == (parent.id, True, 1)
    assert got.fully_qualified_name == "Cascade County Schools:CCS-2417 Gym"
    assert got.raw["DisplayName"] == "CCS-2417 Gym"
    with pytest.raises(NotFoundError) as excinfo:
        qbo.get_customer("99999")
    assert excinfo.value.code == "610"
    assert excinfo.value.intuit_tid
    with pytest.raises(ValueError):
        qbo.get_customer("1/../2")


def test_iter_all_customers_pages_by_id(qbo: QboClient, control: Control) -> None:
    for i in range(5):
        created = qbo.create_customer({"DisplayName": f"Customer {i}"}, f"page-{i}")
    qbo.sparse_update_customer(created.id, created.sync_token, {"Active": False}, "page-off")
    pages = list(qbo.iter_all_customers(page_size=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [c.id for page in pages for c in page]
    assert ids == sorted(ids, key=int) and len(set(ids)) == 5
    assert sum(len(p) for p in qbo.iter_all_customers(include_inactive=False)) == 4
    with pytest.raises(ValueError):
        next(qbo.iter_all_customers(page_size=1001))


def test_query_customers_under_parent(qbo: QboClient) -> None:
    parent = qbo.create_customer({"DisplayName": "Owner A"}, "under-1")
    other = qbo.create_customer({"DisplayName": "Owner B"}, "under-2")
    for n, (owner, name) in enumerate(
        [(parent, "A-1 Gym"), (parent, "A-2 Library"), (other, "B-1 Gym")]
    ):
        qbo.create_customer(
            {"DisplayName": name, "Job": True, "ParentRef": {"value": owner.id}}, f"under-j{n}"
        )
    children = qbo.query_customers_under_parent(parent.id)
    assert sorted(c.display_name for c in children) == ["A-1 Gym", "A-2 Library"]
    assert [c.display_name for c in qbo.query_customers_under_parent(parent.id, "Gym")] == [
        "A-1 Gym"
    ]


# --- writes --------------------------------------------------------------------------------


def test_sparse_update_keeps_unsent_fields(qbo: QboClient, qbo_emulator: QboEmulator) -> None:
    created = qbo.create_customer(
        {
            "DisplayName": "Northgate Medical Partners",
            "CompanyName": "Northgate Medical",
            "Notes": "original notes",
            "ShipAddr": {"Line1": "1800 Maple Ridge Rd", "City": "Bend"},
        },
        "sparse-1",
    )
    updated = qbo.sparse_update_customer(
        created.id, created.sync_token, {"Notes": "phase 2 released"}, "sparse-2"
    )
    assert updated.sync_token == str(int(created.sync_token) + 1)
    stored = customers_named(qbo_emulator, "Northgate Medical Partners")[0]
    assert stored["Notes"] == "phase 2 released"
    assert stored["CompanyName"] == "Northgate Medical"
    assert stored["ShipAddr"]["City"] == "Bend"
    with pytest.raises(ValueError):
        qbo.sparse_update_customer(created.id, "1", {"SyncToken": "9"}, "sparse-3")


def test_sparse_update_sends_a_hand_built_body(
    qbo: QboClient, records: list[RequestRecord]
) -> None:
    created = qbo.create_customer({"DisplayName": "Body Check"}, "body-1")
    qbo.sparse_update_customer(created.id, created.sync_token, {"Notes": "n"}, "body-2")
    sent = json.loads(writes(records)[-1].request_body or "")
    assert sent == {"Id": created.id, "SyncToken": "0", "sparse": True, "Notes": "n"}


def test_duplicate_name_needs_action_with_the_name(qbo: QboClient) -> None:
    qbo.create_customer({"DisplayName": "Phase 2 Sitework"}, "dup-1")
    with pytest.raises(NeedsActionError) as excinfo:
        qbo.create_customer({"DisplayName": "Phase 2 Sitework"}, "dup-2")
    err = excinfo.value
    assert err.code == "6240"
    assert 'The name "Phase 2 Sitework" is already used in QuickBooks' in err.reason
    assert err.status == 400 and err.intuit_tid


def test_stale_sync_token_is_stale_object_error(qbo: QboClient) -> None:
    created = qbo.create_customer({"DisplayName": "Stale Co"}, "stale-1")
    qbo.sparse_update_customer(created.id, created.sync_token, {"Notes": "a"}, "stale-2")
    with pytest.raises(StaleObjectError) as excinfo:
        qbo.sparse_update_customer(created.id, created.sync_token, {"Notes": "b"}, "stale-3")
    assert excinfo.value.code == "5010"


def test_bad_parent_needs_action(qbo: QboClient) -> None:
    with pytest.raises(NeedsActionError) as excinfo:
        qbo.create_customer(
            {"DisplayName": "Orphan Job", "Job": True, "ParentRef": {"value": "4242"}}, "orphan"
        )
    assert excinfo.value.code == "2500"
    assert "parent" in excinfo.value.reason


def test_write_request_ids_are_validated(qbo: QboClient) -> None:
    with pytest.raises(ValueError):
        qbo.create_customer({"DisplayName": "X"}, "r" * 51)
    with pytest.raises(ValueError):
        qbo.create_customer({"DisplayName": "X"}, "")


# --- typed errors at once; a resend only for a dropped connection ---------------------------


def _until_created(call: Callable[[], object], tries: int = 5) -> tuple[object, int]:
    """What the calling task does: call again after a TransientError (its backoff skipped)."""
    for attempt in range(1, tries + 1):
        try:
            return call(), attempt
        except TransientError:
            continue
    raise AssertionError(f"still failing after {tries} calls")


@pytest.mark.parametrize("kind", ["500", "503", "lost_response"])
def test_retry_after_server_error_or_lost_response_creates_no_duplicate(
    kind: str,
    qbo: QboClient,
    control: Control,
    qbo_emulator: QboEmulator,
    records: list[RequestRecord],
    sleeps: list[float],
) -> None:
    control.fault(kind=kind, method="POST", path="/customer", count=2)
    created, calls = _until_created(
        lambda: qbo.create_customer({"DisplayName": "Retry Co"}, "retry-create-1")
    )
    assert len(customers_named(qbo_emulator, "Retry Co")) == 1
    attempts = writes(records)
    assert len(attempts) == 3
    assert {a.url for a in attempts} == {attempts[0].url}  # same requestid every time
    assert "requestid=retry-create-1" in attempts[0].url
    assert attempts[-1].status == 200
    assert sleeps == []  # the client never waits; the caller's backoff decides when
    counters = control.get("counters")
    if kind == "lost_response":
        # A dropped connection is resent once at once: the first call sent twice (both
        # executed, the resend replayed) and raised; the second call was replayed too.
        assert calls == 2
        assert counters["replays"] == 2
        assert [a.status for a in attempts[:2]] == [None, None]
    else:
        # A 5xx is raised at once: one request per call.
        assert calls == 3
        assert counters["statuses"][kind] == 2
    assert isinstance(created, QboCustomerData) and created.display_name == "Retry Co"


def test_server_error_is_raised_at_once_without_sleeping(
    qbo: QboClient, control: Control, records: list[RequestRecord], sleeps: list[float]
) -> None:
    control.fault(kind="503", path="/query", count=10)
    with pytest.raises(TransientError) as excinfo:
        qbo.find_customers_by_display_name("Anyone")
    assert type(excinfo.value) is TransientError
    assert excinfo.value.status == 503
    assert control.get("counters")["statuses"]["503"] == 1
    assert [r.status for r in records] == [503]
    assert sleeps == []


def test_timeout_is_raised_and_the_next_call_replays(
    qbo_emulator: QboEmulator,
    control: Control,
    make_client: Callable[..., QboClient],
    records: list[RequestRecord],
    sleeps: list[float],
) -> None:
    client = make_client(config=config_for(qbo_emulator, timeout_seconds=0.4))
    assert isinstance(client._qb.session.get_adapter("http://x"), TimeoutHTTPAdapter)
    # The server commits the create, then stalls past the client's timeout.
    control.fault(kind="timeout", method="POST", path="/customer", seconds=1.0, commit=True)
    with pytest.raises(TransientError) as excinfo:
        client.create_customer({"DisplayName": "Slow Co"}, "timeout-create-1")
    assert excinfo.value.detail == "ReadTimeout"  # gave up at 0.4 s, before the 1 s stall ended
    assert not isinstance(excinfo.value, ConnectionDroppedError)  # not resent at once
    # The task's next try sends the same requestid: QBO replays, no second customer.
    client.create_customer({"DisplayName": "Slow Co"}, "timeout-create-1")
    assert len(customers_named(qbo_emulator, "Slow Co")) == 1
    first, second = writes(records)
    assert (first.status, first.error) == (None, "ReadTimeout")
    assert second.status == 200 and second.url == first.url
    assert sleeps == []


def test_sparse_update_retry_after_lost_response_applies_once(
    qbo: QboClient, control: Control, qbo_emulator: QboEmulator, sleeps: list[float]
) -> None:
    created = qbo.create_customer({"DisplayName": "Update Once"}, "upd-once-1")
    control.fault(kind="lost_response", method="POST", path="/customer")
    updated = qbo.sparse_update_customer(created.id, "0", {"Notes": "x"}, "upd-once-2")
    # Resent at once and replayed, not re-applied (a second apply would be a 5010 or
    # SyncToken 2).
    assert updated.sync_token == "1"
    assert customers_named(qbo_emulator, "Update Once")[0]["SyncToken"] == "1"
    assert sleeps == []


def test_429_pauses_the_realm_and_raises_throttled_with_retry_after(
    qbo_emulator: QboEmulator,
    control: Control,
    make_client: Callable[..., QboClient],
    records: list[RequestRecord],
    sleeps: list[float],
) -> None:
    limiter = RealmRateLimiter.from_url(None, window_seconds=1.0)  # 429 pause: 1 s
    client = make_client(limiter=limiter)
    control.fault(kind="429_xml", path="/query")
    with pytest.raises(ThrottledError) as excinfo:
        client.find_customers_by_display_name("Anyone")
    # No Retry-After from QBO: the realm's pause is the answer to "how long".
    assert excinfo.value.retry_after == limiter.default_pause_seconds == 1.0
    assert [r.status for r in records] == [429]
    assert sleeps == []
    # Every worker of the realm waits while the pause lasts, not only the throttled one.
    assert limiter.pause_remaining(qbo_emulator.realm_id) > 0
    other = make_client(limiter=limiter)
    started = time.monotonic()
    assert other.find_customers_by_display_name("B") == []
    assert time.monotonic() - started >= 0.5
    assert control.get("counters")["sent_429"] == 1


def test_repeated_401_after_refresh_needs_reconnect(qbo: QboClient, control: Control) -> None:
    control.fault(kind="401", path="/query", count=2)
    with pytest.raises(ReconnectRequired):
        qbo.find_customers_by_display_name("Anyone")
    assert control.get("counters")["statuses"]["401"] == 2


# --- batch ---------------------------------------------------------------------------------


def test_batch_with_mixed_outcomes(qbo: QboClient, qbo_emulator: QboEmulator) -> None:
    parent = qbo.create_customer({"DisplayName": "Batch Parent"}, "batch-setup-1")
    existing = qbo.create_customer({"DisplayName": "Taken Name"}, "batch-setup-2")
    qbo.sparse_update_customer(existing.id, existing.sync_token, {"Notes": "v1"}, "batch-setup-3")
    results = qbo.batch(
        [
            BatchItem.create(
                "ok", {"DisplayName": "Fresh Job", "Job": True, "ParentRef": {"value": parent.id}}
            ),
            BatchItem.create("dup", {"DisplayName": "Taken Name"}),
            BatchItem.sparse_update("stale", existing.id, existing.sync_token, {"Notes": "v2"}),
            BatchItem.create(
                "orphan", {"DisplayName": "Orphan", "Job": True, "ParentRef": {"value": "777"}}
            ),
            BatchItem.sparse_update("upd", parent.id, parent.sync_token, {"Notes": "batched"}),
            BatchItem.select("find", "SELECT * FROM Customer WHERE DisplayName = 'Taken Name'"),
        ],
        request_id="batch-mixed-1",
    )
    by_bid = {r.bid: r for r in results}
    assert [r.bid for r in results] == ["ok", "dup", "stale", "orphan", "upd", "find"]
    assert by_bid["ok"].ok and by_bid["ok"].customer is not None
    assert by_bid["ok"].customer.parent_id == parent.id
    dup = by_bid["dup"].error
    assert isinstance(dup, NeedsActionError) and dup.code == "6240"
    assert '"Taken Name"' in dup.reason and dup.intuit_tid
    assert isinstance(by_bid["stale"].error, StaleObjectError)
    assert isinstance(by_bid["orphan"].error, NeedsActionError)
    assert by_bid["upd"].customer is not None and by_bid["upd"].customer.sync_token == "1"
    assert [c.id for c in by_bid["find"].customers] == [existing.id]
    assert len(customers_named(qbo_emulator, "Fresh Job")) == 1


def test_batch_retry_after_lost_response_creates_no_duplicates(
    qbo: QboClient, control: Control, qbo_emulator: QboEmulator
) -> None:
    control.fault(kind="lost_response", path="/batch")
    items = [BatchItem.create(f"b{i}", {"DisplayName": f"Batch Co {i}"}) for i in range(3)]
    results = qbo.batch(items, request_id="batch-lost-1")
    assert all(r.ok for r in results)
    assert len(qbo_emulator.entities("Customer")) == 3
    assert control.get("counters")["replays"] == 1


def test_batch_limits_are_enforced_before_sending(qbo: QboClient, control: Control) -> None:
    too_many = [BatchItem.create(f"b{i}", {"DisplayName": f"N{i}"}) for i in range(31)]
    with pytest.raises(ValueError):
        qbo.batch(too_many)
    with pytest.raises(ValueError):
        qbo.batch([BatchItem.create("b" * 11, {"DisplayName": "x"})])
    with pytest.raises(ValueError):
        qbo.batch([BatchItem.create("a", {}), BatchItem.create("a", {})])
    with pytest.raises(ValueError):
        qbo.batch([BatchItem.create("a", {"DisplayName": "x"})], request_id="r" * 37)
    assert control.get("counters")["api_requests"] == 0


# --- request records -----------------------------------------------------------------------


def test_request_records_carry_exchanges_but_no_tokens(
    qbo: QboClient,
    control: Control,
    token_store,
    records: list[RequestRecord],
) -> None:
    control.fault(kind="503", path="/customer")
    with pytest.raises(TransientError):
        qbo.create_customer({"DisplayName": "Recorded Co"}, "rec-1")
    qbo.create_customer({"DisplayName": "Recorded Co"}, "rec-1")  # the task's next try
    with pytest.raises(NeedsActionError):
        qbo.create_customer({"DisplayName": "Recorded Co"}, "rec-2")
    assert [r.status for r in records] == [503, 200, 400]
    assert json.loads(records[1].request_body or "") == {"DisplayName": "Recorded Co"}
    assert json.loads(records[1].response_body or "")["Customer"]["DisplayName"] == "Recorded Co"
    assert all(r.intuit_tid for r in records)
    assert all(r.duration_ms >= 0 for r in records)
    tokens = token_store.current()
    dump = repr(records)
    assert tokens.access_token not in dump and tokens.refresh_token not in dump
    assert "Bearer" not in dump and "Authorization" not in dump


def test_broken_recorder_does_not_break_the_call(
    qbo_emulator: QboEmulator, qbo_config: QboConfig, token_store
) -> None:
    def explode(record: RequestRecord) -> None:
        raise RuntimeError("recorder down")

    with QboClient(
        qbo_config, qbo_emulator.realm_id, token_store, NullRateLimiter(), on_request=explode
    ) as client:
        assert client.create_customer({"DisplayName": "Still Works"}, "rec-x").id


def test_unicode_names_round_trip_through_query(qbo: QboClient) -> None:
    name = "José Muñoz Łódź Builders"
    created = qbo.create_customer({"DisplayName": name}, "uni-1")
    assert [c.id for c in qbo.find_customers_by_display_name(name)] == [created.id]


def test_connection_refused_is_transient_after_one_resend(
    qbo_emulator: QboEmulator,
    make_client: Callable[..., QboClient],
    records: list[RequestRecord],
    sleeps: list[float],
) -> None:
    client = make_client(config=config_for(qbo_emulator, api_base_url="http://127.0.0.1:1/v3"))
    with pytest.raises(TransientError) as excinfo:
        client.find_customers_by_display_name("Anyone")
    assert isinstance(excinfo.value, ConnectionDroppedError)
    assert excinfo.value.detail == "ConnectionError"
    assert isinstance(excinfo.value.__cause__, requests.ConnectionError)
    assert [(r.status, r.error) for r in records] == [(None, "ConnectionError")] * 2
    assert sleeps == []
