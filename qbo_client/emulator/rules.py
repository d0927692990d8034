"""Entity field lists, limits and the text rules shared by Customer, Vendor and Employee.

The fields, limits and forbidden characters are Intuit's ([customer]); the field lists are
the ones python-quickbooks 0.9.12 serialises (its ``to_json()`` sends every attribute it
knows, with ``""``/``0``/``False`` defaults, so every one of them must be accepted).

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[queries] Intuit, data queries:
    https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
[errors] Intuit, error codes:
    https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qbo_client.emulator import errors

JsonDict = dict[str, Any]

# Fields QBO computes; ignored when sent ([customer]: "ignored if sent").
SYSTEM_FIELDS = frozenset(
    {
        "Id",
        "SyncToken",
        "domain",
        "sparse",
        "MetaData",
        "FullyQualifiedName",
        "Level",
        "BalanceWithJobs",
        "IsProject",
        "status",
        "V4IDPseudonym",
    }
)

_PERSON_NAME_LIMITS = {
    "Title": 16,
    "GivenName": 100,
    "MiddleName": 100,
    "FamilyName": 100,
    "Suffix": 16,
}
_NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")

_COMMON_FIELDS = frozenset(
    {
        "Id",
        "SyncToken",
        "domain",
        "sparse",
        "MetaData",
        "DisplayName",
        "Title",
        "GivenName",
        "MiddleName",
        "FamilyName",
        "Suffix",
        "CompanyName",
        "PrintOnCheckName",
        "Active",
        "PrimaryPhone",
        "AlternatePhone",
        "Mobile",
        "Fax",
        "PrimaryEmailAddr",
        "WebAddr",
        "CurrencyRef",
        "Balance",
        "V4IDPseudonym",
        "Source",
        "BusinessNumber",
        "GSTIN",
        "GSTRegistrationType",
        "CustomField",
        "OtherContactInfo",
    }
)


@dataclass(frozen=True)
class EntitySpec:
    """What one name-list entity accepts and how its text fields are limited."""

    name: str
    path: str
    fields: frozenset[str]
    string_limits: Mapping[str, int]
    # DisplayName, Title, GivenName, MiddleName, FamilyName, Suffix and PrintOnCheckName must
    # not contain ':' (the FullyQualifiedName separator), tab or newline ([customer]).
    name_fields: tuple[str, ...]
    address_fields: tuple[str, ...]
    email_field: str
    # Booleans a full update resets to their default when the body leaves them out.
    bool_defaults: Mapping[str, bool]
    # Fields fixed at create time (kept through every update).
    create_only: frozenset[str]


CUSTOMER = EntitySpec(
    name="Customer",
    path="customer",
    fields=_COMMON_FIELDS
    | {
        "FullyQualifiedName",
        "Notes",
        "IsProject",
        "Job",
        "BillWithParent",
        "ParentRef",
        "Level",
        "Taxable",
        "BalanceWithJobs",
        "OpenBalanceDate",
        "PreferredDeliveryMethod",
        "ResaleNum",
        "PrimaryTaxIdentifier",
        "SecondaryTaxIdentifier",
        "TaxExemptionReasonId",
        "BillAddr",
        "ShipAddr",
        "DefaultTaxCodeRef",
        "SalesTermRef",
        "PaymentMethodRef",
        "ARAccountRef",
        "CustomerTypeRef",
        "ClientEntityId",
        "status",
    },
    string_limits={
        "DisplayName": 500,
        **_PERSON_NAME_LIMITS,
        "CompanyName": 100,
        "PrintOnCheckName": 110,
        "Notes": 2000,
        "ResaleNum": 16,
    },
    name_fields=("DisplayName", *_NAME_PARTS, "PrintOnCheckName"),
    address_fields=("BillAddr", "ShipAddr"),
    email_field="PrimaryEmailAddr",
    bool_defaults={"Active": True, "Job": False, "BillWithParent": False},
    create_only=frozenset({"Balance", "OpenBalanceDate", "CurrencyRef"}),
)

VENDOR = EntitySpec(
    name="Vendor",
    path="vendor",
    fields=_COMMON_FIELDS
    | {
        "TaxIdentifier",
        "BillRate",
        "CostRate",
        "AcctNum",
        "Vendor1099",
        "T4AEligible",
        "T5018Eligible",
        "HasTPAR",
        "TaxReportingBasis",
        "BillAddr",
        "TermRef",
        "APAccountRef",
        "VendorPaymentBankDetail",
        "OpenBalanceDate",
    },
    string_limits={
        "DisplayName": 500,
        **_PERSON_NAME_LIMITS,
        "CompanyName": 100,
        "PrintOnCheckName": 110,
        "AcctNum": 100,
    },
    name_fields=("DisplayName", *_NAME_PARTS, "PrintOnCheckName"),
    address_fields=("BillAddr",),
    email_field="PrimaryEmailAddr",
    bool_defaults={"Active": True, "Vendor1099": False},
    create_only=frozenset({"Balance", "OpenBalanceDate", "CurrencyRef"}),
)

EMPLOYEE = EntitySpec(
    name="Employee",
    path="employee",
    fields=frozenset(
        {
            "Id",
            "SyncToken",
            "domain",
            "sparse",
            "MetaData",
            "DisplayName",
            "Title",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "PrintOnCheckName",
            "Active",
            "PrimaryAddr",
            "PrimaryPhone",
            "Mobile",
            "PrimaryEmailAddr",
            "EmailAddress",
            "SSN",
            "EmployeeNumber",
            "BillRate",
            "CostRate",
            "BirthDate",
            "Gender",
            "HiredDate",
            "ReleasedDate",
            "Organization",
            "BillableTime",
            "V4IDPseudonym",
            "CompanyName",
        }
    ),
    string_limits={
        "DisplayName": 500,
        **_PERSON_NAME_LIMITS,
        "PrintOnCheckName": 100,
        "EmployeeNumber": 100,
    },
    name_fields=("DisplayName", *_NAME_PARTS, "PrintOnCheckName"),
    address_fields=("PrimaryAddr",),
    email_field="PrimaryEmailAddr",
    bool_defaults={"Active": True, "BillableTime": False},
    create_only=frozenset(),
)

NAME_ENTITY_SPECS: dict[str, EntitySpec] = {s.name: s for s in (CUSTOMER, VENDOR, EMPLOYEE)}
SPECS_BY_PATH: dict[str, EntitySpec] = {s.path: s for s in (CUSTOMER, VENDOR, EMPLOYEE)}

# Address limits ([customer] PhysicalAddress).
_ADDRESS_LIMITS = {
    "Line1": 500,
    "Line2": 500,
    "Line3": 500,
    "Line4": 500,
    "Line5": 500,
    "City": 255,
    "CountrySubDivisionCode": 255,
    "Country": 255,
    "PostalCode": 30,
}
_ADDRESS_LINES_TOTAL = 2000
_PHONE_FIELDS = ("PrimaryPhone", "AlternatePhone", "Mobile", "Fax")
_FORBIDDEN_NAME_CHARS = (":", "\t", "\n", "\r")


def clean(value: Any) -> Any:
    """Drop ``None`` and ``""`` recursively: QBO returns only properties that have values
    ([queries]), and python-quickbooks sends ``""`` for every unset string ([python-quickbooks])."""
    if isinstance(value, dict):
        cleaned = {k: clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v != "" and v != {}}
    if isinstance(value, list):
        return [clean(v) for v in value if v is not None]
    return value


def check_known_properties(spec: EntitySpec, body: Mapping[str, Any]) -> None:
    """Unknown top-level properties give 2010 ([errors])."""
    for key in body:
        if key not in spec.fields:
            raise errors.invalid_property(key)


def coerce_bool(spec: EntitySpec, entity: JsonDict, key: str) -> None:
    """Booleans must be JSON booleans; ``"true"``/``"false"`` strings are tolerated."""
    if key not in entity:
        return
    value = entity[key]
    if isinstance(value, bool):
        return
    if isinstance(value, str) and value.lower() in ("true", "false"):
        entity[key] = value.lower() == "true"
        return
    raise errors.invalid_property(key, f"has an invalid value for {spec.name}")


def derive_display_name(entity: Mapping[str, Any]) -> str:
    """DisplayName defaults to Title GivenName MiddleName FamilyName Suffix ([customer])."""
    parts = [str(entity[p]).strip() for p in _NAME_PARTS if str(entity.get(p) or "").strip()]
    return " ".join(parts)


def name_key(display_name: str) -> str:
    """The uniqueness key: trimmed and case-folded ([customer]; case rule unverified)."""
    return " ".join(display_name.split()).casefold()


def validate_text(spec: EntitySpec, entity: Mapping[str, Any]) -> None:
    """Forbidden characters (6000), lengths (2050) and e-mail syntax (2210)."""
    for field_name in spec.name_fields:
        value = entity.get(field_name)
        if isinstance(value, str) and any(ch in value for ch in _FORBIDDEN_NAME_CHARS):
            raise errors.business_validation(
                f"The {field_name} supplied contains an invalid character. "
                "Colons, tabs and new lines are not allowed in names.",
                element=field_name,
            )
    for field_name, maximum in spec.string_limits.items():
        _check_length(entity.get(field_name), field_name, maximum)
    for field_name in _PHONE_FIELDS:
        phone = entity.get(field_name)
        if isinstance(phone, dict):
            _check_length(phone.get("FreeFormNumber"), f"{field_name}.FreeFormNumber", 30)
    web = entity.get("WebAddr")
    if isinstance(web, dict):
        _check_length(web.get("URI"), "WebAddr.URI", 1000)
    for field_name in spec.address_fields:
        address = entity.get(field_name)
        if isinstance(address, dict):
            _validate_address(field_name, address)
    email = entity.get(spec.email_field)
    if isinstance(email, dict) and email.get("Address"):
        address_text = str(email["Address"])
        _check_length(address_text, f"{spec.email_field}.Address", 100)
        # "Must look like RFC 822 (contain @ and .)" ([customer]).
        if "@" not in address_text or "." not in address_text.split("@")[-1]:
            raise errors.invalid_email(f"{spec.email_field}.Address")


def _validate_address(field_name: str, address: Mapping[str, Any]) -> None:
    total = 0
    for key, maximum in _ADDRESS_LIMITS.items():
        value = address.get(key)
        _check_length(value, f"{field_name}.{key}", maximum)
        if key.startswith("Line") and isinstance(value, str):
            total += len(value)
    if total > _ADDRESS_LINES_TOTAL:
        raise errors.string_length(f"{field_name}.Line1", _ADDRESS_LINES_TOTAL, total)


def _check_length(value: Any, element: str, maximum: int) -> None:
    if isinstance(value, str) and len(value) > maximum:
        raise errors.string_length(element, maximum, len(value))
