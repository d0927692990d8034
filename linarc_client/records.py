"""Validation at the boundary: raw Linarc JSON in, :class:`ProjectRecord` out.

A bad value never raises. It becomes a human sentence in ``ProjectRecord.problems`` (the
staging layer shows it and marks the row *Needs Action*), or, when the record cannot be
staged at all (not an object, no usable id), an :class:`InvalidRecord` in the page's
``invalid`` list, so one broken record never stops an import of thousands.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from linarc_client import contract as c
from linarc_client.errors import LinarcProtocolError

# Column sizes of staging.StagedProject: a longer value would make the database insert fail
# (PostgreSQL enforces varchar lengths), stopping the whole import. We cut and say so.
MAX_ID_LENGTH = 64
MAX_NUMBER_LENGTH = 64
MAX_STATUS_LENGTH = 64
MAX_CLIENT_NAME_LENGTH = 500

_EXCERPT_LENGTH = 200
# A control character in an id (a NUL above all: PostgreSQL refuses it in any statement)
# would fail the whole page's upsert; no real Linarc id has one.
_ID_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# "pre construction", "PRE_CONSTRUCTION" and "Pre-Construction" are the same status.
_STATUS_KEY = re.compile(r"[\s_\-]+")
_KNOWN_STATUSES = {_STATUS_KEY.sub("", status.casefold()): status for status in c.PROJECT_STATUSES}
_EXPECTED_STATUSES = ", ".join(c.PROJECT_STATUSES[:-1]) + f" or {c.PROJECT_STATUSES[-1]}"


# content_hash writes the canonical JSON itself (keys in sorted order, compact, UTF-8 as is):
# each string through the json module's own string encoder (C), exactly what
# json.dumps(..., ensure_ascii=False) writes for it.
_json_string: Callable[[str], str] = json.encoder.encode_basestring


@dataclass(frozen=True)
class ProjectRecord:
    """One Linarc project, normalised. Text fields are stripped, never ``None``."""

    linarc_id: str
    number: str
    name: str
    status: str
    start_date: date | None
    end_date: date | None
    client_name: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str
    country: str
    updated_at: datetime | None
    # The payload exactly as received, for the row's Json Script view. Left out of equality
    # and hashing: two payloads that normalise alike are the same record to staging.
    raw: dict[str, Any] = field(compare=False, hash=False, repr=False)
    problems: tuple[str, ...] = ()

    @property
    def address(self) -> dict[str, str]:
        """The address as Linarc shapes it (``line1``, ``line2``, ``city``, …)."""
        return {key: getattr(self, attribute) for attribute, key in c.ADDRESS_FIELDS}

    def normalized(self) -> dict[str, Any]:
        """The staged fields as plain JSON values; what :meth:`content_hash` covers.

        ``updated_at`` is left out on purpose: Linarc bumps it for changes that touch no field
        we stage, and those must not send a synced project back to *Needs Sync*. ``problems``
        are in, so a different bad value (with a different reason) still counts as a change.
        """
        return {
            "linarc_id": self.linarc_id,
            "number": self.number,
            "name": self.name,
            "status": self.status,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "client_name": self.client_name,
            "address": self.address,
            "problems": list(self.problems),
        }

    def content_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`normalized` (keys sorted, no spaces,
        UTF-8); stable across runs, and computed once per record.

        Every record of every import is hashed, so this is on the hot path of a re-import:
        the canonical text is written directly, keys in sorted order, rather than through
        :meth:`normalized` and ``json.dumps(sort_keys=True)`` (same bytes: a test compares
        the two on every emulator record, hostile ones included).
        """
        cached = self.__dict__.get("_content_hash")
        if cached is not None:
            return str(cached)
        q = _json_string
        start, end = self.start_date, self.end_date
        canonical = "".join(
            (
                '{"address":{"city":',
                q(self.city),
                ',"country":',
                q(self.country),
                ',"line1":',
                q(self.address_line1),
                ',"line2":',
                q(self.address_line2),
                ',"postal_code":',
                q(self.postal_code),
                ',"state":',
                q(self.state),
                '},"client_name":',
                q(self.client_name),
                ',"end_date":',
                f'"{end.isoformat()}"' if end else "null",
                ',"linarc_id":',
                q(self.linarc_id),
                ',"name":',
                q(self.name),
                ',"number":',
                q(self.number),
                ',"problems":[',
                ",".join(map(q, self.problems)),
                '],"start_date":',
                f'"{start.isoformat()}"' if start else "null",
                ',"status":',
                q(self.status),
                "}",
            )
        )
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        # A frozen dataclass refuses attribute assignment; the cache lives beside it.
        self.__dict__["_content_hash"] = digest
        return digest


@dataclass(frozen=True)
class InvalidRecord:
    """A record that cannot be staged at all; ``raw_excerpt`` is at most ~200 characters."""

    raw_excerpt: str
    reason: str


@dataclass(frozen=True)
class ProjectPage:
    """One page of the project list. ``count`` covers every page; ``next_page`` is ``None``
    on the last one."""

    records: list[ProjectRecord]
    invalid: list[InvalidRecord]
    next_page: int | None
    count: int


# --- one record ----------------------------------------------------------------------------


def parse_project(raw: object) -> ProjectRecord | InvalidRecord:
    """Parse one raw project. Never raises."""
    if not isinstance(raw, dict):
        return InvalidRecord(_excerpt(raw), f"Record is {_kind(raw)}, not a JSON object")
    linarc_id, id_reason = _parse_id(raw.get(c.FIELD_ID))
    if linarc_id is None:
        return InvalidRecord(_excerpt(raw), id_reason)

    problems: list[str] = []

    number = _text(raw.get(c.FIELD_NUMBER), "Project number", problems)
    number = _limit(number, MAX_NUMBER_LENGTH, "Project number", problems)

    name_value = raw.get(c.FIELD_NAME)
    name = _text(name_value, "Project name", problems)
    if not name and (name_value is None or isinstance(name_value, str)):
        problems.append("Project name is empty")

    status = _parse_status(raw.get(c.FIELD_STATUS), problems)

    start_date = _date(raw.get(c.FIELD_START_DATE), "Start date", problems)
    end_date = _date(raw.get(c.FIELD_END_DATE), "End date", problems)
    if start_date and end_date and end_date < start_date:
        problems.append(_out_of_order(start_date, end_date))

    client_name = _text(raw.get(c.FIELD_CLIENT_NAME), "Client name", problems)
    client_name = _limit(client_name, MAX_CLIENT_NAME_LENGTH, "Client name", problems)

    address = _parse_address(raw.get(c.FIELD_ADDRESS), problems)

    return ProjectRecord(
        linarc_id=linarc_id,
        number=number,
        name=name,
        status=status,
        start_date=start_date,
        end_date=end_date,
        client_name=client_name,
        updated_at=_datetime(raw.get(c.FIELD_UPDATED_AT)),
        raw=raw,
        problems=tuple(problems),
        **address,
    )


def _parse_id(value: object) -> tuple[str | None, str]:
    if value is None:
        return None, "Record has no id"
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None, f"Record id is {_kind(value)}, expected text or a number"
    text = str(value).strip()
    if not text:
        return None, "Record has an empty id"
    if len(text) > MAX_ID_LENGTH:
        return None, f"Record id is longer than {MAX_ID_LENGTH} characters"
    if _ID_CONTROL.search(text):
        return None, "Record id contains control characters"
    return text, ""


def _parse_status(value: object, problems: list[str]) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append("Project status is missing")
        return ""
    if not isinstance(value, str):
        problems.append(f"Unknown status {value!r}; expected {_EXPECTED_STATUSES}")
        return ""
    text = value.strip()
    known = _KNOWN_STATUSES.get(_STATUS_KEY.sub("", text.casefold()))
    if known is not None:
        return known
    problems.append(f"Unknown status {text!r}; expected {_EXPECTED_STATUSES}")
    return _limit(text, MAX_STATUS_LENGTH, "Status", problems)


# (ProjectRecord attribute, Linarc key, label in problems), e.g. "Address postal code".
_ADDRESS_PARTS = tuple(
    (attribute, key, "Address " + key.replace("_", " ").replace("line", "line "))
    for attribute, key in c.ADDRESS_FIELDS
)
_EMPTY_ADDRESS = {attribute: "" for attribute, _ in c.ADDRESS_FIELDS}


def _parse_address(value: object, problems: list[str]) -> dict[str, str]:
    if value is None:
        return dict(_EMPTY_ADDRESS)
    if isinstance(value, str):
        # A one-line address is still an address: keep it rather than drop it.
        return {**_EMPTY_ADDRESS, "address_line1": value.strip()}
    if not isinstance(value, dict):
        problems.append(f"Address is {_kind(value)}, expected an object")
        return dict(_EMPTY_ADDRESS)
    return {
        attribute: _text(value.get(key), label, problems)
        for attribute, key, label in _ADDRESS_PARTS
    }


# --- which field a problem is about --------------------------------------------------------

# Every problem parse_project writes about a single field starts with one of these (the
# field's label); the ProjectRecord attribute on the right. The one problem about two fields
# (end before start) is matched first and belongs to neither.
_PROBLEM_PREFIXES: tuple[tuple[str, str], ...] = (
    ("Project number ", "number"),
    ("Project name ", "name"),
    ("Project status ", "status"),
    ("Unknown status ", "status"),
    ("Status ", "status"),
    ("Start date ", "start_date"),
    ("End date ", "end_date"),
    ("Client name ", "client_name"),
    ("Address is ", "address"),
    *((f"{label} ", attribute) for attribute, _, label in _ADDRESS_PARTS),
)
_OUT_OF_ORDER = re.compile(r"End date \S+ is before start date \S+")
# Where each field is in a raw record: (key, key inside the address or None).
_RAW_KEYS: dict[str, tuple[str, str | None]] = {
    "number": (c.FIELD_NUMBER, None),
    "name": (c.FIELD_NAME, None),
    "status": (c.FIELD_STATUS, None),
    "start_date": (c.FIELD_START_DATE, None),
    "end_date": (c.FIELD_END_DATE, None),
    "client_name": (c.FIELD_CLIENT_NAME, None),
    "address": (c.FIELD_ADDRESS, None),
    **{attribute: (c.FIELD_ADDRESS, key) for attribute, key in c.ADDRESS_FIELDS},
}
# The label of each field in problems and history, e.g. "Start date", "Address postal code".
FIELD_LABELS: dict[str, str] = {
    "number": "Project number",
    "name": "Project name",
    "status": "Project status",
    "start_date": "Start date",
    "end_date": "End date",
    "client_name": "Client name",
    "address": "Address",
    **{attribute: label for attribute, _, label in _ADDRESS_PARTS},
}


def problem_field(problem: str) -> str | None:
    """The :class:`ProjectRecord` attribute a problem of :func:`parse_project` is about
    (``"start_date"``, ``"status"``, ``"city"``, ``"address"`` for the whole
    address), or ``None`` for a problem about no single field (end before start).

    A field with a problem holds a stand-in (empty, or cut), not what Linarc meant; staging
    reads its stored problems back with this to know which fields hold no good value.
    """
    if _OUT_OF_ORDER.fullmatch(problem):
        return None
    for prefix, attribute in _PROBLEM_PREFIXES:
        if problem.startswith(prefix):
            return attribute
    return None


def _out_of_order(start_date: date, end_date: date) -> str:
    return f"End date {end_date.isoformat()} is before start date {start_date.isoformat()}"


def dates_out_of_order(start_date: date | None, end_date: date | None) -> str | None:
    """The problem of an end date before the start date, or ``None``."""
    if start_date and end_date and end_date < start_date:
        return _out_of_order(start_date, end_date)
    return None


def is_dates_out_of_order(problem: str) -> bool:
    return _OUT_OF_ORDER.fullmatch(problem) is not None


def sent_value(raw: object, field: str) -> object:
    """What a raw record holds for a :class:`ProjectRecord` attribute (``None`` when it
    holds nothing there), e.g. the junk behind one of its problems."""
    if not isinstance(raw, dict):
        return None
    key, inner = _RAW_KEYS[field]
    value = raw.get(key)
    if inner is None:
        return value
    return value.get(inner) if isinstance(value, dict) else None


# --- values --------------------------------------------------------------------------------


def _text(value: object, label: str, problems: list[str]) -> str:
    """A stripped string. Numbers become text (``2417`` → ``"2417"``); ``None`` becomes "";
    anything else is reported and dropped."""
    if type(value) is str:  # the common case first: this runs ~10 times per record
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        problems.append(f"{label} is {_kind(value)}, expected text")
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    problems.append(f"{label} is {_kind(value)}, expected text")
    return ""


def _limit(text: str, limit: int, label: str, problems: list[str]) -> str:
    if len(text) <= limit:
        return text
    problems.append(f"{label} is longer than {limit} characters and was cut")
    return text[:limit]


def _date(value: object, label: str, problems: list[str]) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            # A full timestamp where a date belongs: keep its calendar date as written.
            return datetime.fromisoformat(text).date()
        except ValueError:
            pass
    problems.append(f"{label} {value!r} is not a valid date")
    return None


def _datetime(value: object) -> datetime | None:
    """``updated_at`` as an aware UTC datetime, or ``None``.

    An unreadable value is not a problem for the row: nothing staged depends on it, and
    incremental pulls filter on the server.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before year 1 in UTC
        return None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _excerpt(raw: object) -> str:
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except ValueError:  # circular structures cannot come from JSON, but be safe
        text = repr(raw)
    return text if len(text) <= _EXCERPT_LENGTH else text[: _EXCERPT_LENGTH - 1] + "…"


# --- one page ------------------------------------------------------------------------------


def parse_page(payload: object, *, page: int) -> ProjectPage:
    """Parse a decoded page body. Raises :class:`LinarcProtocolError` when the envelope is
    wrong; bad records inside a good envelope never raise."""
    if not isinstance(payload, dict):
        raise LinarcProtocolError(f"Linarc returned {_kind(payload)} instead of a page object")
    results = payload.get(c.PAGE_RESULTS)
    if not isinstance(results, list):
        raise LinarcProtocolError(f"Linarc's page has no '{c.PAGE_RESULTS}' list")
    count = payload.get(c.PAGE_COUNT)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise LinarcProtocolError(f"Linarc's page has no valid '{c.PAGE_COUNT}'")
    next_url = payload.get(c.PAGE_NEXT)
    if next_url is not None and not isinstance(next_url, str):
        raise LinarcProtocolError(f"Linarc's page has an invalid '{c.PAGE_NEXT}' link")

    records: list[ProjectRecord] = []
    invalid: list[InvalidRecord] = []
    for raw in results:
        parsed = parse_project(raw)
        if isinstance(parsed, ProjectRecord):
            records.append(parsed)
        else:
            invalid.append(parsed)
    return ProjectPage(records, invalid, _next_page(next_url, page), count)


def _next_page(next_url: str | None, page: int) -> int | None:
    """The page number in the ``next`` link. We request it ourselves from the configured base
    URL rather than follow the link, so the API key never goes to a host the link names."""
    if not next_url:
        return None
    values = parse_qs(urlsplit(next_url).query).get(c.PARAM_PAGE)
    if not values:
        return page + 1
    try:
        next_page = int(values[0])
    except ValueError:
        raise LinarcProtocolError(
            f"Linarc's '{c.PAGE_NEXT}' link has an invalid page number"
        ) from None
    if next_page <= page:
        # A server that points back would make iter_pages loop forever.
        raise LinarcProtocolError(f"Linarc's '{c.PAGE_NEXT}' link does not move forward")
    return next_page
