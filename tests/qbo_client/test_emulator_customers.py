"""Customer / Vendor / Employee rules through python-quickbooks ([customer], [errors]).

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[errors] Intuit, error codes:
    https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from quickbooks import QuickBooks
from quickbooks.exceptions import (
    ObjectNotFoundException,
    QuickbooksException,
    UnsupportedException,
    ValidationException,
)
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.employee import Employee
from quickbooks.objects.vendor import Vendor

from qbo_client.emulator import QboEmulator
from tests.qbo_client.conftest import Control


def create_customer(qb: QuickBooks, name: str, **fields: Any) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    for key, value in fields.items():
        setattr(customer, key, value)
    return customer.save(qb=qb)


def create_job(qb: QuickBooks, name: str, parent: Customer, **fields: Any) -> Customer:
    return create_customer(qb, name, Job=True, ParentRef=parent.to_ref(), **fields)


def post_customer(qb: QuickBooks, body: dict[str, Any]) -> dict[str, Any]:
    """A hand-built body (sparse updates must be built by hand, [python-quickbooks])."""
    result: dict[str, Any] = qb.update_object("Customer", json.dumps(body))
    return result


def fault_of(excinfo: pytest.ExceptionInfo[QuickbooksException]) -> tuple[int, str]:
    return excinfo.value.error_code, excinfo.value.message


# --- create and read ---


def test_create_returns_server_assigned_fields_like_the_reference(qb: QuickBooks) -> None:
    parent = create_customer(qb, "Cascade County Schools", CompanyName="Cascade County Schools")
    body = {
        "DisplayName": "CCS-2417 Maple Ridge Gym Addition",
        "CompanyName": "Cascade County Schools",
        "Job": True,
        "ParentRef": {"value": parent.Id},
        "BillWithParent": True,
        "ShipAddr": {
            "Line1": "1800 Maple Ridge Rd",
            "City": "Bend",
            "CountrySubDivisionCode": "OR",
            "PostalCode": "97701",
            "Country": "USA",
        },
        "Notes": "Linarc project 2417",
        "IsProject": True,  # ignored: v3 cannot create native projects ([customer])
        "FullyQualifiedName": "ignored",
    }
    response = qb.create_object("Customer", json.dumps(body), request_id="lnrc-2417-create-v1")
    job = response["Customer"]
    assert isinstance(response["time"], str) and response["time"][-6] in "+-"
    assert job["SyncToken"] == "0"
    assert job["domain"] == "QBO"
    assert job["sparse"] is False
    assert job["FullyQualifiedName"] == "Cascade County Schools:CCS-2417 Maple Ridge Gym Addition"
    assert job["Level"] == 1
    assert job["ParentRef"] == {"value": parent.Id}
    assert job["IsProject"] is False
    assert job["Active"] is True
    assert job["Balance"] == 0 and job["BalanceWithJobs"] == 0
    assert job["PrintOnCheckName"] == "Cascade County Schools"
    assert job["PreferredDeliveryMethod"] == "Print"
    assert job["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}
    assert job["ShipAddr"]["Id"]
    assert job["MetaData"]["CreateTime"] == job["MetaData"]["LastUpdatedTime"]
    assert int(job["Id"]) > int(parent.Id)

    read = Customer.get(job["Id"], qb=qb)
    assert read.DisplayName == body["DisplayName"]
    assert read.Notes == "Linarc project 2417"


def test_unknown_id_is_610_object_not_found(qb: QuickBooks) -> None:
    with pytest.raises(ObjectNotFoundException) as excinfo:
        Customer.get(4242, qb=qb)
    assert excinfo.value.error_code == 610


def test_display_name_is_derived_from_name_parts(qb: QuickBooks) -> None:
    customer = Customer()
    customer.GivenName = "Ada"
    customer.FamilyName = "Lovelace"
    saved = customer.save(qb=qb)
    assert saved.DisplayName == "Ada Lovelace"
    assert saved.PrintOnCheckName == "Ada Lovelace"


# --- updates and SyncToken ---


def test_sparse_update_changes_only_sent_fields(qb: QuickBooks) -> None:
    created = create_customer(
        qb, "Northgate Medical Partners", Notes="first", CompanyName="Northgate"
    )
    response = post_customer(
        qb, {"Id": created.Id, "SyncToken": created.SyncToken, "sparse": True, "Notes": "second"}
    )
    updated = response["Customer"]
    assert updated["SyncToken"] == "1"
    assert updated["Notes"] == "second"
    assert updated["CompanyName"] == "Northgate"
    assert updated["sparse"] is False
    assert updated["MetaData"]["CreateTime"] == created.MetaData["CreateTime"]


def test_full_update_clears_fields_missing_from_the_body(qb: QuickBooks) -> None:
    created = create_customer(qb, "Summit Ridge Properties", Notes="keep?", CompanyName="Summit")
    response = post_customer(
        qb, {"Id": created.Id, "SyncToken": "0", "DisplayName": "Summit Ridge Properties"}
    )
    updated = response["Customer"]
    assert "Notes" not in updated
    assert "CompanyName" not in updated
    assert updated["DisplayName"] == "Summit Ridge Properties"
    assert updated["SyncToken"] == "1"


def test_saving_the_same_object_twice_is_stale_5010(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "Pinecrest Senior Living"
    customer.save(qb=qb)
    customer.Notes = "edit 1"
    # SyncToken 0 → 1; python-quickbooks does not copy it back ([python-quickbooks]).
    customer.save(qb=qb)
    customer.Notes = "edit 2"
    with pytest.raises(QuickbooksException) as excinfo:
        customer.save(qb=qb)
    assert excinfo.value.error_code == 5010
    assert excinfo.value.message == "Stale Object Error"


def test_stale_sync_token_fault_shape_and_status(qb: QuickBooks) -> None:
    created = create_customer(qb, "Ironwood Logistics")
    post_customer(qb, {"Id": created.Id, "SyncToken": "0", "sparse": True, "Notes": "a"})
    statuses: list[int] = []
    qb.session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
    response = qb.session.post(
        f"{qb.api_url}/company/{qb.company_id}/customer",
        params={"minorversion": 75},
        json={"Id": created.Id, "SyncToken": "0", "sparse": True, "Notes": "b"},
        headers={
            "Accept": "application/json",
            "Authorization": f"Bearer {qb.session.access_token}",
        },
    )
    assert statuses == [400]
    body = response.json()
    assert set(body) == {"Fault", "time"}
    assert body["Fault"]["type"] == "ValidationFault"
    error = body["Fault"]["Error"][0]
    assert set(error) == {"Message", "Detail", "code", "element"}
    assert error["code"] == "5010"
    assert response.headers["intuit_tid"]


def test_update_of_unknown_id_is_610(qb: QuickBooks) -> None:
    with pytest.raises(ObjectNotFoundException):
        post_customer(qb, {"Id": "999", "SyncToken": "0", "sparse": True, "Notes": "x"})


def test_unknown_property_is_2010(qb: QuickBooks) -> None:
    with pytest.raises(ValidationException) as excinfo:
        qb.create_object("Customer", json.dumps({"DisplayName": "X", "DisplayNmae": "typo"}))
    assert excinfo.value.error_code == 2010


# --- uniqueness ---


@pytest.mark.parametrize("clash", ["Harborview Group", "harborview group", "  Harborview Group  "])
def test_duplicate_display_name_is_6240_case_insensitive_and_trimmed(
    qb: QuickBooks, clash: str
) -> None:
    create_customer(qb, "Harborview Group")
    with pytest.raises(QuickbooksException) as excinfo:
        create_customer(qb, clash)
    assert excinfo.value.error_code == 6240
    assert excinfo.value.message == "Duplicate Name Exists Error"


def test_display_name_is_unique_across_vendors_and_employees(qb: QuickBooks) -> None:
    vendor = Vendor()
    vendor.DisplayName = "Harbor Electric"
    vendor.save(qb=qb)
    employee = Employee()
    employee.GivenName = "Maria"
    employee.FamilyName = "Alvarez"
    employee.save(qb=qb)
    for name in ("Harbor Electric", "Maria Alvarez"):
        with pytest.raises(QuickbooksException) as excinfo:
            create_customer(qb, name)
        assert excinfo.value.error_code == 6240
    clash = Vendor()
    clash.DisplayName = "MARIA ALVAREZ"
    with pytest.raises(QuickbooksException):
        clash.save(qb=qb)


def test_inactive_customers_keep_their_name(qb: QuickBooks) -> None:
    created = create_customer(qb, "Old Mill District Partners")
    post_customer(qb, {"Id": created.Id, "SyncToken": "0", "sparse": True, "Active": False})
    with pytest.raises(QuickbooksException) as excinfo:
        create_customer(qb, "Old Mill District Partners")
    assert excinfo.value.error_code == 6240


def test_jobs_under_different_parents_still_collide(qb: QuickBooks) -> None:
    first = create_customer(qb, "Owner A")
    second = create_customer(qb, "Owner B")
    create_job(qb, "Phase 2 Sitework", first)
    with pytest.raises(QuickbooksException) as excinfo:
        create_job(qb, "Phase 2 Sitework", second)
    assert excinfo.value.error_code == 6240


def test_rename_frees_the_old_name(qb: QuickBooks) -> None:
    created = create_customer(qb, "Temp Name")
    post_customer(
        qb, {"Id": created.Id, "SyncToken": "0", "sparse": True, "DisplayName": "Final Name"}
    )
    assert create_customer(qb, "Temp Name").DisplayName == "Temp Name"


# --- text rules ---


@pytest.mark.parametrize("name", ["Client: Phase 1", "Tab\tName", "New\nLine"])
def test_colon_tab_newline_in_names_are_rejected_with_6000(qb: QuickBooks, name: str) -> None:
    with pytest.raises(QuickbooksException) as excinfo:
        create_customer(qb, name)
    assert excinfo.value.error_code == 6000


def test_colon_in_given_name_is_rejected(qb: QuickBooks) -> None:
    with pytest.raises(QuickbooksException) as excinfo:
        create_customer(qb, "Fine Name", GivenName="a:b")
    assert excinfo.value.error_code == 6000


@pytest.mark.parametrize(
    ("field", "limit"), [("DisplayName", 500), ("CompanyName", 100), ("Notes", 2000)]
)
def test_length_limits_are_2050(qb: QuickBooks, field: str, limit: int) -> None:
    ok = {"DisplayName": "Length Probe"}
    ok[field] = "x" * limit
    assert qb.create_object("Customer", json.dumps(ok))["Customer"][field] == "x" * limit
    too_long = {"DisplayName": "Length Probe 2", field: "y" * (limit + 1)}
    with pytest.raises(ValidationException) as excinfo:
        qb.create_object("Customer", json.dumps(too_long))
    assert excinfo.value.error_code == 2050
    assert f"Max:{limit}" in excinfo.value.detail


def test_bad_email_is_2210(qb: QuickBooks) -> None:
    body = {"DisplayName": "Mail Probe", "PrimaryEmailAddr": {"Address": "not-an-email"}}
    with pytest.raises(ValidationException) as excinfo:
        qb.create_object("Customer", json.dumps(body))
    assert excinfo.value.error_code == 2210


# --- sub-customers ---


def test_parent_ref_without_job_is_6150(qb: QuickBooks) -> None:
    parent = create_customer(qb, "Metro Transit Authority")
    with pytest.raises(QuickbooksException) as excinfo:
        create_customer(qb, "MTA-3001 Depot", ParentRef=parent.to_ref())  # Job defaults False
    assert excinfo.value.error_code == 6150


def test_job_without_parent_ref_is_2020(qb: QuickBooks) -> None:
    with pytest.raises(ValidationException) as excinfo:
        create_customer(qb, "Orphan Job", Job=True)
    assert excinfo.value.error_code == 2020


def test_parent_ref_to_missing_customer_is_2500(qb: QuickBooks) -> None:
    ref = Ref()
    ref.value = "999"
    with pytest.raises(ValidationException) as excinfo:
        create_customer(qb, "Lost Job", Job=True, ParentRef=ref)
    assert excinfo.value.error_code == 2500


def test_parent_ref_to_inactive_customer_is_610(qb: QuickBooks) -> None:
    parent = create_customer(qb, "Gone Client")
    post_customer(qb, {"Id": parent.Id, "SyncToken": "0", "sparse": True, "Active": False})
    with pytest.raises(ObjectNotFoundException) as excinfo:
        create_job(qb, "Gone Client Job", parent)
    assert excinfo.value.error_code == 610


def test_nesting_allows_four_levels_below_top_and_no_more(qb: QuickBooks) -> None:
    node = create_customer(qb, "Level 0")
    for level in range(1, 5):
        node = create_job(qb, f"Level {level}", node)
        assert node.Level == level
    assert node.FullyQualifiedName == "Level 0:Level 1:Level 2:Level 3:Level 4"
    with pytest.raises(QuickbooksException) as excinfo:
        create_job(qb, "Level 5", node)
    assert excinfo.value.error_code == 6000


def test_renaming_a_parent_updates_children_fully_qualified_names(qb: QuickBooks) -> None:
    parent = create_customer(qb, "Blue Heron Dev")
    job = create_job(qb, "BHD-1 Clubhouse", parent)
    post_customer(
        qb,
        {
            "Id": parent.Id,
            "SyncToken": "0",
            "sparse": True,
            "DisplayName": "Blue Heron Development",
        },
    )
    assert (
        Customer.get(job.Id, qb=qb).FullyQualifiedName == "Blue Heron Development:BHD-1 Clubhouse"
    )


def test_deactivating_a_parent_deactivates_its_jobs(qb: QuickBooks) -> None:
    parent = create_customer(qb, "Sunset Heights HOA")
    job = create_job(qb, "SH-7 Pool House", parent)
    post_customer(qb, {"Id": parent.Id, "SyncToken": "0", "sparse": True, "Active": False})
    reread = Customer.get(job.Id, qb=qb)
    assert reread.Active is False
    assert reread.SyncToken == "1"


def test_deactivating_with_open_balance_fails(qb: QuickBooks) -> None:
    created = qb.create_object(
        "Customer", json.dumps({"DisplayName": "Owes Money", "Balance": 125.5})
    )["Customer"]
    assert created["Balance"] == 125.5
    with pytest.raises(QuickbooksException) as excinfo:
        post_customer(qb, {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert excinfo.value.error_code == 6000
    assert excinfo.value.message == "Delete List Has Balance Error"


def test_customer_delete_is_unsupported_500(qb: QuickBooks) -> None:
    created = create_customer(qb, "Cannot Delete Me")
    with pytest.raises(UnsupportedException) as excinfo:
        # Customer has no delete() in python-quickbooks; the raw call is what #289 users try.
        qb.delete_object("Customer", json.dumps({"Id": created.Id, "SyncToken": "0"}))
    assert excinfo.value.error_code == 500
    assert Customer.get(created.Id, qb=qb).Active is True


# --- vendors and employees ---


def test_vendor_and_employee_create_read_query(qb: QuickBooks) -> None:
    vendor = Vendor()
    vendor.DisplayName = "Summit Concrete Supply"
    saved_vendor = vendor.save(qb=qb)
    assert saved_vendor.SyncToken == "0"
    assert Vendor.get(saved_vendor.Id, qb=qb).DisplayName == "Summit Concrete Supply"

    employee = Employee()
    employee.GivenName = "Dennis"
    employee.FamilyName = "Cho"
    saved_employee = employee.save(qb=qb)
    assert saved_employee.DisplayName == "Dennis Cho"
    assert [e.Id for e in Employee.all(qb=qb)] == [saved_employee.Id]
    assert [v.DisplayName for v in Vendor.filter(DisplayName="Summit Concrete Supply", qb=qb)] == [
        "Summit Concrete Supply"
    ]
    # Ids come from one name-list sequence.
    assert saved_vendor.Id != saved_employee.Id


def test_state_endpoint_lists_all_entities(
    qbo_emulator: QboEmulator, qb: QuickBooks, control: Control
) -> None:
    create_customer(qb, "One")
    state = control.get("state")
    assert [c["DisplayName"] for c in state["Customer"]] == ["One"]
    assert state["Vendor"] == [] and state["Employee"] == []


def test_read_modify_save_round_trips_for_every_name_entity(qb: QuickBooks) -> None:
    # python-quickbooks sends back every field it read plus its own defaults
    # ([python-quickbooks]); the emulator must accept all of them (no 2010) and keep the
    # job's hierarchy.
    parent = create_customer(qb, "Round Trip Owner")
    job = Customer.get(create_job(qb, "RT-1 Job", parent).Id, qb=qb)
    job.Notes = "edited"
    saved_job = job.save(qb=qb)
    assert (saved_job.SyncToken, saved_job.Level, saved_job.Notes) == ("1", 1, "edited")
    assert saved_job.FullyQualifiedName == "Round Trip Owner:RT-1 Job"

    vendor = Vendor()
    vendor.DisplayName = "Round Trip Vendor"
    vendor = Vendor.get(vendor.save(qb=qb).Id, qb=qb)
    vendor.AcctNum = "V-1"
    assert vendor.save(qb=qb).SyncToken == "1"

    employee = Employee()
    employee.GivenName = "Round"
    employee.FamilyName = "Trip"
    employee = Employee.get(employee.save(qb=qb).Id, qb=qb)
    employee.EmployeeNumber = "E-7"
    assert employee.save(qb=qb).EmployeeNumber == "E-7"
