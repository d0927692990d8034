"""Error bodies in the exact shapes QBO uses ([errors]).

Three families:

* the service fault (capitalised ``Fault``/``Error``/``Message``/``Detail``/``code``/``element``
  plus a top-level ``time``), raised by business rules as :class:`QboFault` ([errors]);
* the gateway fault (lower-case keys, epoch-millisecond ``time``) for authentication,
  authorisation and throttling failures ([errors]);
* the XML ``IntuitResponse`` fault ([errors]) and plain HTML bodies that proxies return on 5xx.

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[errors] Intuit, error codes:
    https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

JsonDict = dict[str, Any]

BUSINESS_VALIDATION_MESSAGE = (
    "A business validation error has occurred while processing your request"
)
INACTIVE_DETAIL = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)


class QboFault(Exception):
    """A service fault: one ``Error`` entry inside ``{"Fault": {...}}`` ([errors]).

    ``code`` is a string on the wire; python-quickbooks converts it with ``int()`` and maps
    ranges to exception classes ([python-quickbooks]), so every code here must be numeric.
    """

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        element: str = "",
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def as_fault(self) -> JsonDict:
        return {
            "type": self.fault_type,
            "Error": [
                {
                    "Message": self.message,
                    "Detail": self.detail,
                    "code": self.code,
                    "element": self.element,
                }
            ],
        }


def service_fault_body(fault: QboFault, time_text: str) -> JsonDict:
    return {"Fault": fault.as_fault(), "time": time_text}


# --- business-rule faults (codes from [errors]; unverified ones noted in the docs) ---


def unsupported_operation(detail: str) -> QboFault:
    # Code 500 with HTTP 400: bad path, non-UTF-8 body, or delete on Customer ([customer],
    # [errors]).
    return QboFault("500", "Unsupported Operation", detail)


def object_not_found(detail: str = INACTIVE_DETAIL, *, element: str = "") -> QboFault:
    # 610 is documented for missing or inactive references ([customer], [errors]).
    return QboFault("610", "Object Not Found", detail, element=element)


def invalid_property(name: str, why: str = "is unsupported or invalid") -> QboFault:
    return QboFault(
        "2010",
        "Request has invalid or unsupported property",
        f'Property Name:Unrecognized field "{name}" specified {why}',
        element=name,
    )


def required_param_missing(element: str, detail: str | None = None) -> QboFault:
    return QboFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        detail or f"Required parameter {element} is missing in the request",
        element=element,
    )


def string_length(element: str, maximum: int, supplied: int) -> QboFault:
    # The Detail gives min, max and supplied length ([errors]).
    return QboFault(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. "
        f"Min:0 Max:{maximum} supplied length:{supplied}",
        element=element,
    )


def invalid_email(element: str) -> QboFault:
    return QboFault(
        "2210",
        "Invalid Email Address format",
        "Email Address does not conform to the syntax rules of RFC 822. Supplied value:",
        element=element,
    )


def invalid_reference(element: str, value: str) -> QboFault:
    return QboFault(
        "2500",
        "Invalid Reference Id",
        "Invalid Reference Id : Something you're trying to use does not exist. "
        f"({element} {value})",
        element=element,
    )


def stale_object() -> QboFault:
    # HTTP 400, code 5010; the Detail names whoever saved first ([customer]).
    return QboFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and Emulator User were working on this at the same time. "
        "Emulator User finished before you did, so your work was not saved.",
    )


def business_validation(detail: str, *, element: str = "") -> QboFault:
    return QboFault(
        "6000", BUSINESS_VALIDATION_MESSAGE, f"Business Validation Error: {detail}", element=element
    )


def parent_ref_required() -> QboFault:
    # "ParentRef Required Error" as python-quickbooks users report it (#139, [customer]).
    return QboFault(
        "6150",
        "ParentRef Required Error",
        "A sub-customer needs Job set to true together with ParentRef.",
        element="ParentRef",
    )


def duplicate_name() -> QboFault:
    # The Detail wording varies in production ([errors]); clients must match on code 6240 only.
    return QboFault(
        "6240",
        "Duplicate Name Exists Error",
        "The name supplied already exists. : Another customer, vendor or employee is already "
        "using this name. Please use a different name.",
    )


def query_parse_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


# --- gateway faults ([errors]) ---


def gateway_fault_body(
    *, fault_type: str, message: str, detail: str, code: str, epoch_ms: int
) -> JsonDict:
    """The lower-case wrapper the gateway uses; ``time`` is epoch milliseconds."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "type": fault_type,
            "error": [{"message": message, "detail": detail, "code": code, "element": None}],
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": epoch_ms,
        "status": None,
        "cdcresponse": [],
    }


def authentication_failed_body(detail: str, epoch_ms: int) -> JsonDict:
    return gateway_fault_body(
        fault_type="AUTHENTICATION",
        message="message=AuthenticationFailed; errorCode=003200; statusCode=401",
        detail=detail,
        code="3200",
        epoch_ms=epoch_ms,
    )


def authorization_failed_body(detail: str, epoch_ms: int) -> JsonDict:
    return gateway_fault_body(
        fault_type="SERVICE",
        message="message=AuthorizationFailed; errorCode=003100; statusCode=403",
        detail=detail,
        code="3100",
        epoch_ms=epoch_ms,
    )


THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
THROTTLE_DETAIL = "The request limit was reached.  Try again later"


def throttle_json_body(epoch_ms: int, detail: str = THROTTLE_DETAIL) -> JsonDict:
    return gateway_fault_body(
        fault_type="SERVICE",
        message=THROTTLE_MESSAGE,
        detail=detail,
        code="3001",
        epoch_ms=epoch_ms,
    )


def xml_fault_body(
    *,
    fault_type: str,
    code: str,
    message: str,
    detail: str,
    time_text: str,
    element: str | None = None,
) -> str:
    """``<IntuitResponse>`` fault ([errors]): throttling often comes back like this."""
    element_attr = f" element={quoteattr(element)}" if element is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time={quoteattr(time_text)}>'
        f"<Fault type={quoteattr(fault_type)}><Error code={quoteattr(code)}{element_attr}>"
        f"<Message>{escape(message)}</Message><Detail>{escape(detail)}</Detail>"
        "</Error></Fault></IntuitResponse>"
    )


def throttle_xml_body(time_text: str, detail: str = THROTTLE_DETAIL) -> str:
    return xml_fault_body(
        fault_type="SERVICE",
        code="3001",
        message=THROTTLE_MESSAGE,
        detail=detail,
        time_text=time_text,
    )


_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def html_error_page(status: int) -> str:
    """An HTML body like the ones proxies put in front of QBO return on 5xx ([errors])."""
    reason = _REASONS.get(status, "Error")
    return (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n'
        f"<html><head><title>{status} {reason}</title></head>"
        f"<body><h1>{reason}</h1><p>The server encountered a temporary error and could not "
        "complete your request. Please try again later.</p></body></html>\n"
    )
