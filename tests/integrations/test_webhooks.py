from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from django.urls import reverse

from integrations.models import QboCustomer, WebhookEvent
from integrations.services.webhooks import webhook_process
from qbo_client.emulator import QboEmulator
from staging.models import ChangeEvent, EventKind, StagedProject, SyncStatus
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.fixtures.qbo import connect_company, control, refresh_customers

VERIFIER = "test-verifier-token"


def _sign(body: bytes, token: str = VERIFIER) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def _legacy(realm: str, entity_id: str, operation: str) -> bytes:
    return json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Customer",
                                "id": entity_id,
                                "operation": operation,
                                "lastUpdated": "2026-11-25T10:00:00.000Z",
                            }
                        ]
                    },
                }
            ]
        }
    ).encode()


def _cloud(realm: str, entity_id: str, kind: str, event_id: str = "evt-1") -> bytes:
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": event_id,
                "source": "intuit.x",
                "type": f"qbo.customer.{kind}.v1",
                "time": "2026-11-25T10:00:00Z",
                "intuitentityid": entity_id,
                "intuitaccountid": realm,
                "data": {},
            }
        ]
    ).encode()


@pytest.fixture
def webhook_settings(settings: Any) -> None:
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = VERIFIER


def _post(client: Any, body: bytes, signature: str) -> Any:
    return client.post(
        reverse("qbo_webhook"),
        body,
        content_type="application/json",
        headers={"intuit-signature": signature},
    )


def test_bad_signature_is_rejected(client: Any, db: None, webhook_settings: None) -> None:
    body = _legacy("1", "5", "Update")
    assert _post(client, body, _sign(body, "wrong")).status_code == 401
    assert _post(client, body, "").status_code == 401
    assert not WebhookEvent.objects.exists()


def test_not_json_is_a_400(client: Any, db: None, webhook_settings: None) -> None:
    body = b"<xml/>"
    assert _post(client, body, _sign(body)).status_code == 400


def test_redelivery_is_stored_once_and_the_work_is_queued(
    client: Any, db: None, webhook_settings: None, django_capture_on_commit_callbacks: Any
) -> None:
    body = _cloud("1", "5", "updated")
    with django_capture_on_commit_callbacks() as callbacks:
        first = _post(client, body, _sign(body))
        second = _post(client, body, _sign(body))
    assert (first.status_code, first.json()) == (200, {"accepted": 1})
    assert (second.status_code, second.json()) == (200, {"accepted": 0})
    # Intuit wants an answer within 3 s: the request stores the event and queues one task;
    # nothing is read from QBO while Intuit waits.
    assert WebhookEvent.objects.count() == 1 and len(callbacks) == 1
    assert WebhookEvent.objects.get().processed_at is None


def test_both_payload_formats_are_understood(client: Any, db: None, webhook_settings: None) -> None:
    for body in (_legacy("1", "7", "Merge"), _cloud("1", "8", "deleted", "evt-2")):
        assert _post(client, body, _sign(body)).status_code == 200
    assert set(WebhookEvent.objects.values_list("entity_id", "operation")) == {
        ("7", "Merge"),
        ("8", "Delete"),
    }


def test_deleted_mapped_customer_flags_its_projects(
    personas: Personas, qbo_emulator: QboEmulator, webhook_settings: None
) -> None:
    connect_company(personas.company)
    refresh_customers(personas.company)
    customer = QboCustomer.objects.filter(company=personas.company, is_job=False, active=True)[0]
    project = StagedProjectFactory(
        company=personas.company, qbo_customer=customer, status=SyncStatus.NEEDS_SYNC
    )
    realm = control(qbo_emulator, "GET", "state")["realm_id"]
    event = WebhookEvent.objects.create(
        dedupe_key="k",
        realm_id=realm,
        entity="Customer",
        entity_id=customer.qbo_id,
        operation="Merge",
    )
    webhook_process(event_id=event.pk)
    webhook_process(event_id=event.pk)  # a re-delivered task does nothing more
    project.refresh_from_db()
    assert project.status == SyncStatus.NEEDS_ACTION
    assert "merged" in project.status_reason
    assert ChangeEvent.objects.filter(project=project, kind=EventKind.NEEDS_ACTION).count() == 1
    customer.refresh_from_db()
    assert customer.deleted_in_qbo


def test_updated_customer_refreshes_the_cache(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    connect_company(personas.company)
    refresh_customers(personas.company)
    customer = QboCustomer.objects.filter(company=personas.company, is_job=False)[0]
    QboCustomer.objects.filter(pk=customer.pk).update(display_name="stale name")
    realm = control(qbo_emulator, "GET", "state")["realm_id"]
    event = WebhookEvent.objects.create(
        dedupe_key="k2",
        realm_id=realm,
        entity="Customer",
        entity_id=customer.qbo_id,
        operation="Update",
    )
    webhook_process(event_id=event.pk)
    customer.refresh_from_db()
    assert customer.display_name != "stale name"
    assert StagedProject.objects.count() == 0
