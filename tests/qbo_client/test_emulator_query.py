"""Query language subset ([queries]), through python-quickbooks where it can express it.

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[queries] Intuit, data queries:
    https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import ValidationException
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.customer import Customer

from qbo_client.emulator import QboEmulator
from tests.qbo_client.conftest import Control

NAMES = ["Alder Works", "Birch Partners", "Cedar Group", "Douglas Fir Co", "Elm Street Lofts"]


@pytest.fixture
def seeded(qbo_emulator: QboEmulator, control: Control) -> dict[str, str]:
    """Five active customers, one inactive one, one job; returns DisplayName -> Id."""
    created = control.post(
        "seed",
        {
            "customers": [
                *({"DisplayName": n, "CompanyName": n} for n in NAMES),
                {"DisplayName": "Zinc Inactive", "Active": False},
                {"DisplayName": "O'Brien Site Services"},
                {"DisplayName": "Back\\slash Builders"},
                {"DisplayName": "ALD-1 Shop", "parent": "Alder Works"},
            ]
        },
    )["created"]
    return {c["DisplayName"]: c["Id"] for c in created}


def names(customers: list[Customer]) -> list[str]:
    return [c.DisplayName for c in customers]


def raw_query(qb: QuickBooks, statement: str) -> dict[str, Any]:
    result: dict[str, Any] = qb.query(statement)
    return result


def test_select_star_returns_active_customers_only(qb: QuickBooks, seeded: dict[str, str]) -> None:
    result = names(Customer.all(qb=qb))
    assert "Zinc Inactive" not in result
    assert len(result) == 8


def test_active_in_true_false_includes_inactive(qb: QuickBooks, seeded: dict[str, str]) -> None:
    assert len(Customer.where("Active IN (true, false)", qb=qb)) == 9
    assert names(Customer.where("Active = false", qb=qb)) == ["Zinc Inactive"]
    assert Customer.count(qb=qb) == 8
    assert Customer.count("Active IN (true, false)", qb=qb) == 9


def test_equality_in_and_like(qb: QuickBooks, seeded: dict[str, str]) -> None:
    assert names(Customer.filter(DisplayName="Cedar Group", qb=qb)) == ["Cedar Group"]
    ids = [seeded["Alder Works"], seeded["Elm Street Lofts"]]
    assert sorted(names(Customer.choose(ids, qb=qb))) == ["Alder Works", "Elm Street Lofts"]
    # Default order is by Id.
    assert names(Customer.where("DisplayName LIKE 'b%'", qb=qb)) == [
        "Birch Partners",
        "Back\\slash Builders",
    ]
    assert names(Customer.where("DisplayName LIKE '%Lofts'", qb=qb)) == ["Elm Street Lofts"]
    assert names(Customer.where("DisplayName LIKE '%Fir%'", qb=qb)) == ["Douglas Fir Co"]
    # LIKE's only wildcard is % ([queries]).
    assert Customer.where("DisplayName LIKE 'Alder_Works'", qb=qb) == []


def test_job_filter_and_parent_ref(qb: QuickBooks, seeded: dict[str, str]) -> None:
    assert names(Customer.where("Job = true", qb=qb)) == ["ALD-1 Shop"]
    job = Customer.where(f"ParentRef = '{seeded['Alder Works']}'", qb=qb)
    assert names(job) == ["ALD-1 Shop"]
    assert job[0].FullyQualifiedName == "Alder Works:ALD-1 Shop"


def test_backslash_escaped_quotes(qb: QuickBooks, seeded: dict[str, str]) -> None:
    # python-quickbooks escapes ' as \' ([queries], [python-quickbooks]).
    assert names(Customer.filter(DisplayName="O'Brien Site Services", qb=qb)) == [
        "O'Brien Site Services"
    ]
    escaped = "Back\\\\slash Builders"  # \\ in the statement stands for one backslash
    assert names(Customer.where(f"DisplayName = '{escaped}'", qb=qb)) == ["Back\\slash Builders"]


def test_order_by_both_spellings_and_directions(qb: QuickBooks, seeded: dict[str, str]) -> None:
    descending = names(Customer.where("CompanyName LIKE '%'", order_by="DisplayName DESC", qb=qb))
    assert descending == sorted(NAMES, reverse=True)
    ascending = names(
        Customer.query(
            "SELECT * FROM Customer WHERE CompanyName LIKE '%' ORDER BY DisplayName ASC", qb=qb
        )
    )
    assert ascending == sorted(NAMES)


def test_paging_with_startposition_and_maxresults(qb: QuickBooks, seeded: dict[str, str]) -> None:
    page = raw_query(qb, "SELECT * FROM Customer ORDERBY Id STARTPOSITION 3 MAXRESULTS 2")
    response = page["QueryResponse"]
    assert response["startPosition"] == 3
    assert response["maxResults"] == 2
    assert [c["DisplayName"] for c in response["Customer"]] == NAMES[2:4]
    beyond = raw_query(qb, "SELECT * FROM Customer STARTPOSITION 100 MAXRESULTS 10")
    assert beyond["QueryResponse"] == {}


def test_default_page_is_100_and_maxresults_caps_at_1000(
    qb: QuickBooks, qbo_emulator: QboEmulator, control: Control
) -> None:
    control.post("seed", {"customers": [{"DisplayName": f"Bulk {i:04d}"} for i in range(1005)]})
    assert len(Customer.query("SELECT * FROM Customer", qb=qb)) == 100
    big = raw_query(qb, "SELECT * FROM Customer MAXRESULTS 5000")["QueryResponse"]
    assert big["maxResults"] == 1000
    assert len(big["Customer"]) == 1000


def test_last_updated_time_filter_is_the_incremental_cursor(
    qb: QuickBooks, seeded: dict[str, str], control: Control
) -> None:
    control.post("clock", {"advance_seconds": 120})
    cedar = Customer.get(seeded["Cedar Group"], qb=qb)
    body = {"Id": cedar.Id, "SyncToken": cedar.SyncToken, "sparse": True, "Notes": "changed"}
    updated = qb.update_object("Customer", json.dumps(body))["Customer"]
    cursor = cedar.MetaData["LastUpdatedTime"]
    changed = Customer.where(
        f"MetaData.LastUpdatedTime > '{cursor}'", order_by="MetaData.LastUpdatedTime", qb=qb
    )
    assert names(changed) == ["Cedar Group"]
    at_or_after = Customer.where(
        f"MetaData.LastUpdatedTime >= '{updated['MetaData']['LastUpdatedTime']}'", qb=qb
    )
    assert names(at_or_after) == ["Cedar Group"]
    before = Customer.where(f"MetaData.LastUpdatedTime <= '{cursor}'", qb=qb)
    assert "Cedar Group" not in names(before) and len(before) == 7


def test_id_comparisons_are_numeric(qb: QuickBooks, seeded: dict[str, str]) -> None:
    third = int(seeded["Cedar Group"])
    assert len(Customer.where(f"Id < '{third}'", qb=qb)) == 2
    assert len(Customer.where(f"Id >= '{third}' AND CompanyName LIKE '%'", qb=qb)) == 3


def test_no_match_gives_an_empty_query_response(qb: QuickBooks, seeded: dict[str, str]) -> None:
    result = raw_query(qb, "SELECT * FROM Customer WHERE DisplayName = 'Nobody'")
    assert result["QueryResponse"] == {}
    assert "time" in result


@pytest.mark.parametrize("bad", ["O\u2019Brien Site Services", "Phase 1 \u2013 Sitework"])
def test_smart_punctuation_is_a_lexical_error(
    qb: QuickBooks, seeded: dict[str, str], bad: str
) -> None:
    with pytest.raises(ValidationException) as excinfo:
        Customer.filter(DisplayName=bad, qb=qb)
    assert excinfo.value.error_code == 4000
    assert excinfo.value.message == "Error parsing query"
    assert "Lexical error" in excinfo.value.detail


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Customer WHERE DisplayName = 'a' OR DisplayName = 'b'",
        "SELECT DisplayName FROM Customer",
        "SELECT * FROM Customer WHERE DisplayName = 'unterminated",
        "SELECT * Customer",
        "",
    ],
)
def test_unsupported_grammar_is_4000(qb: QuickBooks, statement: str) -> None:
    with pytest.raises(ValidationException) as excinfo:
        qb.query(statement)
    assert excinfo.value.error_code == 4000


def test_unknown_entity_or_property_is_4001(qb: QuickBooks) -> None:
    for statement in (
        "SELECT * FROM Customers",
        "SELECT * FROM customer",
        "SELECT * FROM Customer WHERE Colour = 'red'",
    ):
        with pytest.raises(ValidationException) as excinfo:
            qb.query(statement)
        assert excinfo.value.error_code == 4001


def test_other_entities_are_known_but_empty(qb: QuickBooks) -> None:
    assert raw_query(qb, "SELECT * FROM Invoice")["QueryResponse"] == {}
    assert raw_query(qb, "SELECT COUNT(*) FROM Item")["QueryResponse"] == {"totalCount": 0}


def test_get_query_with_url_encoded_statement(
    qbo_emulator: QboEmulator, qb: QuickBooks, seeded: dict[str, str]
) -> None:
    # python-quickbooks always POSTs; the GET form is the other documented way ([customer]).
    response = requests.get(
        f"{qbo_emulator.api_base_url}/company/{qbo_emulator.realm_id}/query",
        params={
            "query": "SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien Site Services'",
            "minorversion": "75",
        },
        headers={
            "Authorization": f"Bearer {qb.session.access_token}",
            "Accept": "application/json",
        },
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["QueryResponse"]["Customer"][0]["Id"] == seeded["O'Brien Site Services"]


def test_company_info_read_and_query(qbo_emulator: QboEmulator, qb: QuickBooks) -> None:
    info = CompanyInfo.get(qbo_emulator.realm_id, qb=qb)
    assert info.CompanyName == "Emulated Construction Co."
    assert names_of(CompanyInfo.all(qb=qb)) == ["Emulated Construction Co."]


def names_of(items: list[CompanyInfo]) -> list[str]:
    return [i.CompanyName for i in items]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("DisplayName = 'alder WORKS'", ["Alder Works"]),
        ("DisplayName = 'Alder  Works'", []),  # the query does not collapse spaces
        (
            "DisplayName IN ('Cedar Group', 'elm street lofts', 'Nobody')",
            ["Cedar Group", "Elm Street Lofts"],
        ),
        ("DisplayName = 'Zinc Inactive'", []),  # inactive unless the query asks
        ("DisplayName = 'Zinc Inactive' AND Active IN (true, false)", ["Zinc Inactive"]),
        ("DisplayName = 'ALD-1 Shop'", ["ALD-1 Shop"]),  # a job, by its own name
        ("DisplayName = 'O\\'Brien Site Services'", ["O'Brien Site Services"]),
        ("DisplayName = 'Alder Works' AND CompanyName = 'Birch Partners'", []),
    ],
)
def test_display_name_lookups_answer_as_a_scan_would(
    qb: QuickBooks, seeded: dict[str, str], where: str, expected: list[str]
) -> None:
    """``DisplayName =`` / ``IN`` are answered from the name index; the answer is the scan's."""
    assert sorted(names(Customer.where(where, qb=qb))) == expected
