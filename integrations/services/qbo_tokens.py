"""Keeping each realm's QuickBooks connection alive before it can expire.

A QBO refresh token lasts 100 days and each refresh may rotate it
(https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq).
A company that syncs rarely would let it lapse and find "reconnect needed" the day it
needs QuickBooks. The beat task refreshes every connected realm whose refresh token has
fewer than :data:`REFRESH_WHEN_LEFT` days left, through the same locked refresh as the
workers (``DjangoTokenStore``: one refresh per realm at a time, the rotated token stored in
the same transaction). A refused refresh (``invalid_grant``: revoked or expired) marks the
connection *Needs reconnect*, which every integration page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.utils import timezone

from integrations.models import QboConnection, QboConnectionStatus
from integrations.services.qbo import DjangoTokenStore, qbo_config
from qbo_client import oauth
from qbo_client.errors import QboError, ReconnectRequired

REFRESH_WHEN_LEFT = timedelta(days=60)


@dataclass(frozen=True)
class KeptFresh:
    refreshed: int
    needs_reconnect: int
    failed: int  # a transient failure: the next run tries again


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
    return KeptFresh(refreshed=refreshed, needs_reconnect=lost, failed=failed)
