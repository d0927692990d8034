"""QBO webhooks: verify, store once, answer fast; the work happens in a Celery task.

Intuit signs the raw body with the app's verifier token (HMAC-SHA256, base64) in the
`intuit-signature` header, expects a 200 within 3 s, retries deliveries, and is moving from
the legacy `eventNotifications` payload to CloudEvents. Both are accepted.
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks

A delivery may name thousands of customers: it is stored with one INSERT and wakes one task
per realm, whatever its size (the work: integrations.services.webhook_processing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.errors import Refused
from integrations.models import WebhookEvent
from integrations.services.enqueue import enqueue

# The work moved to its own module; callers of this one keep working.
from integrations.services.webhook_processing import webhook_process as webhook_process
from linarc_client.client import json_without_lone_surrogates
from qbo_client.names import QBO_ID_MAX_LENGTH

_CLOUD_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
}


# QBO's payloads are 5 levels deep; anything far deeper is not Intuit's. Bounding it keeps the
# stored payload (JSONField, then PostgreSQL jsonb) and the dedupe hash clear of Python's
# recursion limit.
MAX_NESTING = 32
DEDUPE_KEY_LENGTH = 300  # WebhookEvent.dedupe_key
PROCESS_QBO_WEBHOOKS = "integrations.process_qbo_webhooks"  # the task (integrations.tasks)


class InvalidWebhook(Refused):
    """An unreadable payload (answered with 400)."""

    status = 400


class WebhookSignatureInvalid(InvalidWebhook):
    """The body is not signed with this app's verifier token (answered with 401)."""

    status = 401


@dataclass(frozen=True)
class Notification:
    dedupe_key: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    raw: dict[str, Any]


def signature_valid(*, body: bytes, signature: str, verifier_token: str) -> bool:
    expected = base64.b64encode(
        hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    ).decode()
    return hmac.compare_digest(expected, signature.strip())


def parse_notifications(body: bytes) -> list[Notification]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidWebhook("The webhook body is not JSON.") from exc
    except RecursionError as exc:
        # The C decoder gives up at the recursion limit (~1,000 levels), long before it has
        # read a 2 MB body of "[": cheap to reach, so catching it is the bound while parsing.
        raise InvalidWebhook("The webhook body is nested too deeply.") from exc
    if _nesting_exceeds(payload, MAX_NESTING):
        raise InvalidWebhook("The webhook body is nested too deeply.")
    # Half a surrogate pair ("\ud800") is valid JSON that no database text column takes.
    payload = json_without_lone_surrogates(body, payload)
    notes: list[Notification] = []
    if isinstance(payload, list):  # CloudEvents
        for event in payload:
            if not isinstance(event, dict):
                continue
            parts = str(event.get("type", "")).split(".")  # qbo.customer.updated.v1
            if len(parts) < 3:
                continue
            notes.append(
                Notification(
                    dedupe_key=_cloud_event_key(event),
                    realm_id=str(event.get("intuitaccountid", "")),
                    entity=parts[1].capitalize(),
                    entity_id=str(event.get("intuitentityid", "")),
                    operation=_CLOUD_OPERATIONS.get(parts[2], parts[2].capitalize()),
                    raw=event,
                )
            )
    elif isinstance(payload, dict):  # legacy eventNotifications
        for notification in _list(payload.get("eventNotifications")):
            if not isinstance(notification, dict):
                continue
            realm_id = str(notification.get("realmId", ""))
            change = notification.get("dataChangeEvent")
            entities = _list(change.get("entities")) if isinstance(change, dict) else []
            for entity in entities:
                if not isinstance(entity, dict):
                    continue
                key = ":".join(
                    str(entity.get(k, "")) for k in ("name", "id", "operation", "lastUpdated")
                )
                notes.append(
                    Notification(
                        dedupe_key=f"legacy:{realm_id}:{key}",
                        realm_id=realm_id,
                        entity=str(entity.get("name", "")),
                        entity_id=str(entity.get("id", "")),
                        operation=str(entity.get("operation", "")),
                        raw=entity,
                    )
                )
    else:
        raise InvalidWebhook("The webhook payload has an unknown shape.")
    # QBO record ids are decimal strings: anything else cannot name a record of ours, and
    # would overflow the columns or fail the client's id check in the task.
    return [
        n
        for n in notes
        if 0 < len(n.realm_id) <= 32
        and n.entity_id.isascii()
        and n.entity_id.isdigit()
        and len(n.entity_id) <= QBO_ID_MAX_LENGTH
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether lists/objects nest deeper than `limit`; a loop, so no recursion of its own."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        pending.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _cloud_event_key(event: dict[str, Any]) -> str:
    """CloudEvents name each event by `id`; without a usable one, by a hash of its content.

    Keying every id-less event as "ce:None" kept the first and dropped the rest as
    redeliveries. A retry of the same event still hashes the same: the canonical JSON sorts
    keys and drops whitespace, so the order Intuit writes them in does not matter.
    """
    event_id = event.get("id")
    usable = isinstance(event_id, (str, int)) and not isinstance(event_id, bool)
    if usable and str(event_id).strip():
        return f"ce:{event_id}"
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return f"ce-sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def _stored_key(dedupe_key: str) -> str:
    # Cutting a long key to the column would make two events sharing a long prefix one event.
    if len(dedupe_key) <= DEDUPE_KEY_LENGTH:
        return dedupe_key
    digest = hashlib.sha256(dedupe_key.encode(errors="surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def webhook_receive(*, body: bytes, signature: str, verifier_token: str) -> int:
    """Verify and store a delivery; returns how many of its events are new (redeliveries
    are skipped). One INSERT and one task per realm, however many customers it names."""
    if not verifier_token or not signature_valid(
        body=body, signature=signature, verifier_token=verifier_token
    ):
        raise WebhookSignatureInvalid("The intuit-signature header does not match.")
    received_at = timezone.now()
    events: dict[str, WebhookEvent] = {}
    for note in parse_notifications(body):
        if note.entity != "Customer":
            continue
        key = _stored_key(note.dedupe_key)
        if key in events:
            continue  # the same event twice within the delivery
        events[key] = WebhookEvent(
            dedupe_key=key,
            realm_id=note.realm_id,
            entity=note.entity,
            entity_id=note.entity_id,
            operation=note.operation[:20],
            payload=note.raw,
            received_at=received_at,
        )
    if not events:
        return 0
    with transaction.atomic():
        known = set(
            WebhookEvent.objects.filter(dedupe_key__in=list(events)).values_list(
                "dedupe_key", flat=True
            )
        )
        new = [event for key, event in events.items() if key not in known]
        # A retry of this delivery arriving meanwhile may store some keys first: skip them.
        WebhookEvent.objects.bulk_create(new, ignore_conflicts=True)
        for realm_id in sorted({event.realm_id for event in new}):
            transaction.on_commit(partial(enqueue, PROCESS_QBO_WEBHOOKS, realm_id=realm_id))
    return len(new)
