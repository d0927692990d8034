"""The emulator's clock: wall time plus an offset that tests can advance.

Advancing the clock (control API ``POST /__emulator__/clock``) is how tests expire access
tokens (3600 s), refresh tokens (100 days) and rotation grace periods without waiting.
Throttle windows deliberately use the real monotonic clock instead (see ``throttle.py``).

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
"""

from __future__ import annotations

import re
import threading
import time
from datetime import date, datetime, timedelta, timezone

# Intuit's examples carry the company's local offset (-07:00, [customer]). A fixed
# offset keeps timestamps deterministic; real companies follow their own time zone and DST.
COMPANY_TZ = timezone(timedelta(hours=-7))

_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


class Clock:
    """Thread-safe wall clock with an adjustable offset (seconds)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = float(offset_seconds)
        self._lock = threading.Lock()

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += float(seconds)

    def reset(self, offset_seconds: float = 0.0) -> None:
        with self._lock:
            self._offset = float(offset_seconds)

    def time(self) -> float:
        """Epoch seconds, including the offset."""
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        """Aware datetime in the company's time zone."""
        return datetime.fromtimestamp(self.time(), tz=COMPANY_TZ)


def iso_seconds(moment: datetime) -> str:
    """``2025-03-14T09:26:41-07:00``: the MetaData timestamp format ([customer])."""
    return moment.astimezone(COMPANY_TZ).isoformat(timespec="seconds")


def iso_millis(moment: datetime) -> str:
    """``2025-03-14T09:26:41.512-07:00``: the ``time`` field of response bodies."""
    return moment.astimezone(COMPANY_TZ).isoformat(timespec="milliseconds")


def parse_datetime(text: str) -> datetime | None:
    """Parse the date/datetime literals QBO accepts in queries and ``changedSince``.

    Accepts a bare date, a datetime with or without seconds/fraction, and offsets written as
    ``Z``, ``-07:00`` or ``-0700``. A value without an offset is read in company time.
    Returns None when the text is not a date.
    """
    value = text.strip()
    if not value:
        return None
    try:
        if len(value) == 10 and "T" not in value:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=COMPANY_TZ)
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        value = _COMPACT_OFFSET.sub(r"\1:\2", value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=COMPANY_TZ)
    return parsed
