"""OAuth 2.0 against Intuit (or the emulator) on intuit-oauth's ``AuthClient``.

All functions take a :class:`QboConfig` and return plain values; failures come out as
:mod:`qbo_client.errors` types (``invalid_grant`` → :class:`ReconnectRequired`).

Sources:
[oauth] Intuit, OAuth 2.0:
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
[invalid-grant] Nango, QuickBooks invalid_grant:
    https://nango.dev/blog/quickbooks-oauth-refresh-token-invalid-grant
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from intuitlib.client import AuthClient
from intuitlib.config import DISCOVERY_URL
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from netguard import OutboundRefused
from qbo_client.config import QboConfig, allow_insecure_loopback
from qbo_client.errors import (
    PermanentError,
    QboError,
    ReconnectRequired,
    RefusedHostError,
    TransientError,
)
from qbo_client.tokens import TokenSet
from qbo_client.transport import mount_timeouts

# The six keys AuthClient reads from the discovery document ([oauth]).
_DISCOVERY_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "issuer",
    "jwks_uri",
    "userinfo_endpoint",
)
_discovery_cache: dict[str, dict[str, str]] = {}
_discovery_lock = threading.Lock()


def discovery_url(config: QboConfig) -> str:
    """The discovery URL intuit-oauth would use for ``config.environment`` ([intuit-oauth])."""
    env = config.environment.lower()
    if env in {"production", "prod"}:
        return str(DISCOVERY_URL["production"])
    if env in {"sandbox", "sand"}:
        return str(DISCOVERY_URL["sandbox"])
    return config.environment


# Where Intuit's discovery documents, sandbox and production alike, send a user to sign in
# ("authorization_endpoint": "https://appcenter.intuit.com/connect/oauth2"):
# https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
INTUIT_SIGN_IN_ORIGIN = "https://appcenter.intuit.com"


def sign_in_origin(config: QboConfig) -> str:
    """The origin of the page :func:`authorization_url` sends the user to, known without a
    network call: Intuit's for sandbox and production; otherwise (the emulator, which serves
    its discovery document and its sign-in page itself) the discovery URL's."""
    url = discovery_url(config)
    if url in DISCOVERY_URL.values():
        return INTUIT_SIGN_IN_ORIGIN
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def get_discovery(config: QboConfig) -> dict[str, str]:
    """The discovery document, fetched once per URL per process, with a timeout."""
    url = discovery_url(config)
    with _discovery_lock:
        cached = _discovery_cache.get(url)
        if cached is not None:
            return cached
        try:
            with requests.Session() as session:
                mount_timeouts(
                    session,
                    config.timeout_seconds,
                    allow_private_hosts=config.allow_private_hosts,
                )
                response = session.get(url, headers={"Accept": "application/json"})
        except OutboundRefused as exc:
            raise RefusedHostError(exc.reason, detail=url) from exc
        except requests.RequestException as exc:
            raise TransientError(
                f"Could not reach the QuickBooks sign-in service ({type(exc).__name__})"
            ) from exc
        tid = response.headers.get("intuit_tid")
        if response.status_code != 200:
            cls = TransientError if response.status_code >= 500 else PermanentError
            raise cls(
                f"QuickBooks discovery document unavailable (HTTP {response.status_code})",
                status=response.status_code,
                intuit_tid=tid,
            )
        try:
            doc = response.json()
            endpoints = {key: str(doc[key]) for key in _DISCOVERY_KEYS}
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(
                "QuickBooks discovery document is malformed", status=200, intuit_tid=tid
            ) from exc
        _discovery_cache[url] = endpoints
        return endpoints


def clear_discovery_cache() -> None:
    """For tests that restart an emulator on another port."""
    with _discovery_lock:
        _discovery_cache.clear()


class _CachedDiscoveryAuthClient(AuthClient):  # type: ignore[misc, unused-ignore]
    """``AuthClient`` whose endpoints come from :func:`get_discovery` and whose HTTP calls
    time out.

    intuit-oauth 1.2.6's constructor GETs the discovery document on every construction, with
    no timeout (oauth-pythonclient #18, [intuit-oauth]), and a session adapter cannot be
    mounted before that GET because ``requests.Session.__init__`` runs inside it. So this
    subclass performs the same initialisation itself: ``requests.Session`` set-up, then the
    attributes ``AuthClient.__init__`` sets, from a cached document. intuit-oauth is pinned
    to 1.2.6 by python-quickbooks, so the attribute list cannot drift silently; a test
    compares it with a stock ``AuthClient``.
    """

    def __init__(
        self,
        config: QboConfig,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        realm_id: str | None = None,
    ) -> None:
        requests.Session.__init__(self)
        # The token, revoke and user-info endpoints come from the discovery document: they
        # are checked like any other host when private hosts are refused.
        mount_timeouts(self, config.timeout_seconds, allow_private_hosts=config.allow_private_hosts)
        # Ask for the 5-year hard-expiry field ([oauth]); ignored where unsupported.
        self.headers["x-include-refresh-token-hard-expires-in"] = "true"
        endpoints = get_discovery(config)
        self.client_id = config.client_id
        self.client_secret = config.client_secret
        self.redirect_uri = config.redirect_uri
        self.environment = config.environment
        self.state_token: str | None = None
        self.auth_endpoint = endpoints["authorization_endpoint"]
        self.token_endpoint = endpoints["token_endpoint"]
        self.revoke_endpoint = endpoints["revocation_endpoint"]
        self.issuer_uri = endpoints["issuer"]
        self.jwks_uri = endpoints["jwks_uri"]
        self.user_info_url = endpoints["userinfo_endpoint"]
        self.realm_id = realm_id
        self.access_token = access_token
        self.expires_in: int | None = None
        self.refresh_token = refresh_token
        self.x_refresh_token_expires_in: int | None = None
        self.id_token: str | None = None


def build_auth_client(
    config: QboConfig,
    *,
    access_token: str | None = None,
    refresh_token: str | None = None,
    realm_id: str | None = None,
) -> AuthClient:
    """An ``AuthClient`` for ``config`` (no network call once discovery is cached)."""
    allow_insecure_loopback(discovery_url(config))
    return _CachedDiscoveryAuthClient(
        config, access_token=access_token, refresh_token=refresh_token, realm_id=realm_id
    )


def authorization_url(config: QboConfig, state: str) -> str:
    """Where to send the admin to connect QuickBooks; ``state`` must be unguessable
    (``secrets.token_urlsafe()``) and checked on the callback."""
    auth = build_auth_client(config)
    return str(auth.get_authorization_url([Scopes.ACCOUNTING], state_token=state))


def exchange_code(config: QboConfig, code: str, realm_id: str) -> TokenSet:
    """Trade the callback's ``code`` for tokens. ``realm_id`` comes from the callback's
    ``realmId`` (the token response does not carry it)."""
    auth = build_auth_client(config, realm_id=realm_id)
    _call_token_endpoint(lambda: auth.get_bearer_token(code, realm_id=realm_id))
    return _token_set(auth)


def refresh_tokens(config: QboConfig, refresh_token: str) -> TokenSet:
    """Use ``refresh_token`` once; the result holds the (possibly rotated) refresh token,
    which must be stored before anything else happens ([oauth])."""
    auth = build_auth_client(config, refresh_token=refresh_token)
    _call_token_endpoint(lambda: auth.refresh(refresh_token=refresh_token))
    return _token_set(auth)


def revoke(config: QboConfig, token: str) -> None:
    """Revoke a refresh or access token (disconnect)."""
    auth = build_auth_client(config)
    _call_token_endpoint(lambda: auth.revoke(token=token))


def _call_token_endpoint(call: Callable[[], object]) -> None:
    try:
        call()
    except OutboundRefused as exc:
        raise RefusedHostError(exc.reason) from exc
    except AuthClientError as exc:
        raise _classify_auth_error(exc) from exc
    except requests.RequestException as exc:
        raise TransientError(
            f"Could not reach the QuickBooks sign-in service ({type(exc).__name__})"
        ) from exc


def _classify_auth_error(exc: AuthClientError) -> QboError:
    status = int(exc.status_code)
    tid = exc.intuit_tid
    content = exc.content.decode("utf-8", "replace") if exc.content else ""
    error: str | None = None
    try:
        payload = json.loads(content)
        if isinstance(payload, Mapping):
            error = str(payload.get("error")) if payload.get("error") else None
    except ValueError:
        pass
    if error == "invalid_grant":
        # Expired, revoked or already-rotated refresh token ([oauth], [invalid-grant]).
        return ReconnectRequired(
            "Reconnect QuickBooks", code=error, status=status, intuit_tid=tid, detail=content
        )
    if error == "invalid_client":
        return PermanentError(
            "QuickBooks rejected the app's client id or secret",
            code=error,
            status=status,
            intuit_tid=tid,
            detail=content,
        )
    if status == 429 or status >= 500:
        return TransientError(
            f"QuickBooks sign-in service error (HTTP {status}); will retry",
            code=error,
            status=status,
            intuit_tid=tid,
            detail=content,
        )
    return PermanentError(
        f"QuickBooks sign-in failed ({error or f'HTTP {status}'})",
        code=error,
        status=status,
        intuit_tid=tid,
        detail=content,
    )


def _seconds(value: object) -> float | None:
    try:
        return None if value is None else float(str(value))
    except ValueError:
        return None


def _token_set(auth: AuthClient) -> TokenSet:
    # Lifetimes are relative seconds; store absolute instants ([intuit-oauth]).
    now = datetime.now(UTC)
    expires_in = _seconds(auth.expires_in) or 3600.0
    refresh_in = _seconds(getattr(auth, "x_refresh_token_expires_in", None))
    hard_in = _seconds(getattr(auth, "x_refresh_token_hard_expires_in", None))
    if not auth.access_token or not auth.refresh_token:
        raise PermanentError("QuickBooks sign-in returned no tokens")
    return TokenSet(
        access_token=str(auth.access_token),
        refresh_token=str(auth.refresh_token),
        access_expires_at=now + timedelta(seconds=expires_in),
        refresh_expires_at=now + timedelta(seconds=refresh_in) if refresh_in else None,
        refresh_hard_expires_at=now + timedelta(seconds=hard_in) if hard_in else None,
    )
