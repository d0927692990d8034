"""OAuth token sets and the persistence seam the Django side implements.

QBO rotates refresh tokens: a refresh may return a new one, and earlier ones stop working
about 24 h later. Two workers refreshing at once, or a lost write of the rotated token, end
in ``invalid_grant`` and a forced reconnect ([oauth], [invalid-grant]). So every refresh goes
through :meth:`TokenStore.refresh`, which serialises refreshes per realm and lets the
losers of the race reuse the winner's tokens.

Sources:
[oauth] Intuit, OAuth 2.0:
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
[invalid-grant] Nango, QuickBooks invalid_grant:
    https://nango.dev/blog/quickbooks-oauth-refresh-token-invalid-grant
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from qbo_client.errors import ReconnectRequired


@dataclass(frozen=True)
class TokenSet:
    """One realm's tokens with absolute, timezone-aware expiries (QBO sends relative
    seconds; [intuit-oauth]). Tokens are kept out of ``repr`` so they never reach logs."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    # Only present when Intuit returns x_refresh_token_hard_expires_in ([oauth]).
    refresh_hard_expires_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("access_expires_at", "refresh_expires_at", "refresh_hard_expires_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"TokenSet.{name} must be timezone-aware")

    def access_expires_within(self, seconds: float, *, now: datetime) -> bool:
        return self.access_expires_at - now <= timedelta(seconds=seconds)


class TokenStore(Protocol):
    """Persistence for ONE realm's tokens, shared by every worker.

    ``refresh`` must, under a per-realm lock (the Django implementation: ``select_for_update``
    on the connection row inside ``transaction.atomic``):

    1. re-read the stored tokens; if the stored access token differs from
       ``stale_access_token``, another worker has already refreshed: return the stored set;
    2. otherwise call ``refresher(stored_refresh_token)``, persist the returned set (the
       rotated refresh token included) in the same transaction, and return it;
    3. if ``refresher`` raises :class:`ReconnectRequired`, mark the connection
       "needs reconnect" (committed, not rolled back) and re-raise.
    """

    def current(self) -> TokenSet: ...

    def refresh(
        self, stale_access_token: str, refresher: Callable[[str], TokenSet]
    ) -> TokenSet: ...


class MemoryTokenStore:
    """In-process :class:`TokenStore` for tests and scripts (one realm, thread-safe)."""

    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()
        self.needs_reconnect = False
        self.refresh_count = 0

    def current(self) -> TokenSet:
        with self._lock:
            if self.needs_reconnect:
                raise ReconnectRequired("Reconnect QuickBooks")
            return self._tokens

    def refresh(self, stale_access_token: str, refresher: Callable[[str], TokenSet]) -> TokenSet:
        with self._lock:
            if self.needs_reconnect:
                raise ReconnectRequired("Reconnect QuickBooks")
            if self._tokens.access_token != stale_access_token:
                return self._tokens  # another thread won the race: reuse its tokens
            try:
                fresh = refresher(self._tokens.refresh_token)
            except ReconnectRequired:
                self.needs_reconnect = True
                raise
            self._tokens = fresh
            self.refresh_count += 1
            return fresh

    def replace(self, **changes: object) -> None:
        """Test helper: overwrite stored fields (e.g. ``access_expires_at``)."""
        with self._lock:
            self._tokens = replace(self._tokens, **changes)  # type: ignore[arg-type]
