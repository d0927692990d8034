"""Batch ([batch]) and change data capture ([cdc]).

Sources:
[batch] Intuit, batch:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/batch
[cdc] Intuit, change data capture:
    https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/change-data-capture
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from quickbooks import QuickBooks
from quickbooks.batch import batch_create, batch_update
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.vendor import Vendor

from tests.qbo_client.conftest import Control


def customer(name: str) -> Customer:
    c = Customer()
    c.DisplayName = name
    return c


def batch(qb: QuickBooks, items: list[dict[str, Any]], **params: str) -> dict[str, Any]:
    url = f"{qb.api_url}/company/{qb.company_id}/batch"
    body = json.dumps({"BatchItemRequest": items})
    result: dict[str, Any] = qb.post(url, body, params=dict(params))
    return result


def test_batch_create_through_python_quickbooks(qb: QuickBooks) -> None:
    result = batch_create([customer("Batch A"), customer("Batch B")], qb=qb)
    assert sorted(c.DisplayName for c in result.successes) == ["Batch A", "Batch B"]
    assert result.faults == []
    assert all(c.SyncToken == "0" for c in result.successes)


def test_batch_items_fail_individually_with_http_200(qb: QuickBooks) -> None:
    customer("Taken").save(qb=qb)
    result = batch_create([customer("Fresh"), customer("Taken"), customer("Bad: Name")], qb=qb)
    assert [c.DisplayName for c in result.successes] == ["Fresh"]
    codes = sorted(fault.Error[0].code for fault in result.faults)
    assert codes == ["6000", "6240"]
    assert {f.original_object.DisplayName for f in result.faults} == {"Taken", "Bad: Name"}


def test_batch_update_and_stale_item(qb: QuickBooks) -> None:
    saved = customer("Update Me").save(qb=qb)
    fresh = Customer.get(saved.Id, qb=qb)
    fresh.Notes = "via batch"
    stale = Customer.get(saved.Id, qb=qb)
    stale.Notes = "loses"
    result = batch_update([fresh, stale], qb=qb)
    assert [c.Notes for c in result.successes] == ["via batch"]
    assert [f.Error[0].code for f in result.faults] == ["5010"]


def test_batch_items_are_blind_to_each_other(qb: QuickBooks) -> None:
    parent = customer("Blind Parent").save(qb=qb)
    response = batch(
        qb,
        [
            {"bId": "b1", "operation": "create", "Customer": {"DisplayName": "Northgate Medical"}},
            {
                "bId": "b2",
                "Query": "SELECT * FROM Customer WHERE DisplayName = 'Northgate Medical'",
            },
            {
                "bId": "b3",
                "operation": "update",
                "Customer": {"Id": parent.Id, "SyncToken": "0", "sparse": True, "Notes": "n"},
            },
            {"bId": "b4", "Query": f"SELECT * FROM Customer WHERE Id = '{parent.Id}'"},
        ],
    )
    items = {item["bId"]: item for item in response["BatchItemResponse"]}
    assert items["b1"]["Customer"]["DisplayName"] == "Northgate Medical"
    assert items["b2"]["QueryResponse"] == {}  # b2 does not see b1
    assert items["b3"]["Customer"]["SyncToken"] == "1"
    assert items["b4"]["QueryResponse"]["Customer"][0]["SyncToken"] == "0"  # nor b3
    assert "time" in response


def test_parent_and_child_cannot_be_created_in_the_same_batch(qb: QuickBooks) -> None:
    first = batch(
        qb,
        [
            {"bId": "p", "operation": "create", "Customer": {"DisplayName": "Same Batch Parent"}},
        ],
    )
    parent_id = first["BatchItemResponse"][0]["Customer"]["Id"]
    next_id = str(int(parent_id) + 1)
    response = batch(
        qb,
        [
            {"bId": "p2", "operation": "create", "Customer": {"DisplayName": "Parent Two"}},
            {
                "bId": "c2",
                "operation": "create",
                "Customer": {
                    "DisplayName": "Child Two",
                    "Job": True,
                    "ParentRef": {"value": next_id},
                },
            },
        ],
    )
    items = {i["bId"]: i for i in response["BatchItemResponse"]}
    assert items["p2"]["Customer"]["Id"] == next_id
    assert items["c2"]["Fault"]["Error"][0]["code"] == "2500"


def test_customer_delete_fails_inside_a_batch_too(qb: QuickBooks) -> None:
    saved = customer("Stay").save(qb=qb)
    response = batch(
        qb, [{"bId": "d", "operation": "delete", "Customer": {"Id": saved.Id, "SyncToken": "0"}}]
    )
    fault = response["BatchItemResponse"][0]["Fault"]
    assert fault["type"] == "ValidationFault"
    assert fault["Error"][0]["code"] == "500"


def test_more_than_30_items_is_a_whole_request_fault(qb: QuickBooks) -> None:
    items = [
        {"bId": f"b{i}", "operation": "create", "Customer": {"DisplayName": f"N{i}"}}
        for i in range(31)
    ]
    with pytest.raises(QuickbooksException) as excinfo:
        batch(qb, items)
    assert excinfo.value.error_code == 6000
    assert Customer.count(qb=qb) == 0
    assert len(batch(qb, items[:30])["BatchItemResponse"]) == 30


def test_batch_requestid_plus_bid_over_50_characters_faults_each_item(qb: QuickBooks) -> None:
    request_id = "r" * 32
    response = batch(
        qb,
        [{"bId": "x" * 36, "operation": "create", "Customer": {"DisplayName": "Too Long Ids"}}],
        requestid=request_id,
    )
    assert response["BatchItemResponse"][0]["Fault"]["Error"][0]["code"] == "6000"


def test_batch_requestid_replays_the_first_response(qb: QuickBooks, control: Control) -> None:
    items = [{"bId": "1", "operation": "create", "Customer": {"DisplayName": "Replay Batch"}}]
    first = batch(qb, items, requestid="batch-req-1")
    second = batch(qb, items, requestid="batch-req-1")
    assert first == second
    assert Customer.count(qb=qb) == 1
    assert control.get("counters")["replays"] == 1


def test_cdc_returns_changes_since_including_inactive(qb: QuickBooks, control: Control) -> None:
    old = customer("Before Window").save(qb=qb)
    control.post("clock", {"advance_seconds": 1800})  # less than the token's hour
    since = Customer.get(old.Id, qb=qb).MetaData["LastUpdatedTime"]
    control.post("clock", {"advance_seconds": 60})
    changed = customer("In Window").save(qb=qb)
    gone = customer("Deactivated").save(qb=qb)
    qb.update_object(
        "Customer", json.dumps({"Id": gone.Id, "SyncToken": "0", "sparse": True, "Active": False})
    )
    vendor = Vendor()
    vendor.DisplayName = "Changed Vendor"
    vendor.save(qb=qb)

    later = (datetime.fromisoformat(since) + timedelta(seconds=1)).isoformat()
    result = change_data_capture([Customer, Vendor], later, qb=qb)
    assert sorted(c.DisplayName for c in result.Customer) == ["Deactivated", "In Window"]
    assert [v.DisplayName for v in result.Vendor] == ["Changed Vendor"]
    assert changed.Id in {c.Id for c in result.Customer}

    raw = qb.change_data_capture("Customer", later)
    query_response = raw["CDCResponse"][0]["QueryResponse"][0]
    assert query_response["startPosition"] == 1 and query_response["maxResults"] == 2


def test_cdc_rejects_changed_since_older_than_30_days(qb: QuickBooks) -> None:
    with pytest.raises(QuickbooksException) as excinfo:
        qb.change_data_capture("Customer", "2001-01-01T00:00:00-07:00")
    assert excinfo.value.error_code == 6000


def test_a_name_lookup_in_a_batch_sees_a_rename_of_the_same_batch_as_not_yet_done(
    qb: QuickBooks,
) -> None:
    """The name index is live; a batch's query must still answer from the pre-images."""
    renamed = customer("Quarry Old Name").save(qb=qb)
    response = batch(
        qb,
        [
            {
                "bId": "b1",
                "operation": "update",
                "Customer": {
                    "Id": renamed.Id,
                    "SyncToken": "0",
                    "sparse": True,
                    "DisplayName": "Quarry New Name",
                },
            },
            {"bId": "b2", "Query": "SELECT * FROM Customer WHERE DisplayName = 'Quarry Old Name'"},
            {"bId": "b3", "Query": "SELECT * FROM Customer WHERE DisplayName = 'Quarry New Name'"},
        ],
    )
    items = {item["bId"]: item for item in response["BatchItemResponse"]}
    assert items["b1"]["Customer"]["DisplayName"] == "Quarry New Name"
    assert [c["Id"] for c in items["b2"]["QueryResponse"]["Customer"]] == [renamed.Id]
    assert items["b3"]["QueryResponse"] == {}
