"""Typed QBO errors, classified once at the HTTP boundary.

Every failure leaves this package as one :class:`QboError` subclass that tells the caller
what to do next, never as a python-quickbooks or requests exception:

* :class:`TransientError`: try again later (5xx, timeouts, HTML or other non-JSON bodies
  from proxies). The client does not wait and retry these itself: the calling task does,
  with backoff (in this project, integrations/retry.py). :class:`ConnectionDroppedError` is
  one: no answer came because the connection dropped (the client resent the request once).
* :class:`ThrottledError`: the realm is out of budget (429, or no slot in the limiter);
  wait ``retry_after`` seconds. Not a failed try.
* :class:`AuthError`: the access token was rejected; refresh once and retry once.
* :class:`ReconnectRequired`: the refresh token is dead (``invalid_grant``); a person must
  reconnect QuickBooks.
* :class:`NeedsActionError`: the data needs a person (duplicate name, bad or inactive parent,
  validation).
* :class:`StaleObjectError`: 5010, re-read and re-apply.
* :class:`NotFoundError`: 610 on a read by Id.
* :class:`PermanentError`: anything else; retrying will not help.
  :class:`RefusedHostError` is one: the host is not public and the config refuses those.

Classification matches on the fault ``code`` and the HTTP status, never on message text:
Intuit's wording varies. The codes:
https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class QboError(Exception):
    """Base of every error raised by :mod:`qbo_client`.

    ``reason`` is a short sentence fit for a hover tooltip; ``code`` is QBO's fault code (a
    string, e.g. ``"6240"``); ``intuit_tid`` is the response header Intuit support asks for.
    """

    def __init__(
        self,
        reason: str,
        code: str | None = None,
        intuit_tid: str | None = None,
        status: int | None = None,
        detail: str | None = None,
        *,
        element: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.intuit_tid = intuit_tid
        self.status = status
        self.detail = detail
        self.element = element

    def __str__(self) -> str:
        extras = [
            f"{label}={value}"
            for label, value in (
                ("code", self.code),
                ("status", self.status),
                ("intuit_tid", self.intuit_tid),
            )
            if value is not None
        ]
        return f"{self.reason} ({', '.join(extras)})" if extras else self.reason

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, code={self.code!r}, "
            f"status={self.status!r}, intuit_tid={self.intuit_tid!r})"
        )


class TransientError(QboError):
    """Worth retrying with backoff. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self,
        reason: str,
        code: str | None = None,
        intuit_tid: str | None = None,
        status: int | None = None,
        detail: str | None = None,
        *,
        element: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, code, intuit_tid, status, detail, element=element)
        self.retry_after = retry_after


class ThrottledError(TransientError):
    """HTTP 429 / code 3001, or no slot in the realm's budget: the whole realm must pause.
    ``retry_after`` says for how long when known. The limits:
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
    """


class ConnectionDroppedError(TransientError):
    """The connection was refused, reset or cut off mid-answer: no usable answer came."""


class NeedsActionError(QboError):
    """A person must act: rename, pick another parent, fix the data.

    ``display_name`` is the name the request tried to use, set for duplicate names (6240).
    """

    def __init__(
        self,
        reason: str,
        code: str | None = None,
        intuit_tid: str | None = None,
        status: int | None = None,
        detail: str | None = None,
        *,
        element: str | None = None,
        display_name: str | None = None,
    ) -> None:
        super().__init__(reason, code, intuit_tid, status, detail, element=element)
        self.display_name = display_name


class AuthError(QboError):
    """The access token was rejected (401 / 3200 / 100): refresh once, then retry once."""


class ReconnectRequired(QboError):
    """The connection is unusable until an admin reconnects QuickBooks (``invalid_grant``)."""


class StaleObjectError(QboError):
    """5010: the SyncToken sent is old. Re-read, re-apply and retry once."""


class NotFoundError(QboError):
    """610 on a read by Id: no such object (or it is not visible)."""


class PermanentError(QboError):
    """Anything else: retrying the same request will not help."""


class RefusedHostError(PermanentError):
    """Nothing was sent: the host is, or resolves to, a loopback, private, link-local or
    other non-public address, and the config refuses those (``allow_private_hosts``)."""


# --- fault parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """The first error of a QBO fault, whatever shape it arrived in (JSON service fault,
    gateway fault or XML; the shapes are shown in Intuit's error-code list, see the module
    docstring)."""

    code: str | None
    message: str | None
    detail: str | None
    element: str | None
    fault_type: str | None


def _first_error(fault: Mapping[str, Any]) -> Fault | None:
    errors = fault.get("Error") or fault.get("error") or []
    if isinstance(errors, Mapping):
        errors = [errors]
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], Mapping):
        return Fault(None, None, None, None, _str_or_none(fault.get("type")))
    error = errors[0]
    return Fault(
        code=_str_or_none(error.get("code")) or None,  # "code": "" is no code at all
        message=_str_or_none(error.get("Message", error.get("message"))),
        detail=_str_or_none(error.get("Detail", error.get("detail"))),
        element=_str_or_none(error.get("element")) or None,
        fault_type=_str_or_none(fault.get("type")),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def fault_from_json(payload: object) -> Fault | None:
    """The fault in a parsed JSON body: capitalised ``Fault`` (service) or lower-case
    ``fault`` (gateway). ``None`` when the body carries no fault."""
    if not isinstance(payload, Mapping):
        return None
    fault = payload.get("Fault") or payload.get("fault")
    if not isinstance(fault, Mapping):
        return None
    return _first_error(fault)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def fault_from_xml(text: str) -> Fault | None:
    """The fault in an ``<IntuitResponse>`` body: throttling and some validation faults
    arrive as XML even when JSON was requested."""
    try:
        # The body comes from Intuit (or a proxy in front of it); expat in CPython ≥ 3.7.1
        # refuses external entities and caps entity expansion, so stdlib parsing is safe here.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError:
        return None
    fault_el = root if _local(root.tag) == "Fault" else None
    if fault_el is None:
        fault_el = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault_el is None:
        return None
    error_el = next((el for el in fault_el.iter() if _local(el.tag) == "Error"), None)
    if error_el is None:
        return Fault(None, None, None, None, fault_el.get("type"))
    children = {_local(child.tag): (child.text or "").strip() for child in error_el}
    return Fault(
        code=error_el.get("code"),
        message=children.get("Message"),
        detail=children.get("Detail"),
        element=error_el.get("element") or None,
        fault_type=fault_el.get("type"),
    )


@dataclass(frozen=True)
class ParsedBody:
    """A response body: ``json`` when it parsed as JSON, else ``None``; ``fault`` if any."""

    json: Any
    fault: Fault | None
    is_json: bool


def parse_body(text: str) -> ParsedBody:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            payload = json.loads(text)
        except ValueError:
            return ParsedBody(None, None, is_json=False)
        return ParsedBody(payload, fault_from_json(payload), is_json=True)
    if stripped.startswith("<"):
        return ParsedBody(None, fault_from_xml(stripped), is_json=False)
    return ParsedBody(None, None, is_json=False)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date
    (https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- classification --------------------------------------------------------------------------

# Codes a person must resolve (Intuit's error-code list, linked above): the request will fail
# the same way until the data or the naming rule changes.
_NEEDS_ACTION_REASONS: dict[str, str] = {
    "2500": "The parent customer does not exist in QuickBooks",
    "6000": "QuickBooks rejected the record (business validation)",
    "6150": "A sub-customer needs Job set together with its parent",
    "2010": "QuickBooks does not accept one of the fields sent",
    "2020": "A required field is missing",
    "2050": "A field is too long for QuickBooks",
    "2170": "A field has a value QuickBooks does not accept",
    "2210": "The email address is not valid for QuickBooks",
}
_PERMANENT_REASONS: dict[str, str] = {
    "500": "QuickBooks does not support this operation",
    "6190": "The QuickBooks company subscription is not active",
    "6210": "The QuickBooks accounting period is closed",
}
_AUTH_CODES = frozenset({"3200", "100"})
_THROTTLE_CODES = frozenset({"3001"})
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


def classify(
    *,
    status: int | None,
    fault: Fault | None,
    intuit_tid: str | None = None,
    retry_after: float | None = None,
    is_read: bool = False,
    display_name: str | None = None,
    body_is_json: bool = True,
) -> QboError:
    """Turn one failed exchange (or one failed batch item, ``status=None``) into a QboError.

    ``is_read`` makes 610 a :class:`NotFoundError` (reading by Id) rather than a missing
    reference; ``display_name`` is the name that was sent, used in the 6240 reason.
    """
    code = fault.code if fault else None
    detail = fault.detail if fault else None
    element = fault.element if fault else None
    common: dict[str, Any] = {
        "code": code,
        "intuit_tid": intuit_tid,
        "status": status,
        "detail": detail,
        "element": element,
    }

    if status == 429 or code in _THROTTLE_CODES:
        return ThrottledError(
            "QuickBooks is throttling requests; will retry", retry_after=retry_after, **common
        )
    if code in _AUTH_CODES or status == 401:
        return AuthError("QuickBooks rejected the access token", **common)
    if status == 403 or code in {"120", "3100", "3201"}:
        return ReconnectRequired(
            "QuickBooks refused access to this company; reconnect QuickBooks", **common
        )
    if status in _TRANSIENT_STATUSES and not _is_business_code(code):
        return TransientError(
            f"QuickBooks had a temporary server error ({status}); will retry",
            retry_after=retry_after,
            **common,
        )
    if status is not None and status >= 500:
        return TransientError(f"QuickBooks returned HTTP {status}; will retry", **common)
    if status == 404 and fault is None:
        # A 404 without a fault: a wrong URL or a realmId QBO does not know.
        return PermanentError(
            "QuickBooks company or endpoint not found (check the realm and base URL)", **common
        )
    if fault is None and not body_is_json and status is not None:
        # An HTML page from a proxy or load balancer instead of a QBO fault.
        return TransientError(f"Unexpected non-JSON reply from QuickBooks ({status})", **common)

    if code == "6240":
        name = f'The name "{display_name}" is' if display_name else "The name is"
        return NeedsActionError(
            f"{name} already used in QuickBooks (by a customer, vendor or employee)",
            display_name=display_name,
            **common,
        )
    if code == "5010":
        return StaleObjectError("The QuickBooks record changed since it was read", **common)
    if code == "610":
        if is_read:
            return NotFoundError("The record was not found in QuickBooks", **common)
        if element and element.lower().startswith("parentref"):
            return NeedsActionError(
                "The parent customer is inactive or missing in QuickBooks", **common
            )
        return NeedsActionError(
            "A record this refers to is inactive or missing in QuickBooks", **common
        )
    if code in _NEEDS_ACTION_REASONS:
        return NeedsActionError(_NEEDS_ACTION_REASONS[code], **common)
    if code is not None and code.isdecimal() and 2000 <= int(code) < 3000:
        return NeedsActionError("QuickBooks rejected the data sent (validation)", **common)
    if code in _PERMANENT_REASONS:
        return PermanentError(_PERMANENT_REASONS[code], **common)
    if code is not None:
        return PermanentError(f"QuickBooks error {code}", **common)
    # No code to go by: QBO's own words are the only clue a person gets.
    said = (fault.message or fault.detail) if fault else None
    reason = f"QuickBooks returned HTTP {status}" if status else "QuickBooks returned an error"
    return PermanentError(f"{reason}: {said}" if said else reason, **common)


def _is_business_code(code: str | None) -> bool:
    """A 5xx that still carries a validation/business code is classified by its code."""
    return code is not None and code.isdecimal() and 600 <= int(code) < 10000


def classify_response(
    *,
    status: int,
    text: str,
    headers: Mapping[str, str],
    is_read: bool = False,
    display_name: str | None = None,
) -> QboError:
    """Classify a non-success HTTP response in any of the fault shapes (JSON, gateway, XML,
    HTML)."""
    parsed = parse_body(text)
    return classify(
        status=status,
        fault=parsed.fault,
        intuit_tid=headers.get("intuit_tid"),
        retry_after=parse_retry_after(headers.get("Retry-After")),
        is_read=is_read,
        display_name=display_name,
        body_is_json=parsed.is_json,
    )
