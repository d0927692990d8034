"""The webhook endpoint under hostile or odd deliveries: it always answers JSON, never a 500
for bad input, and tells CloudEvents apart even when they carry no usable ``id``.

Intuit's delivery rules (signature, retries, CloudEvents):
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from integrations import webhook_views
from integrations.models import WebhookEvent

VERIFIER = "hardening-verifier"


@pytest.fixture(autouse=True)
def _verifier(settings: Any) -> None:
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER


@pytest.fixture
def intuit() -> Client:
    # A 500 must show as one, not as an exception raised into the test.
    return Client(raise_request_exception=False)


def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()).decode()


def _deliver(client: Client, body: bytes, **headers: str) -> Any:
    return client.post(
        reverse("qbo_webhook"),
        body,
        content_type="application/json",
        headers={"intuit-signature": _sign(body), **headers},
    )


def _event(entity_id: str = "5", **fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "source": "intuit.x",
        "type": "qbo.customer.updated.v1",
        "time": "2026-11-25T10:00:00Z",
        "intuitentityid": entity_id,
        "intuitaccountid": "9130",
        "data": {},
        **fields,
    }


def _json_error(response: Any) -> str:
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


# --- nesting ---------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_in_json(intuit: Client, db: None) -> None:
    body = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's recursion limit

    response = _deliver(intuit, body)

    assert response.status_code == 400
    assert _json_error(response) == "The webhook body is nested too deeply."
    assert not WebhookEvent.objects.exists()


def test_nesting_past_the_limit_is_refused_even_when_it_parses(intuit: Client, db: None) -> None:
    data: dict[str, Any] = {}
    for _ in range(40):
        data = {"d": data}
    body = json.dumps([_event(id="evt-deep", data=data)]).encode()

    response = _deliver(intuit, body)

    assert response.status_code == 400
    assert _json_error(response) == "The webhook body is nested too deeply."
    assert not WebhookEvent.objects.exists()


# --- dedupe of CloudEvents without a usable id -------------------------------------------------


@pytest.mark.parametrize(
    "id_fields",
    [{}, {"id": ""}, {"id": "   "}, {"id": None}, {"id": {"a": 1}}, {"id": True}, {"id": 1.5}],
    ids=["missing", "empty", "blank", "null", "object", "boolean", "float"],
)
def test_id_less_cloud_events_are_told_apart_by_content(
    intuit: Client, db: None, id_fields: dict[str, Any]
) -> None:
    first = _event("5", **id_fields)
    same_reordered = dict(reversed(list(first.items())))
    other = _event("6", **id_fields)

    answers = [
        _deliver(intuit, json.dumps([first]).encode()).json(),
        _deliver(intuit, json.dumps([same_reordered], indent=2).encode()).json(),  # redelivery
        _deliver(intuit, json.dumps([other]).encode()).json(),
    ]

    assert answers == [{"accepted": 1}, {"accepted": 0}, {"accepted": 1}]
    assert sorted(WebhookEvent.objects.values_list("entity_id", flat=True)) == ["5", "6"]
    assert all(key.startswith("ce-sha256:") for key in _keys())


def test_usable_ids_key_the_event_and_long_ones_are_hashed_not_cut(
    intuit: Client, db: None
) -> None:
    shared = "x" * 400  # the key column holds 300 characters
    events = [
        _event("5", id="evt-1"),
        _event("6", id=77),
        _event("7", id=shared + "a"),
        _event("8", id=shared + "b"),
    ]
    for event in events:
        body = json.dumps([event]).encode()
        assert _deliver(intuit, body).json() == {"accepted": 1}
        assert _deliver(intuit, body).json() == {"accepted": 0}  # Intuit's retry

    keys = _keys()
    assert keys[:2] == ["ce:evt-1", "ce:77"]
    assert all(key.startswith("sha256:") and len(key) <= 300 for key in keys[2:])
    assert len(set(keys)) == 4


def test_half_a_surrogate_pair_is_stored_as_a_replacement_character(
    intuit: Client, db: None
) -> None:
    # Valid JSON, but no UTF-8 text column (PostgreSQL's) can hold a lone surrogate.
    body = json.dumps([_event("5", id="evt-\ud800", note="x\udfff")]).encode()
    assert b"\\ud800" in body
    assert _deliver(intuit, body).json() == {"accepted": 1}
    assert _deliver(intuit, body).json() == {"accepted": 0}
    event = WebhookEvent.objects.get()
    assert event.dedupe_key == "ce:evt-\ufffd"
    assert event.payload["note"] == "x\ufffd"


def test_qbo_ids_longer_than_32_digits_are_accepted(intuit: Client, db: None) -> None:
    long_id = "9" * 40
    assert _deliver(intuit, json.dumps([_event(long_id, id="e")]).encode()).json() == {
        "accepted": 1
    }
    assert WebhookEvent.objects.get().entity_id == long_id


def _keys() -> list[str]:
    return list(WebhookEvent.objects.order_by("pk").values_list("dedupe_key", flat=True))


# --- errors are JSON, whatever the cause -------------------------------------------------------


def test_oversized_webhook_is_a_413_in_json(intuit: Client, db: None, settings: Any) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = b'{"pad": "' + b"x" * limit + b'"}'

    response = _deliver(intuit, body)

    assert response.status_code == 413
    assert _json_error(response) == f"The webhook body is larger than {limit // 2**20} MB."
    assert not WebhookEvent.objects.exists()


def test_unknown_host_on_the_webhook_is_a_400_in_json(intuit: Client, db: None) -> None:
    body = json.dumps([_event(id="evt-host")]).encode()

    response = _deliver(intuit, body, host="evil.example")

    assert response.status_code == 400
    assert _json_error(response) == "This address is not served here (unknown host)."
    assert not WebhookEvent.objects.exists()


def test_get_on_the_webhook_is_a_405_in_json(intuit: Client, db: None) -> None:
    response = intuit.get(reverse("qbo_webhook"))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert _json_error(response) == "Intuit delivers webhooks with POST."


def test_a_crash_while_receiving_is_a_500_in_json_with_a_logged_traceback(
    intuit: Client, db: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(**kwargs: Any) -> list[int]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(webhook_views, "webhook_receive", crash)
    body = json.dumps([_event(id="evt-crash")]).encode()

    with caplog.at_level(logging.INFO):
        response = _deliver(intuit, body)

    assert response.status_code == 500
    assert _json_error(response) == "The webhook could not be received; please deliver it again."
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is not None and "RuntimeError: database went away" in caplog.text
