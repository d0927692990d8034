"""Keeping each realm's QuickBooks connection alive before it can expire.

A QBO refresh token lasts 100 days and each refresh may rotate it
(https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq).
A company that syncs rarely would let it lapse and find "reconnect needed" the day it
needs QuickBooks. The beat task refreshes every connected realm whose refresh token has
fewer than :data:`REFRESH_WHEN_LEFT` days left, through the same locked refresh as the
workers (``DjangoTokenStore``: one refresh per realm at a time, the rotated token stored in
the same transaction). A refused refresh (``invalid_grant``: revoked or expired) marks the
connection *Needs reconnect*, which every integration page shows.

Refreshing cannot outlive the grant's hard expiry (five years, sent as
``x_refresh_token_hard_expires_in``; same FAQ), and a refresh token can come near its end if
refreshes keep failing. So when a connection will lapse within ``EXPIRY_WARNING`` (14 days)
its admins get one e-mail asking them to reconnect; the mark is cleared when a refresh or a
reconnect moves the end further out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.utils import timezone

from integrations.models import QboConnection, QboConnectionStatus
from integrations.services.alerts import expiry_alert_send
from integrations.services.qbo import EXPIRY_WARNING, DjangoTokenStore, qbo_config
from qbo_client import oauth
from qbo_client.errors import QboError, ReconnectRequired

REFRESH_WHEN_LEFT = timedelta(days=60)


@dataclass(frozen=True)
class KeptFresh:
    refreshed: int
    needs_reconnect: int
    failed: int  # a transient failure: the next run tries again
    warned: int = 0  # connections whose admins were told it ends within 14 days


def qbo_tokens_keep_fresh(*, now: datetime | None = None) -> KeptFresh:
    now = now or timezone.now()
    due = QboConnection.objects.filter(status=QboConnectionStatus.CONNECTED).exclude(
        refresh_token=""
    )
    config = qbo_config()
    refresher = partial(oauth.refresh_tokens, config)
    refreshed = lost = failed = 0
    for connection in due:
        if (
            connection.refresh_expires_at
            and connection.refresh_expires_at - now > REFRESH_WHEN_LEFT
        ):
            continue
        try:
            DjangoTokenStore(connection.pk).refresh(connection.access_token, refresher)
        except ReconnectRequired:
            lost += 1
        except QboError:
            failed += 1
        else:
            refreshed += 1
    warned = sum(
        expiry_warn_if_near(connection_id=pk, now=now) for pk in due.values_list("pk", flat=True)
    )
    return KeptFresh(refreshed=refreshed, needs_reconnect=lost, failed=failed, warned=warned)


def expiry_warn_if_near(*, connection_id: int, now: datetime) -> bool:
    """E-mail the admins once if the connection lapses within EXPIRY_WARNING; the claim is
    one conditional UPDATE, so two runs at once send one e-mail."""
    connection = QboConnection.objects.get(pk=connection_id)
    ends_at = connection.ends_at
    if (
        connection.status != QboConnectionStatus.CONNECTED
        or ends_at is None
        or ends_at - now > EXPIRY_WARNING
    ):
        return False
    claimed = QboConnection.objects.filter(pk=connection_id, expiry_warned_at=None).update(
        expiry_warned_at=now
    )
    if claimed:
        expiry_alert_send(connection_id=connection_id, ends_at=ends_at)
    return bool(claimed)
