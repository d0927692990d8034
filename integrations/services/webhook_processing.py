"""QBO webhooks, the work: one realm's stored events a batch at a time, each customer read
and applied once with its latest state, however many events name it.

Runs in the `integrations.process_qbo_webhooks` task on a queue of its own (staging.celery):
a flood of notifications never sits ahead of anyone's sync, nor a sync backlog ahead of it.
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.models import Company, QboConnection, QboCustomer, WebhookEvent
from integrations.services.qbo import QboNotConnected, qbo_client_for
from integrations.services.qbo_connection import qbo_customers_upsert
from integrations.signals import qbo_customer_gone, send_counted
from qbo_client.client import QboClient, QboCustomerData
from qbo_client.errors import QboError, TransientError
from qbo_client.names import escape_query_literal

# Events claimed per run (the task comes again for the rest, so one realm's flood never
# holds a worker process for long), customer ids per QBO query, and how long a claim keeps
# other runs away before they may take over the events of a run that died.
WEBHOOK_BATCH_SIZE = 200
CUSTOMER_IDS_PER_QUERY = 100
CLAIM_LEASE = timedelta(minutes=10)
GONE_OPERATIONS = ("Delete", "Merge")
NO_COMPANY = "No company is connected to this QuickBooks company."

EntityKey = tuple[str, str]  # (entity, entity_id)


def webhook_events_process(
    *, realm_id: str, claim_id: str | None = None, final_try: bool = True
) -> bool:
    """Apply the next batch of the realm's events, each customer once with its latest state;
    returns whether more events wait for another run.

    ``claim_id`` names the run (the Celery task id): a re-delivered or retried task takes
    back what it had claimed, and finds nothing left once it is done. Unless ``final_try``,
    a transient QBO error while reading customers is raised (the events stay claimed and
    unprocessed for the retry); on the final try it becomes the events' outcome.
    """
    claim_id = claim_id or uuid.uuid4().hex
    events = _events_claim(realm_id=realm_id, claim_id=claim_id)
    if events:
        latest = _latest_per_entity(events)
        outcomes = dict.fromkeys(latest, NO_COMPANY)
        for connection in QboConnection.objects.filter(realm_id=realm_id).select_related("company"):
            outcomes.update(_apply(connection, list(latest.values()), final_try=final_try))
        _events_mark_processed(realm_id=realm_id, claim_id=claim_id, outcomes=outcomes)
    return _claimable(realm_id=realm_id, claim_id=claim_id).exists()


def webhook_realms_waiting(*, older_than: timedelta = timedelta(minutes=1)) -> list[str]:
    """Realms with events no run has taken for a while (their message was lost, or a run
    failed and its claim expired): the maintenance sweep sends each one a run again."""
    now = timezone.now()
    return list(
        WebhookEvent.objects.filter(processed_at=None, received_at__lt=now - older_than)
        .filter(Q(claim_id="") | Q(claimed_at__lt=now - CLAIM_LEASE))
        .order_by()
        .values_list("realm_id", flat=True)
        .distinct()
    )


def webhook_event_realm(*, event_id: int) -> str | None:
    """The realm of an event still to process (None once processed or unknown)."""
    return (
        WebhookEvent.objects.filter(pk=event_id, processed_at=None)
        .values_list("realm_id", flat=True)
        .first()
    )


def webhook_process(*, event_id: int, claim_id: str | None = None) -> bool:
    """Process the batch of the event's realm that holds it (for messages that name one
    event, sent before deliveries were coalesced); returns whether more events wait."""
    realm_id = webhook_event_realm(event_id=event_id)
    if realm_id is None:
        return False
    return webhook_events_process(realm_id=realm_id, claim_id=claim_id)


def _claimable(*, realm_id: str, claim_id: str) -> QuerySet[WebhookEvent]:
    stale = timezone.now() - CLAIM_LEASE
    return WebhookEvent.objects.filter(realm_id=realm_id, processed_at=None).filter(
        Q(claim_id="") | Q(claim_id=claim_id) | Q(claimed_at__lt=stale)
    )


def _events_claim(*, realm_id: str, claim_id: str) -> list[WebhookEvent]:
    """Claim the realm's oldest waiting events and the other waiting events of the same
    customers; the UPDATE is conditional, so of two runs racing for an event one gets it."""
    claimable = _claimable(realm_id=realm_id, claim_id=claim_id)
    with transaction.atomic():
        # SKIP LOCKED: on PostgreSQL a concurrent run takes other rows instead of waiting for
        # these, or deadlocking over a customer whose events both runs reach. SQLite has no
        # FOR UPDATE (Django leaves it out); its transactions lock the file at BEGIN here
        # (settings: transaction_mode IMMEDIATE).
        oldest = (
            claimable.order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("entity_id", flat=True)[:WEBHOOK_BATCH_SIZE]
        )
        same_customers = (
            claimable.filter(entity_id__in=set(oldest))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        claimable.filter(pk__in=list(same_customers)).update(
            claim_id=claim_id, claimed_at=timezone.now()
        )
    return list(
        WebhookEvent.objects.filter(
            realm_id=realm_id, processed_at=None, claim_id=claim_id
        ).order_by("pk")
    )


def _latest_per_entity(events: Iterable[WebhookEvent]) -> dict[EntityKey, WebhookEvent]:
    latest: dict[EntityKey, WebhookEvent] = {}
    for event in events:  # in arrival order: of two changes at the same moment, the later
        key = (event.entity, event.entity_id)
        if key not in latest or _changed_at(event) >= _changed_at(latest[key]):
            latest[key] = event
    return latest


def _changed_at(event: WebhookEvent) -> datetime:
    """When QBO says the change happened (legacy ``lastUpdated``, CloudEvents ``time``):
    Intuit retries failed deliveries, so an older change can arrive after a newer one."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    try:
        changed = datetime.fromisoformat(str(payload.get("lastUpdated") or payload.get("time")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return changed if changed.tzinfo else changed.replace(tzinfo=UTC)


def _events_mark_processed(*, realm_id: str, claim_id: str, outcomes: dict[EntityKey, str]) -> None:
    """Every claimed event of a customer gets that customer's one outcome."""
    entity_ids: dict[tuple[str, str], list[str]] = defaultdict(list)  # (outcome, entity)
    for (entity, entity_id), outcome in outcomes.items():
        entity_ids[(outcome, entity)].append(entity_id)
    now = timezone.now()
    with transaction.atomic():
        for (outcome, entity), ids in entity_ids.items():
            WebhookEvent.objects.filter(
                realm_id=realm_id,
                processed_at=None,
                claim_id=claim_id,
                entity=entity,
                entity_id__in=ids,
            ).update(processed_at=now, outcome=outcome)


def _apply(
    connection: QboConnection, events: list[WebhookEvent], *, final_try: bool
) -> dict[EntityKey, str]:
    """Refresh the cached customers; flag projects whose customer or job went away.

    ``events`` holds the latest event of each customer. Deletes and merges need no read;
    the others are read from QBO (a customer it no longer has, or an inactive one, went
    away too).
    """
    company = connection.company
    customers, read_failures = _customers_read(
        company=company,
        customer_ids=[e.entity_id for e in events if e.operation not in GONE_OPERATIONS],
        final_try=final_try,
    )
    qbo_customers_upsert(company=company, customers=customers.values())
    outcomes: dict[EntityKey, str] = {}
    for event in events:
        customer = customers.get(event.entity_id)
        if event.entity_id in read_failures:
            outcome = f"Could not read the customer: {read_failures[event.entity_id]}"
        elif event.operation in GONE_OPERATIONS or customer is None or not customer.active:
            outcome = _flag_gone(company, event)
        else:
            outcome = "Customer cache refreshed."
        outcomes[(event.entity, event.entity_id)] = outcome
    return outcomes


def _customers_read(
    *, company: Company, customer_ids: list[str], final_try: bool
) -> tuple[dict[str, QboCustomerData], dict[str, str]]:
    """The customers QBO has among ``customer_ids`` by Id, and the ids that could not be
    read with the reason (a transient error is raised instead unless ``final_try``). One
    query per 100 ids rather than a GET each: the realm's request budget is shared with the
    sync."""
    found: dict[str, QboCustomerData] = {}
    if not customer_ids:
        return found, {}
    try:
        with qbo_client_for(company=company) as client:
            for start in range(0, len(customer_ids), CUSTOMER_IDS_PER_QUERY):
                chunk = customer_ids[start : start + CUSTOMER_IDS_PER_QUERY]
                found.update((c.id, c) for c in _customers_by_id(client, chunk))
    except (QboError, QboNotConnected) as exc:
        if isinstance(exc, TransientError) and not final_try:
            raise
        reason = exc.reason if isinstance(exc, QboError) else str(exc)
        return found, {i: reason for i in customer_ids if i not in found}
    return found, {}


def _customers_by_id(client: QboClient, customer_ids: list[str]) -> list[QboCustomerData]:
    literals = ", ".join(f"'{escape_query_literal(i)}'" for i in customer_ids)
    # Without a filter on Active, QBO leaves inactive customers out, and an inactive one
    # would read as deleted (the sync's look-ups ask the same way):
    # https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
    statement = (
        f"SELECT * FROM Customer WHERE Id IN ({literals}) "  # noqa: S608 (QBO's query language)
        f"AND Active IN (true, false) MAXRESULTS {len(customer_ids)}"
    )
    return [QboCustomerData.from_json(c) for c in client.query(statement).get("Customer", [])]


def _flag_gone(company: Company, event: WebhookEvent) -> str:
    """Mark the cached customer gone; staging flags the projects mapped to it
    (staging.receivers) and says how many."""
    QboCustomer.objects.filter(company=company, qbo_id=event.entity_id).update(
        deleted_in_qbo=True, active=False
    )
    flagged = send_counted(
        qbo_customer_gone,
        QboCustomer,
        company=company,
        qbo_id=event.entity_id,
        operation=event.operation,
        webhook_event_id=event.pk,
    )
    return f"Flagged {flagged} project(s)."
