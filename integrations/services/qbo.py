"""The Django side of the QBO client: settings → QboConfig, encrypted token persistence
with a per-realm row lock, the shared per-realm rate limiter, and client construction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache, partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.errors import Conflict
from integrations.models import Company, QboConnection, QboConnectionStatus
from integrations.services.alerts import reconnect_alert_send
from integrations.services.qbo_traffic import exchange_recorder
from qbo_client.client import QboClient, RequestRecord
from qbo_client.config import QboConfig
from qbo_client.errors import ReconnectRequired
from qbo_client.ratelimit import RealmRateLimiter
from qbo_client.tokens import TokenSet

# Admins are told this long before a connection lapses (see qbo_tokens.py).
EXPIRY_WARNING = timedelta(days=14)
RECONNECT_REASON = "Reconnect QuickBooks: the connection was revoked or has expired."


class QboNotConnected(Conflict):
    """The company has no working QBO connection; a person must (re)connect."""


def qbo_config() -> QboConfig:
    return QboConfig(
        client_id=settings.QBO_CLIENT_ID,
        client_secret=settings.QBO_CLIENT_SECRET,
        redirect_uri=settings.QBO_REDIRECT_URI,
        environment=settings.QBO_ENVIRONMENT,
        api_base_url=settings.QBO_API_BASE_URL,
        allow_private_hosts=settings.OUTBOUND_ALLOW_PRIVATE_HOSTS,
    )


@cache
def _limiter(url: str | None, window_seconds: int, margin_percent: int = 100) -> RealmRateLimiter:
    return RealmRateLimiter.from_url(
        url, window_seconds=window_seconds, margin=margin_percent / 100
    )


def rate_limiter() -> RealmRateLimiter:
    """One limiter per process; on Redis it shares the realm's budget with every worker."""
    return _limiter(
        settings.RATE_LIMIT_REDIS_URL,
        settings.QBO_RATE_WINDOW_SECONDS,
        settings.QBO_RATE_MARGIN_PERCENT,
    )


def _token_set(connection: QboConnection) -> TokenSet:
    assert connection.access_expires_at is not None
    return TokenSet(
        access_token=connection.access_token,
        refresh_token=connection.refresh_token,
        access_expires_at=connection.access_expires_at,
        refresh_expires_at=connection.refresh_expires_at,
    )


def connection_store_tokens(*, connection: QboConnection, tokens: TokenSet) -> None:
    connection.access_token = tokens.access_token
    connection.refresh_token = tokens.refresh_token
    connection.access_expires_at = tokens.access_expires_at
    connection.refresh_expires_at = tokens.refresh_expires_at
    if tokens.refresh_hard_expires_at is not None:  # only when Intuit sends it
        connection.refresh_hard_expires_at = tokens.refresh_hard_expires_at
    connection.refreshed_at = timezone.now()
    ends_at = connection.ends_at
    if ends_at is None or ends_at - connection.refreshed_at > EXPIRY_WARNING:
        connection.expiry_warned_at = None  # a later approach to the end warns again
    connection.save(
        update_fields=[
            "access_token",
            "refresh_token",
            "access_expires_at",
            "refresh_expires_at",
            "refresh_hard_expires_at",
            "refreshed_at",
            "expiry_warned_at",
        ]
    )


def connection_mark_needs_reconnect(*, connection_id: int, reason: str = RECONNECT_REASON) -> None:
    """Mark the connection lost; the first time only, its admins get an e-mail at once."""
    changed = (
        QboConnection.objects.filter(pk=connection_id)
        .exclude(status=QboConnectionStatus.NEEDS_RECONNECT)
        .update(status=QboConnectionStatus.NEEDS_RECONNECT, last_error=reason)
    )
    if changed:
        transaction.on_commit(partial(reconnect_alert_send, connection_id=connection_id))


class DjangoTokenStore:
    """TokenStore on the QboConnection row (qbo_client.tokens.TokenStore).

    Refreshes run under SELECT … FOR UPDATE on the connection, so concurrent workers never
    race a rotating refresh token (a lost rotated token means invalid_grant, see
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq);
    the rotated token is stored in the same transaction as the refresh.
    """

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id

    def current(self) -> TokenSet:
        connection = QboConnection.objects.get(pk=self.connection_id)
        if connection.status != QboConnectionStatus.CONNECTED or not connection.refresh_token:
            raise ReconnectRequired(RECONNECT_REASON)
        return _token_set(connection)

    def refresh(self, stale_access_token: str, refresher: Callable[[str], TokenSet]) -> TokenSet:
        try:
            with transaction.atomic():
                connection = QboConnection.objects.select_for_update().get(pk=self.connection_id)
                if connection.status != QboConnectionStatus.CONNECTED:
                    raise ReconnectRequired(RECONNECT_REASON)
                if connection.access_token != stale_access_token:
                    return _token_set(connection)  # another worker already refreshed
                tokens = refresher(connection.refresh_token)
                connection_store_tokens(connection=connection, tokens=tokens)
                return tokens
        except ReconnectRequired:
            # Outside the rolled-back transaction, so the mark sticks (mappings are kept).
            connection_mark_needs_reconnect(connection_id=self.connection_id)
            raise


def sync_rate_limiter() -> RealmRateLimiter:
    """The realm's shared budget for the sync's lanes: a slot that does not come within
    ``SYNC_LIMITER_MAX_WAIT_SECONDS`` is refused at once (ThrottledError with retry_after),
    so a worker process never sits in one realm's limiter while other realms have work."""
    return rate_limiter().with_max_wait(settings.SYNC_LIMITER_MAX_WAIT_SECONDS)


def qbo_client_for(
    *,
    company: Company,
    on_request: Callable[[RequestRecord], None] | None = None,
    limiter: RealmRateLimiter | None = None,
) -> QboClient:
    """A client for one task and realm (python-quickbooks clients are not thread-safe)."""
    connection = QboConnection.objects.filter(company=company).first()
    if connection is None or connection.status == QboConnectionStatus.DISCONNECTED:
        raise QboNotConnected(
            "QuickBooks is not connected. An administrator can connect it under "
            "ERP Integration → QuickBooks connection."
        )
    if connection.status == QboConnectionStatus.NEEDS_RECONNECT:
        raise ReconnectRequired(RECONNECT_REASON)
    return QboClient(
        qbo_config(),
        connection.realm_id,
        DjangoTokenStore(connection.pk),
        limiter or rate_limiter(),
        on_request=exchange_recorder(connection.realm_id, on_request),
    )
