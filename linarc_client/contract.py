"""Every Linarc-specific name in one place: paths, headers, query parameters, JSON keys.

Linarc publishes no public API, so this module *is* the contract (described for people in
``docs/linarc-api.md``). The client, the record parser and the emulator read every wire name
from here; slotting in the real partner API should mean editing this module alone (plus the
docs), never the code that uses it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

# --- Authentication ------------------------------------------------------------------------
AUTH_HEADER: Final = "Authorization"
AUTH_SCHEME: Final = "Bearer"


def auth_header_value(api_key: str) -> str:
    """The value of :data:`AUTH_HEADER` for ``api_key``."""
    return f"{AUTH_SCHEME} {api_key}"


# --- Paths ---------------------------------------------------------------------------------
# Relative to the connection's base URL (which may itself carry a path prefix).
PROJECTS_PATH: Final = "/api/v1/projects"
# ``{linarc_id}`` is substituted URL-quoted (an id may contain "/" or spaces).
PROJECT_PATH: Final = "/api/v1/projects/{linarc_id}"

# --- Listing: query parameters and the page envelope ---------------------------------------
PARAM_PAGE: Final = "page"
PARAM_PAGE_SIZE: Final = "page_size"
PARAM_UPDATED_SINCE: Final = "updated_since"  # inclusive: updated_at >= updated_since
PARAM_STATUS: Final = "status"  # exact status, case-insensitive
PARAM_SEARCH: Final = "search"  # substring of number, name or client name, case-insensitive

FIRST_PAGE: Final = 1  # pages are 1-based
MAX_PAGE_SIZE: Final = 500

PAGE_RESULTS: Final = "results"
PAGE_NEXT: Final = "next"  # full URL of the next page, or null on the last page
PAGE_COUNT: Final = "count"  # number of projects matching the filters, across all pages

# --- Errors --------------------------------------------------------------------------------
ERROR_DETAIL: Final = "detail"  # error bodies are {"detail": "..."}
RETRY_AFTER_HEADER: Final = "Retry-After"  # on 429, in seconds

# --- One project ---------------------------------------------------------------------------
FIELD_ID: Final = "id"
FIELD_NUMBER: Final = "number"
FIELD_NAME: Final = "name"
FIELD_STATUS: Final = "status"
FIELD_START_DATE: Final = "start_date"  # ISO date, YYYY-MM-DD, or null
FIELD_END_DATE: Final = "end_date"  # ISO date, YYYY-MM-DD, or null
FIELD_CLIENT_NAME: Final = "client_name"  # the owner; matches a top-level QBO customer
FIELD_ADDRESS: Final = "address"  # an object with the ADDRESS_* keys below
FIELD_UPDATED_AT: Final = "updated_at"  # ISO datetime in UTC with a trailing Z

ADDRESS_LINE1: Final = "line1"
ADDRESS_LINE2: Final = "line2"
ADDRESS_CITY: Final = "city"
ADDRESS_STATE: Final = "state"
ADDRESS_POSTAL_CODE: Final = "postal_code"
ADDRESS_COUNTRY: Final = "country"

# ProjectRecord attribute ↔ Linarc address key, in display order.
ADDRESS_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("address_line1", ADDRESS_LINE1),
    ("address_line2", ADDRESS_LINE2),
    ("city", ADDRESS_CITY),
    ("state", ADDRESS_STATE),
    ("postal_code", ADDRESS_POSTAL_CODE),
    ("country", ADDRESS_COUNTRY),
)

# The statuses Linarc shows in its project list, spelled as Linarc spells them.
PROJECT_STATUSES: Final[tuple[str, ...]] = (
    "Bidding",
    "Pre-Construction",
    "Active",
    "On Hold",
    "Completed",
    "Closed",
)


def format_datetime(moment: datetime) -> str:
    """A datetime as Linarc writes it: UTC, ISO 8601, trailing ``Z``.

    Fractional seconds are written only when present (and without trailing zeros). A naive
    datetime is taken to be UTC already.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
