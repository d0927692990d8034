"""Classification of every fault shape QBO (or a proxy) sends:
https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from qbo_client.errors import (
    AuthError,
    NeedsActionError,
    NotFoundError,
    PermanentError,
    QboError,
    ReconnectRequired,
    StaleObjectError,
    ThrottledError,
    TransientError,
    classify_response,
    parse_retry_after,
)

TID = {"intuit_tid": "1-abc-tid"}


def service_fault(code: str | None, element: str = "", fault_type: str = "ValidationFault") -> str:
    error: dict[str, object] = {"Message": "whatever", "Detail": "free text", "element": element}
    if code is not None:
        error["code"] = code
    return json.dumps(
        {"Fault": {"type": fault_type, "Error": [error]}, "time": "2025-03-14T09:31:07.220-07:00"}
    )


def gateway_fault(code: str, status: int) -> str:
    return json.dumps(
        {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "type": "AUTHENTICATION",
                "error": [
                    {
                        "message": f"message=AuthenticationFailed; errorCode=00{code}; "
                        f"statusCode={status}",
                        "detail": "Token expired",
                        "code": code,
                        "element": None,
                    }
                ],
            },
            "batchItemResponse": [],
            "time": 1741969867220,
        }
    )


XML_THROTTLE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2025-03-14T09:31:07.220-07:00">
  <Fault type="SERVICE"><Error code="3001">
    <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
    <Detail>Too many requests</Detail></Error></Fault></IntuitResponse>"""

XML_DUPLICATE = """<IntuitResponse xmlns="http://schema.intuit.com/finance/v3">
  <Fault type="ValidationFault"><Error code="6240" element="DisplayName">
    <Message>Duplicate Name Exists Error</Message><Detail>The name supplied already exists.</Detail>
  </Error></Fault></IntuitResponse>"""

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def classify(status: int, text: str, *, headers: dict[str, str] | None = None, **kw: object):
    return classify_response(status=status, text=text, headers={**TID, **(headers or {})}, **kw)


def test_duplicate_name_is_needs_action_with_the_name() -> None:
    err = classify(400, service_fault("6240"), display_name="CCS-2417 Maple Ridge")
    assert isinstance(err, NeedsActionError)
    assert err.code == "6240"
    assert 'The name "CCS-2417 Maple Ridge" is already used in QuickBooks' in err.reason
    assert err.display_name == "CCS-2417 Maple Ridge"
    assert err.intuit_tid == "1-abc-tid"
    assert err.status == 400
    assert err.detail == "free text"


def test_duplicate_name_in_xml_is_classified_the_same() -> None:
    err = classify(400, XML_DUPLICATE, display_name="Northgate")
    assert isinstance(err, NeedsActionError)
    assert err.code == "6240"
    assert err.element == "DisplayName"
    assert '"Northgate"' in err.reason


def test_stale_object() -> None:
    err = classify(400, service_fault("5010"))
    assert isinstance(err, StaleObjectError)
    assert err.code == "5010"


def test_610_on_read_is_not_found_but_on_parent_ref_needs_action() -> None:
    assert isinstance(classify(400, service_fault("610"), is_read=True), NotFoundError)
    err = classify(400, service_fault("610", element="ParentRef"))
    assert isinstance(err, NeedsActionError)
    assert "parent customer is inactive" in err.reason
    assert isinstance(classify(400, service_fault("610")), NeedsActionError)


@pytest.mark.parametrize("code", ["2500", "6000", "6150", "2050", "2020", "2210", "2999"])
def test_validation_codes_need_action(code: str) -> None:
    err = classify(400, service_fault(code))
    assert isinstance(err, NeedsActionError)
    assert err.code == code
    assert err.reason and len(err.reason) < 120


def test_bad_parent_reason_mentions_parent() -> None:
    assert "parent" in classify(400, service_fault("2500")).reason


def test_gateway_401_is_auth_error() -> None:
    err = classify(401, gateway_fault("3200", 401))
    assert isinstance(err, AuthError)
    assert not isinstance(err, ReconnectRequired)
    assert err.code == "3200"
    assert err.intuit_tid == "1-abc-tid"


def test_401_without_json_body_is_auth_error() -> None:
    assert isinstance(classify(401, "Unauthorized"), AuthError)


def test_xml_authentication_fault_code_100() -> None:
    xml = XML_THROTTLE.replace('code="3001"', 'code="100"').replace("SERVICE", "AUTHENTICATION")
    assert isinstance(classify(401, xml), AuthError)


def test_403_authorization_failed_needs_reconnect() -> None:
    err = classify(403, gateway_fault("3100", 403))
    assert isinstance(err, ReconnectRequired)
    assert err.code == "3100"


def test_xml_429_is_throttled_with_retry_after() -> None:
    err = classify(429, XML_THROTTLE, headers={"Retry-After": "7"})
    assert isinstance(err, ThrottledError)
    assert isinstance(err, TransientError)
    assert err.code == "3001"
    assert err.retry_after == 7.0


def test_lowercase_json_429_is_throttled() -> None:
    err = classify(429, gateway_fault("3001", 429))
    assert isinstance(err, ThrottledError)
    assert err.retry_after is None


def test_capitalised_3001_is_throttled_even_on_400() -> None:
    # python-quickbooks would report this as a ValidationException
    # (https://github.com/ej2/python-quickbooks).
    assert isinstance(classify(400, service_fault("3001")), ThrottledError)


def test_old_style_403_throttle_is_throttled() -> None:
    assert isinstance(classify(403, XML_THROTTLE), ThrottledError)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_html_5xx_is_transient(status: int) -> None:
    err = classify(status, HTML_502, headers={"Retry-After": "3"})
    assert type(err) is TransientError
    assert err.status == status
    assert err.retry_after == 3.0


def test_json_system_fault_500_is_transient() -> None:
    err = classify(500, service_fault(None, fault_type="SystemFault"))
    assert type(err) is TransientError


def test_non_json_200_from_a_proxy_is_transient() -> None:
    assert type(classify(200, "<html>maintenance</html>")) is TransientError


def test_unknown_code_is_permanent() -> None:
    err = classify(400, service_fault("7777"))
    assert isinstance(err, PermanentError)
    assert err.code == "7777"


def test_fault_without_code_does_not_crash() -> None:
    # python-quickbooks raises TypeError on this shape (https://github.com/ej2/python-quickbooks).
    err = classify(400, service_fault(None))
    assert isinstance(err, PermanentError)
    assert err.code is None


def test_404_is_permanent() -> None:
    assert isinstance(classify(404, "Not Found"), PermanentError)


def test_classification_ignores_message_text() -> None:
    body = json.loads(service_fault("5010"))
    body["Fault"]["Error"][0]["Message"] = "Duplicate Name Exists Error"
    body["Fault"]["Error"][0]["Detail"] = "Throttle exceeded, 6240"
    assert isinstance(classify(400, json.dumps(body)), StaleObjectError)


def test_str_carries_code_status_and_tid() -> None:
    err = classify(400, service_fault("5010"))
    assert "5010" in str(err) and "1-abc-tid" in str(err) and "400" in str(err)
    assert isinstance(err, QboError)


def test_retry_after_formats() -> None:
    now = datetime(2025, 3, 14, 16, 0, 0, tzinfo=UTC)
    assert parse_retry_after("60") == 60.0
    assert parse_retry_after("Fri, 14 Mar 2025 16:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Fri, 14 Mar 2025 15:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
