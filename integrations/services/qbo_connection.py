"""Connecting a company to QuickBooks (OAuth 2.0), disconnecting, and the customer cache.

The OAuth code exchange and the revoke are the only QBO calls made inside a web request:
both are the admin's own interactive step and answer in well under a second. Everything
else (the customer refresh, every sync) runs in Celery workers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, MutableMapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.models import Company, QboConnection, QboConnectionStatus, QboCustomer
from integrations.services.qbo import connection_store_tokens, qbo_client_for, qbo_config
from qbo_client import oauth
from qbo_client.client import QboCustomerData
from qbo_client.errors import QboError
from staging.models import Run, RunKind, RunState

SESSION_STATE_KEY = "qbo_oauth_state"


class ConnectError(Exception):
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
    actor: Any,
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
        connection.connected_by = actor
        connection.connected_at = timezone.now()
        connection.last_error = ""
        connection.save()
        connection_store_tokens(connection=connection, tokens=tokens)
    return connection


def qbo_disconnect(*, company: Company, actor: Any) -> str:
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
    connection.status = QboConnectionStatus.DISCONNECTED
    connection.save()
    return message


def customers_refresh_start(*, company: Company, actor: Any) -> Run:
    from integrations.tasks import refresh_qbo_customers

    with transaction.atomic():
        run = Run.objects.create(
            company=company, kind=RunKind.REFRESH_CUSTOMERS, started_by=actor or None
        )
        transaction.on_commit(lambda: refresh_qbo_customers.delay(run_id=run.pk))
    return run


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


def qbo_customers_refresh(*, run_id: int) -> None:
    """Page every QBO customer (inactive included) into the local cache, with progress."""
    claimed = Run.objects.filter(pk=run_id, state=RunState.PENDING).update(
        state=RunState.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return  # re-delivered: the first delivery did (or is doing) the work
    run = Run.objects.select_related("company").get(pk=run_id)
    company = run.company
    seen: set[str] = set()
    try:
        with qbo_client_for(company=company) as client:
            total = client.query("SELECT COUNT(*) FROM Customer WHERE Active IN (true, false)")
            count = int(total.get("totalCount", 0))
            Run.objects.filter(pk=run.pk).update(total=count)
            for page in client.iter_all_customers(include_inactive=True):
                qbo_customers_upsert(company=company, customers=page)
                seen.update(c.id for c in page)
                Run.objects.filter(pk=run.pk).update(processed=len(seen))
    except QboError as exc:
        Run.objects.filter(pk=run.pk).update(
            state=RunState.FAILED, error=exc.reason, finished_at=timezone.now()
        )
        return
    except Exception as exc:  # the run must say it failed, whatever happened
        Run.objects.filter(pk=run.pk).update(
            state=RunState.FAILED, error=str(exc)[:500], finished_at=timezone.now()
        )
        raise
    gone = QboCustomer.objects.filter(company=company).exclude(qbo_id__in=seen)
    gone.update(deleted_in_qbo=True)
    QboConnection.objects.filter(company=company).update(customers_refreshed_at=timezone.now())
    Run.objects.filter(pk=run.pk).update(
        state=RunState.DONE,
        finished_at=timezone.now(),
        counts={"customers": len(seen)},
        processed=len(seen),
    )
