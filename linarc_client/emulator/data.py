"""Deterministic, realistic construction projects for the Linarc emulator.

The same ``count`` and ``seed`` always give the same projects (the demo, the tests and the
benchmarks rely on it). Most clients are :data:`DEMO_CLIENT_NAMES`, which the QBO emulator's
demo seed also holds (32 of them under the same name, 5 spelled differently, 3 not at all), so
most demo projects find their client in QuickBooks; a few are :data:`OTHER_CLIENT_NAMES`,
which are not in QBO, so the *Needs Action* path shows too.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, NamedTuple

from linarc_client import contract as c

# Top-level customers of the demo company. The QBO emulator's demo seed has them too
# (qbo_client/emulator/seed.py): most under the same DisplayName, five spelled a little
# differently, three missing (Oakmont Church of the Valley, Copper Canyon Foods, Prairie
# Wind Energy).
DEMO_CLIENT_NAMES: Final[tuple[str, ...]] = (
    "Cascade County Schools",
    "Northgate Medical Partners",
    "Riverside Development Group",
    "Summit Ridge Property Management",
    "Evergreen Senior Living",
    "Harborview Hospitality",
    "Pinecrest Unified School District",
    "Lakeshore Retail Holdings",
    "Silver Creek Municipal Utilities",
    "Bayside Community College",
    "Granite Peak Logistics",
    "Westfield Parks & Recreation",
    "Oakmont Church of the Valley",
    "Meridian Health System",
    "Cedar Valley Water District",
    "Ironwood Industrial Partners",
    "Blue Heron Apartments LLC",
    "Fairview Public Library",
    "Crescent Bay Marina",
    "Redstone Capital Real Estate",
    "St. Jude's Parish",
    "Hillcrest Veterinary Clinic",
    "Copper Canyon Foods",
    "Brookside Office Park",
    "Sunnyvale Fire Protection District",
    "Mountain View Credit Union",
    "Prairie Wind Energy",
    "Ridgeline Brewing Co.",
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

# Owners that are not QBO customers in the demo: their projects need a customer chosen.
OTHER_CLIENT_NAMES: Final[tuple[str, ...]] = (
    "Quarry Lane Partners",
    "Juniper Hills Winery",
    "Northstar Robotics",
    "Elm & Oak Cooperative",
    "Delta Pacific Shipping",
)

_PLACES = (
    "Maple Ridge", "Cedar Hollow", "Harbor Point", "Oak Park", "Riverbend", "Pine Crest",
    "Lakeside", "Summit View", "Willow Creek", "Granite Falls", "Eagle Rock", "Fox Run",
    "Stone Bridge", "Aspen Meadows", "Silver Lake", "Birch Hill", "Canyon Crest", "Bayview",
    "Highland Park", "Sunset Ridge", "Mill Creek", "Elm Grove", "Red Oak", "Clearwater",
    "North Shore", "Heritage Square", "Brookfield", "Larkspur", "Kingsbury", "Westgate",
    "Iron Horse", "Copper Hill", "Spring Valley", "Hawthorne", "Juniper Flats", "Ocean Crest",
    "Prairie View", "Timberline", "Magnolia", "Rosewood",
)  # fmt: skip
_FACILITIES = (
    "Gym", "Library", "Elementary School", "High School", "Medical Office Building",
    "Fire Station", "Community Center", "Clinic", "Warehouse", "Distribution Center",
    "Office Tower", "Retail Center", "Senior Living Center", "Apartments", "Parking Garage",
    "Water Treatment Plant", "Hotel", "Church", "Data Center", "Science Lab",
    "Police Station", "Transit Center", "Dental Office", "Brewery", "Animal Hospital",
    "Credit Union Branch", "Townhomes", "Sports Complex", "Marina", "City Hall",
)  # fmt: skip
_WORKS = (
    "Addition", "Renovation", "Tenant Improvement", "Roof Replacement", "HVAC Upgrade",
    "Expansion", "Seismic Retrofit", "New Construction", "Interior Fit-Out", "Remodel",
    "Site Work", "ADA Upgrades", "Facade Restoration", "Electrical Upgrade", "Modernization",
)  # fmt: skip
_STREETS = (
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park",
    "Ridge", "Church", "River", "Mill", "Spring", "Sunset", "Highland", "Meadow", "Forest",
    "Jefferson", "Madison", "Franklin", "Lincoln", "Airport", "Industrial",
)  # fmt: skip
_STREET_TYPES = ("St", "Ave", "Blvd", "Rd", "Dr", "Way", "Ln", "Pkwy")
_LINE2 = ("Suite 100", "Suite 210", "Building B", "Unit 4", "Floor 3", "Lot 12")
_CITIES = (
    ("Seattle", "WA", "981"), ("Tacoma", "WA", "984"), ("Spokane", "WA", "992"),
    ("Portland", "OR", "972"), ("Eugene", "OR", "974"), ("Boise", "ID", "837"),
    ("Sacramento", "CA", "958"), ("Fresno", "CA", "937"), ("San Jose", "CA", "951"),
    ("Reno", "NV", "895"), ("Denver", "CO", "802"), ("Salt Lake City", "UT", "841"),
    ("Phoenix", "AZ", "850"), ("Austin", "TX", "787"), ("Bozeman", "MT", "597"),
)  # fmt: skip
# (status, weight): most of a contractor's list is active or recently finished work.
_STATUS_WEIGHTS = (
    ("Active", 35),
    ("Completed", 20),
    ("Pre-Construction", 14),
    ("Closed", 13),
    ("Bidding", 10),
    ("On Hold", 8),
)
_STATUSES = tuple(status for status, _ in _STATUS_WEIGHTS)
_CUMULATIVE_WEIGHTS = tuple(itertools.accumulate(weight for _, weight in _STATUS_WEIGHTS))
_TOTAL_WEIGHT = _CUMULATIVE_WEIGHTS[-1]

# The generated world's "today": fixed, so data do not depend on when the emulator starts.
REFERENCE_DATE: Final = date(2025, 6, 30)
_UPDATED_FROM = datetime(2024, 1, 1, tzinfo=UTC)
_UPDATED_SPAN_SECONDS = int((datetime(2025, 6, 30, tzinfo=UTC) - _UPDATED_FROM).total_seconds())

FIRST_PROJECT_ID: Final = 100001
FIRST_PROJECT_NUMBER: Final = 1001

# --- hostile cases -------------------------------------------------------------------------
# Each is a partial record laid over a generated one, under a fixed id, so tests and the demo
# can find it whatever --projects and --seed are.
_LONG_NAME = ("Cascade County Schools District-Wide Modernization Program " * 6)[:300]
HOSTILE_CASES: Final[dict[str, dict[str, Any]]] = {
    "colon_in_name": {c.FIELD_NAME: "Harbor Point: Phase 2 Parking Structure"},
    "long_name": {c.FIELD_NAME: _LONG_NAME},
    "emoji_in_name": {c.FIELD_NAME: "Sunrise Daycare 🌅 Playground Renovation 🚧"},
    "html_in_name": {c.FIELD_NAME: "<script>alert(1)</script> Lobby Refresh"},
    "missing_end_date": {c.FIELD_STATUS: "Active", c.FIELD_END_DATE: None},
    "end_before_start": {
        c.FIELD_STATUS: "Active",
        c.FIELD_START_DATE: "2024-06-01",
        c.FIELD_END_DATE: "2024-01-01",
    },
    "duplicate_name_a": {
        c.FIELD_NAME: "Main Street Storefront Renovation",
        c.FIELD_CLIENT_NAME: DEMO_CLIENT_NAMES[2],
    },
    "duplicate_name_b": {
        c.FIELD_NAME: "Main Street Storefront Renovation",
        c.FIELD_CLIENT_NAME: DEMO_CLIENT_NAMES[3],
    },
    "unknown_status": {c.FIELD_STATUS: "Punch List"},
    "padded_name": {c.FIELD_NAME: "   Elm Grove Duplex Remodel  \t"},
    "number_as_int": {c.FIELD_NUMBER: 2417},
    "empty_name": {c.FIELD_NAME: "   "},
}
HOSTILE_IDS: Final[dict[str, str]] = {
    case: str(990001 + index) for index, case in enumerate(HOSTILE_CASES)
}


class GeneratedProject(NamedTuple):
    """One generated project, already encoded: what the emulator's store keeps."""

    linarc_id: str
    json: bytes  # the record as served, compact UTF-8 JSON
    status: str
    updated_at: float  # epoch seconds, for updated_since filtering
    number: str
    name: str
    client_name: str


def generate_projects(count: int, seed: int | str, *, hostile: bool = True) -> list[dict[str, Any]]:
    """``count`` projects as dicts, in id order (see :func:`iter_generated`)."""
    return [json.loads(project.json) for project in iter_generated(count, seed, hostile=hostile)]


def iter_generated(
    count: int, seed: int | str, *, hostile: bool = True
) -> Iterator[GeneratedProject]:
    """``count`` projects in id order. With ``hostile``, the :data:`HOSTILE_CASES` replace
    generated projects at evenly spread positions (the total stays ``count``; with fewer
    than 24 projects, only the first ``count // 2`` cases appear).

    Built for start-up speed (100,000 projects are on the benchmarks' clock): values come
    from precomputed tables and the JSON is written by one format string, because every
    generated string is known to need no escaping (checked at import). Hostile records go
    through :func:`json.dumps`.
    """
    rand = random.Random(seed).random
    # At most half the projects are hostile, so even a tiny data set stays mostly normal.
    cases = list(HOSTILE_CASES.items())[: count // 2] if hostile else []
    hostile_slots = {
        (2 * position + 1) * count // (2 * len(cases)): case
        for position, (case, _) in enumerate(cases)
    }
    for index in range(count):
        # Draw every value even for a hostile slot, so the other projects do not depend on
        # whether hostile cases are on.
        fields = _draw(rand, index)
        case = hostile_slots.get(index)
        if case is None:
            yield GeneratedProject(
                fields.linarc_id,
                _TEMPLATE.format(*fields).encode(),
                fields.status,
                fields.updated_epoch,
                fields.number,
                fields.name,
                fields.client_name,
            )
        else:
            yield _hostile(case, fields)


class _Fields(NamedTuple):
    """One generated project's values, in the order :data:`_TEMPLATE` numbers its slots."""

    linarc_id: str
    number: str
    name: str
    status: str
    start_date: str
    end_date_json: str  # '"2025-01-01"' or 'null'
    client_name: str
    line1: str
    line2: str
    city: str
    state: str
    postal_code: str
    updated_at: str
    updated_epoch: float

    def as_dict(self) -> dict[str, Any]:
        project: dict[str, Any] = json.loads(_TEMPLATE.format(*self))
        return project


def _template() -> str:
    """The JSON of one generated project with numbered ``{n}`` slots for :class:`_Fields`;
    every key comes from the contract."""

    def text(field: str) -> str:
        return f'"{{{_Fields._fields.index(field)}}}"'

    def pair(key: str, value: str) -> str:
        return json.dumps(key).replace("{", "{{").replace("}", "}}") + ":" + value

    address = ",".join(
        [
            pair(c.ADDRESS_LINE1, text("line1")),
            pair(c.ADDRESS_LINE2, text("line2")),
            pair(c.ADDRESS_CITY, text("city")),
            pair(c.ADDRESS_STATE, text("state")),
            pair(c.ADDRESS_POSTAL_CODE, text("postal_code")),
            pair(c.ADDRESS_COUNTRY, '"US"'),
        ]
    )
    fields = [
        pair(c.FIELD_ID, text("linarc_id")),
        pair(c.FIELD_NUMBER, text("number")),
        pair(c.FIELD_NAME, text("name")),
        pair(c.FIELD_STATUS, text("status")),
        pair(c.FIELD_START_DATE, text("start_date")),
        pair(c.FIELD_END_DATE, f"{{{_Fields._fields.index('end_date_json')}}}"),
        pair(c.FIELD_CLIENT_NAME, text("client_name")),
        pair(c.FIELD_ADDRESS, "{{" + address + "}}"),
        pair(c.FIELD_UPDATED_AT, text("updated_at")),
    ]
    return "{{" + ",".join(fields) + "}}"


_TEMPLATE: Final = _template()


def _between(draw: float, low: int, high: int) -> int:
    """An int in [low, high] from one uniform draw (cheaper than Random.randint)."""
    return low + int(draw * (high - low + 1))


def _draw(rand: Callable[[], float], index: int) -> _Fields:
    # Written flat (indexing rather than helper calls): this runs 100,000 times at start-up.
    status = _STATUSES[bisect.bisect(_CUMULATIVE_WEIGHTS, rand() * _TOTAL_WEIGHT)]
    start, end = _dates(rand, status)
    name = (
        f"{_PLACES[int(rand() * len(_PLACES))]} {_FACILITIES[int(rand() * len(_FACILITIES))]} "
        f"{_WORKS[int(rand() * len(_WORKS))]}"
    )
    if rand() < 0.12:
        name += f" - Phase {2 + int(rand() * 3)}"
    if rand() < 0.08:
        client_name = OTHER_CLIENT_NAMES[int(rand() * len(OTHER_CLIENT_NAMES))]
    else:
        client_name = DEMO_CLIENT_NAMES[int(rand() * len(DEMO_CLIENT_NAMES))]
    city, state, zip_prefix = _CITIES[int(rand() * len(_CITIES))]
    line1 = (
        f"{10 + int(rand() * 9990)} {_STREETS[int(rand() * len(_STREETS))]} "
        f"{_STREET_TYPES[int(rand() * len(_STREET_TYPES))]}"
    )
    line2 = _LINE2[int(rand() * len(_LINE2))] if rand() < 0.25 else ""
    postal_code = f"{zip_prefix}{int(rand() * 100):02d}"
    updated_offset = int(rand() * _UPDATED_SPAN_SECONDS)
    day, seconds = divmod(updated_offset, 86400)
    return _Fields(
        str(FIRST_PROJECT_ID + index),
        f"P-{FIRST_PROJECT_NUMBER + index}",
        name,
        status,
        start,
        f'"{end}"' if end else "null",
        client_name,
        line1,
        line2,
        city,
        state,
        postal_code,
        f"{_UPDATED_DAYS[day]}T{_TIMES_OF_DAY[seconds // 60]}:{seconds % 60:02d}Z",
        _UPDATED_FROM_EPOCH + updated_offset,
    )


def _dates(rand: Callable[[], float], status: str) -> tuple[str, str | None]:
    """ISO start and end dates that fit the status, relative to :data:`REFERENCE_DATE`."""
    days = _between(rand(), 60, 720)
    if status in ("Completed", "Closed"):
        end = -_between(rand(), 10, 900)
        return _day(end - days), _day(end)
    if status in ("Active", "On Hold"):
        start = -_between(rand(), 1, days - 1)
        return _day(start), _day(start + days)
    # Bidding / Pre-Construction: future work; a bid often has no end date yet.
    start = _between(rand(), 14, 365)
    if status == "Bidding" and rand() < 0.5:
        return _day(start), None
    return _day(start), _day(start + days)


# ISO dates by day offset from REFERENCE_DATE: date.isoformat() per project is measurable.
_DAY_RANGE = range(-1700, 1200)
_DAY_ISO = tuple((REFERENCE_DATE + timedelta(days=offset)).isoformat() for offset in _DAY_RANGE)
_UPDATED_DAYS = tuple(
    (_UPDATED_FROM.date() + timedelta(days=offset)).isoformat()
    for offset in range(_UPDATED_SPAN_SECONDS // 86400 + 1)
)


_TIMES_OF_DAY = tuple(f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(24 * 60))
_UPDATED_FROM_EPOCH = _UPDATED_FROM.timestamp()


def _day(offset: int) -> str:
    return _DAY_ISO[offset - _DAY_RANGE.start]


def _hostile(case: str, fields: _Fields) -> GeneratedProject:
    project = {**fields.as_dict(), c.FIELD_ID: HOSTILE_IDS[case], **HOSTILE_CASES[case]}
    if project.get(c.FIELD_END_DATE, "") is None:
        # Linarc leaves an unset end date out rather than sending null.
        del project[c.FIELD_END_DATE]
    return GeneratedProject(
        HOSTILE_IDS[case],
        json.dumps(project, ensure_ascii=False, separators=(",", ":")).encode(),
        str(project.get(c.FIELD_STATUS, "")),
        fields.updated_epoch,
        str(project.get(c.FIELD_NUMBER, "")),
        str(project.get(c.FIELD_NAME, "")),
        str(project.get(c.FIELD_CLIENT_NAME, "")),
    )


def _check_needs_no_escaping() -> None:
    """The format-string fast path writes these words into JSON unescaped."""
    words = [
        *DEMO_CLIENT_NAMES,
        *OTHER_CLIENT_NAMES,
        *_PLACES,
        *_FACILITIES,
        *_WORKS,
        *_STREETS,
        *_STREET_TYPES,
        *_LINE2,
        *(part for city in _CITIES for part in city),
    ]
    unsafe = [word for word in words if json.dumps(word, ensure_ascii=False) != f'"{word}"']
    if unsafe:
        raise RuntimeError(f"Emulator word lists need JSON escaping: {unsafe}")


_check_needs_no_escaping()


# --- the `malformed` fault -----------------------------------------------------------------


def malformed_records(valid_id: str) -> list[Any]:
    """Records with wrong JSON types, served in place of the first ones of a page when a
    ``malformed`` fault fires. The client must turn each into a problem or an invalid entry.
    """
    return [
        "not an object",
        {c.FIELD_NAME: "Project without an id", c.FIELD_STATUS: "Active"},
        {c.FIELD_ID: ["not", "an", "id"], c.FIELD_NAME: "Project with a list for an id"},
        {
            c.FIELD_ID: valid_id,
            c.FIELD_NUMBER: 2417,
            c.FIELD_NAME: ["Maple", "Ridge"],
            c.FIELD_STATUS: 3,
            c.FIELD_START_DATE: 20240101,
            c.FIELD_END_DATE: "not-a-date",
            c.FIELD_CLIENT_NAME: {"name": "Cascade County Schools"},
            c.FIELD_ADDRESS: ["12 Main St"],
            c.FIELD_UPDATED_AT: 1717200000,
        },
    ]
