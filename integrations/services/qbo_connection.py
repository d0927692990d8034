"""Connecting a company to QuickBooks (OAuth 2.0), disconnecting, and the customer cache.

The OAuth code exchange and the revoke are the only QBO calls made inside a web request:
both are the admin's own interactive step and answer in well under a second. Everything
else (the customer refresh, every sync) runs in Celery workers. The refresh's progress is a
staging Run, so staging starts it and keeps its run (staging.services.qbo_customer_refresh);
the paging is here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.errors import Refused
from integrations.models import Company, QboConnection, QboConnectionStatus, QboCustomer
from integrations.services.qbo import connection_store_tokens, qbo_client_for, qbo_config
from qbo_client import oauth
from qbo_client.client import QboCustomerData
from qbo_client.errors import QboError

SESSION_STATE_KEY = "qbo_oauth_state"


class ConnectError(Refused):
    """The connect flow cannot finish; the message says why and what to do."""


def qbo_connect_start(*, company: Company, session: MutableMapping[str, Any]) -> str:
    """The authorize URL; the state is random, single-use and bound to this session.

    Building it may fetch Intuit's discovery document once per process: a failure there
    (unreachable, or a host the outbound guard refuses) is a :class:`ConnectError`.
    """
    state = secrets.token_urlsafe(32)
    try:
        url = oauth.authorization_url(qbo_config(), state)
    except QboError as exc:
        raise ConnectError(f"QuickBooks sign-in could not start: {exc.reason}") from exc
    session[SESSION_STATE_KEY] = {"state": state, "company_id": company.pk}
    return url


def qbo_connect_finish(
    *,
    company: Company,
    actor: Actor,
    session: MutableMapping[str, Any],
    state: str,
    code: str,
    realm_id: str,
) -> QboConnection:
    expected = session.pop(SESSION_STATE_KEY, None)
    if (
        not expected
        or not secrets.compare_digest(str(expected.get("state", "")), state)
        or expected.get("company_id") != company.pk
    ):
        raise ConnectError(
            "This QuickBooks sign-in link has expired or was already used. "
            "Click Connect to QuickBooks again."
        )
    if not code or not realm_id:
        raise ConnectError("QuickBooks did not send an authorisation code. Please try again.")
    connection = QboConnection.objects.filter(company=company).first()
    if connection and connection.realm_id and connection.realm_id != realm_id:
        raise ConnectError(
            f"This company is linked to QuickBooks company {connection.realm_id}; "
            f"you signed in to {realm_id}. Reconnect to the same QuickBooks company so every "
            "mapping stays valid."
        )
    try:
        tokens = oauth.exchange_code(qbo_config(), code, realm_id)
    except QboError as exc:
        raise ConnectError(f"QuickBooks refused the connection: {exc.reason}") from exc
    with transaction.atomic():
        connection, _ = QboConnection.objects.select_for_update().get_or_create(company=company)
        connection.realm_id = realm_id
        connection.environment = qbo_config().environment
        connection.status = QboConnectionStatus.CONNECTED
        connection.connected_by = actor_user(actor)
        connection.connected_at = timezone.now()
        connection.last_error = ""
        connection.save()
        connection_store_tokens(connection=connection, tokens=tokens)
    return connection


def qbo_disconnect(*, company: Company, actor: Actor) -> str:
    """Revoke the tokens and forget them; mappings and the customer cache are kept."""
    connection = QboConnection.objects.filter(company=company).first()
    if connection is None or connection.status == QboConnectionStatus.DISCONNECTED:
        return "QuickBooks was not connected."
    message = "Disconnected from QuickBooks. Mappings are kept for when you reconnect."
    if connection.refresh_token:
        try:
            oauth.revoke(qbo_config(), connection.refresh_token)
        except QboError as exc:
            message = (
                "Disconnected here, but QuickBooks did not confirm the revoke "
                f"({exc.reason}); you can also remove the app in QuickBooks."
            )
    connection.access_token = ""
    connection.refresh_token = ""
    connection.access_expires_at = None
    connection.refresh_expires_at = None
    connection.refresh_hard_expires_at = None
    connection.expiry_warned_at = None
    connection.status = QboConnectionStatus.DISCONNECTED
    connection.save()
    return message


def qbo_customers_upsert(*, company: Company, customers: Iterable[QboCustomerData]) -> None:
    """Write customers read from QBO into the company's cache, one statement (the customer
    refresh, page by page, and the webhook processing)."""
    now = timezone.now()
    rows = [
        QboCustomer(
            company=company,
            qbo_id=customer.id,
            display_name=customer.display_name,
            search_name=customer.display_name.casefold(),
            fully_qualified_name=customer.fully_qualified_name,
            parent_qbo_id=customer.parent_id or "",
            is_job=customer.is_job,
            active=customer.active,
            sync_token=customer.sync_token,
            deleted_in_qbo=False,
            refreshed_at=now,
        )
        for customer in customers
    ]
    QboCustomer.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["company", "qbo_id"],
        update_fields=[
            "display_name",
            "search_name",
            "fully_qualified_name",
            "parent_qbo_id",
            "is_job",
            "active",
            "sync_token",
            "deleted_in_qbo",
            "refreshed_at",
        ],
    )


def _ignore(count: int) -> None:
    pass


def qbo_customers_refresh_all(
    *,
    company: Company,
    on_total: Callable[[int], object] = _ignore,
    on_progress: Callable[[int], object] = _ignore,
) -> int:
    """Page every QBO customer (inactive included) into the company's cache and mark the
    cached customers QBO no longer has as deleted; returns how many customers QBO has.

    ``on_total`` hears QBO's count before the first page, ``on_progress`` the customers
    stored so far after each page. A :class:`QboError` (or anything else) leaves the pages
    already stored and nothing marked deleted.
    """
    seen: set[str] = set()
    with qbo_client_for(company=company) as client:
        total = client.query("SELECT COUNT(*) FROM Customer WHERE Active IN (true, false)")
        on_total(int(total.get("totalCount", 0)))
        for page in client.iter_all_customers(include_inactive=True):
            qbo_customers_upsert(company=company, customers=page)
            seen.update(c.id for c in page)
            on_progress(len(seen))
    gone = QboCustomer.objects.filter(company=company).exclude(qbo_id__in=seen)
    gone.update(deleted_in_qbo=True)
    QboConnection.objects.filter(company=company).update(customers_refreshed_at=timezone.now())
    return len(seen)
