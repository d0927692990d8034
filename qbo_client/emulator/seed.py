"""Deterministic seed data: ``empty`` or ``demo`` (a construction company's books).

The demo company has 60 active top-level clients of its own, two inactive clients, a handful
of jobs (sub-customers, one nested two levels deep), vendors and employees, and then 35 more
top-level clients that are the Linarc emulator's demo clients: 30 under exactly the Linarc
name, 5 spelled a little differently, as a bookkeeper would have typed them. Three Linarc demo
clients, and all of Linarc's ``OTHER_CLIENT_NAMES``, are not customers at all. Ids, names,
addresses and timestamps are the same on every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from qbo_client.emulator import accounting
from qbo_client.emulator.clock import COMPANY_TZ
from qbo_client.emulator.rules import CUSTOMER, EMPLOYEE, VENDOR, EntitySpec
from qbo_client.emulator.state import Company

JsonDict = dict[str, Any]
SEEDS = ("empty", "demo")

DEMO_CLIENTS = (
    "Cascade County Schools",
    "Northgate Medical Partners",
    "Riverside Unified School District",
    "Summit Ridge Properties",
    "Harborview Hospitality Group",
    "Pinecrest Senior Living",
    "Lakeside Community Church",
    "Metro Transit Authority",
    "Evergreen College Foundation",
    "Blue Heron Development",
    "Columbia Gorge Wineries",
    "Deschutes County Facilities",
    "Willamette Valley Credit Union",
    "Ironwood Logistics",
    "Sunset Heights HOA",
    "Cedar Park Retail Center",
    "Granite Peak Resorts",
    "Westbrook Public Library",
    "Oakmont Medical Clinic",
    "Redwood Tech Campus",
    "Silver Falls Hotel & Spa",
    "O'Brien Site Services",
    "Mountain View Fire District",
    "Bayfront Marina Authority",
    "Clearwater Utilities",
    "Highland Orthopedic Associates",
    "St. Vincent Family Shelter",
    "Maple Grove Apartments",
    "Coastal Cold Storage",
    "Three Rivers Tribal Council",
    "Benton County Courthouse",
    "Brightwater Brewing Co.",
    "Crescent City Port District",
    "Juniper Ridge Golf Club",
    "Kensington Office Park",
    "Lincoln Heights Dental",
    "Meridian Data Centers",
    "Northwest Veterinary Hospital",
    "Olympic Peninsula Health",
    "Pacific Crest Outfitters",
    "Quail Run Estates",
    "Rainier Logistics Park",
    "Skyline Community Church",
    "Tamarack Assisted Living",
    "Umpqua Valley Schools",
    "Vista Del Mar Condominiums",
    "Whitman County Airport",
    "Yakima Fresh Packing",
    "Zephyr Wind Energy",
    "Aspen Grove Montessori",
    "Bridgeport Civic Center",
    "Cobalt Manufacturing",
    "Driftwood Beach Resort",
    "Emerald City Film Studios",
    "Foothills Animal Shelter",
    "Glacier Bay Seafoods",
    "Hawthorne Self Storage",
    "Island County Public Works",
    "Klamath Basin Irrigation",
    "Larkspur Community Hospital",
)
DEMO_INACTIVE_CLIENTS = ("Old Mill District Partners", "Benton Street Lofts")
# The Linarc emulator's demo clients (``linarc_client.emulator.data.DEMO_CLIENT_NAMES``),
# written out because qbo_client must not import linarc_client. With them, most projects of the
# Linarc demo find their client in QuickBooks. Created after every other demo entity, so the
# Ids above stay what they were. "Cascade County Schools" and "Northgate Medical Partners" are
# in DEMO_CLIENTS already.
# Under exactly the Linarc spelling:
DEMO_LINARC_CLIENTS = (
    "Summit Ridge Property Management",
    "Harborview Hospitality",
    "Pinecrest Unified School District",
    "Lakeshore Retail Holdings",
    "Silver Creek Municipal Utilities",
    "Bayside Community College",
    "Granite Peak Logistics",
    "Meridian Health System",
    "Cedar Valley Water District",
    "Ironwood Industrial Partners",
    "Blue Heron Apartments LLC",
    "Fairview Public Library",
    "Crescent Bay Marina",
    "Redstone Capital Real Estate",
    "Hillcrest Veterinary Clinic",
    "Brookside Office Park",
    "Sunnyvale Fire Protection District",
    "Mountain View Credit Union",
    "Willow Springs HOA",
    "Coastal Transit Authority",
    "Grandview Hotel Group",
    "Maplewood Dental Associates",
    "Trinity Lutheran School",
    "Falcon Ridge Data Centers",
    "Golden Gate Self Storage",
    "Aspen Grove Medical Center",
    "Lincoln Heights Housing Authority",
    "Tri-County Sheriff's Office",
    "Stonebridge Golf Club",
    "Parkside Animal Hospital",
)
# (Linarc spelling, QBO DisplayName): the same client typed differently in QuickBooks (a
# suffix added, punctuation dropped, "&" written out), so an exact name match misses them.
DEMO_LINARC_CLIENTS_RESPELLED = (
    ("Riverside Development Group", "Riverside Development Group, Inc."),
    ("St. Jude's Parish", "St Jude's Parish"),
    ("Ridgeline Brewing Co.", "Ridgeline Brewing Company"),
    ("Evergreen Senior Living", "Evergreen Senior Living LLC"),
    ("Westfield Parks & Recreation", "Westfield Parks and Recreation"),
)
# Linarc demo clients deliberately not in QBO, so the "client missing in QBO" case shows.
DEMO_LINARC_CLIENTS_MISSING = (
    "Oakmont Church of the Valley",
    "Copper Canyon Foods",
    "Prairie Wind Energy",
)
# (parent DisplayName, job DisplayName)
DEMO_JOBS = (
    ("Cascade County Schools", "CCS-2417 Maple Ridge Gym Addition"),
    ("Cascade County Schools", "CCS-2420 Bend High Roof Replacement"),
    ("Northgate Medical Partners", "NMP-1102 Imaging Wing Expansion"),
    ("Metro Transit Authority", "MTA-3001 Eastside Bus Depot"),
    ("MTA-3001 Eastside Bus Depot", "MTA-3001 Phase 2 Sitework"),
    ("Granite Peak Resorts", "GPR-0815 Lodge Renovation"),
    ("Old Mill District Partners", "OMD-0042 Warehouse Conversion"),
)
DEMO_VENDORS = (
    "Summit Concrete Supply",
    "Harbor Electric",
    "Cascade Steel Fabricators",
    "Ridgeline Excavation",
    "Precision Plumbing & Mechanical",
    "Northwest Lumber Co.",
)
DEMO_EMPLOYEES = (
    ("Maria", "Alvarez"),
    ("Dennis", "Cho"),
    ("Priya", "Natarajan"),
    ("Tom", "Becker"),
)
_CITIES = (
    ("Bend", "OR", "97701"),
    ("Portland", "OR", "97204"),
    ("Salem", "OR", "97301"),
    ("Eugene", "OR", "97401"),
    ("Spokane", "WA", "99201"),
    ("Tacoma", "WA", "98402"),
    ("Vancouver", "WA", "98660"),
    ("Boise", "ID", "83702"),
)
_STREETS = (
    "Main St",
    "Oak Ave",
    "Industrial Way",
    "Cedar Blvd",
    "Riverfront Dr",
    "Summit Rd",
    "Harbor Pl",
    "College Ave",
)
_DEMO_EPOCH = datetime(2025, 1, 6, 8, 0, 0, tzinfo=COMPANY_TZ)


def _address(index: int) -> JsonDict:
    city, state, postal = _CITIES[index % len(_CITIES)]
    return {
        "Line1": f"{(index * 137) % 8900 + 100} {_STREETS[index % len(_STREETS)]}",
        "City": city,
        "CountrySubDivisionCode": state,
        "PostalCode": postal,
        "Country": "USA",
    }


def _email_domain(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())[:30] + ".example.com"


def seed_company(company: Company, seed: str) -> None:
    """Fill an empty company with the named seed."""
    if seed not in SEEDS:
        raise ValueError(f"unknown seed {seed!r}; expected one of {SEEDS}")
    if seed == "demo":
        _seed_demo(company)


def _seed_demo(company: Company) -> None:
    moments = (_DEMO_EPOCH + timedelta(minutes=17 * i) for i in range(10_000))
    own_clients = DEMO_CLIENTS + DEMO_INACTIVE_CLIENTS
    for index, name in enumerate(own_clients):
        accounting.create_entity(company, CUSTOMER, _client_body(index, name), next(moments))
    by_name = {c["DisplayName"]: c["Id"] for c in company.values("Customer")}
    for parent_name, job_name in DEMO_JOBS:
        parent_id = by_name[parent_name]
        parent = company.get("Customer", parent_id)
        assert parent is not None
        body = {
            "DisplayName": job_name,
            "CompanyName": parent["CompanyName"],
            "Job": True,
            "ParentRef": {"value": parent_id},
            "BillWithParent": True,
            "ShipAddr": _address(len(by_name) + len(job_name)),
            "Notes": f"Linarc project {job_name.split(' ')[0]}",
        }
        created = accounting.create_entity(company, CUSTOMER, body, next(moments))
        by_name[job_name] = created["Id"]
    for name in DEMO_INACTIVE_CLIENTS:
        current = company.get("Customer", by_name[name])
        assert current is not None
        accounting.update_entity(
            company,
            CUSTOMER,
            {
                "Id": current["Id"],
                "SyncToken": current["SyncToken"],
                "sparse": True,
                "Active": False,
            },
            next(moments),
        )
    for index, name in enumerate(DEMO_VENDORS):
        accounting.create_entity(
            company,
            VENDOR,
            {
                "DisplayName": name,
                "CompanyName": name,
                "BillAddr": _address(index + 3),
                "PrimaryEmailAddr": {"Address": f"billing@{_email_domain(name)}"},
            },
            next(moments),
        )
    for given, family in DEMO_EMPLOYEES:
        accounting.create_entity(
            company, EMPLOYEE, {"GivenName": given, "FamilyName": family}, next(moments)
        )
    # Last, so that every Id above is the one it had before these were added.
    linarc_clients = DEMO_LINARC_CLIENTS + tuple(qbo for _, qbo in DEMO_LINARC_CLIENTS_RESPELLED)
    for index, name in enumerate(linarc_clients, start=len(own_clients)):
        accounting.create_entity(company, CUSTOMER, _client_body(index, name), next(moments))


def _client_body(index: int, name: str) -> JsonDict:
    return {
        "DisplayName": name,
        "CompanyName": name,
        "BillAddr": _address(index),
        "PrimaryEmailAddr": {"Address": f"ap@{_email_domain(name)}"},
        "PrimaryPhone": {"FreeFormNumber": f"(541) 555-{1000 + index * 7:04d}"},
    }


def seed_entities(company: Company, payload: Mapping[str, Any], now: datetime) -> list[JsonDict]:
    """``POST /__emulator__/seed``: create entities through the normal business rules.

    Accepts ``customers``, ``vendors`` and ``employees`` lists of API-style bodies. A
    customer may name its parent with ``"parent": "<DisplayName>"`` instead of
    ``ParentRef`` (``Job`` is then set for it); it may also set ``"Active": false``.
    """
    created: list[JsonDict] = []
    plan: tuple[tuple[str, EntitySpec], ...] = (
        ("customers", CUSTOMER),
        ("vendors", VENDOR),
        ("employees", EMPLOYEE),
    )
    for key, spec in plan:
        for raw in payload.get(key, []) or []:
            body = dict(raw)
            parent_name = body.pop("parent", None)
            inactive = body.get("Active") is False
            if inactive:
                body.pop("Active")
            if parent_name is not None:
                holder = company.name_holder(str(parent_name))
                if holder is None or holder[0] != "Customer":
                    raise ValueError(f"parent {parent_name!r} is not an existing customer")
                body["ParentRef"] = {"value": holder[1]}
                body["Job"] = True
            entity = accounting.create_entity(company, spec, body, now)
            if inactive:
                entity = accounting.update_entity(
                    company,
                    spec,
                    {
                        "Id": entity["Id"],
                        "SyncToken": entity["SyncToken"],
                        "sparse": True,
                        "Active": False,
                    },
                    now,
                )
            created.append({"type": spec.name, **entity})
    return created
