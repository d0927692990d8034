"""OAuth 2.0 as intuit-oauth 1.2.6 speaks it ([oauth], [intuit-oauth]).

* Discovery document with the six keys intuit-oauth reads.
* Authorize endpoint: redirects at once to ``redirect_uri?code&state&realmId`` or, with the
  consent page enabled, shows an HTML page with an "Authorize" button.
* Token endpoint: HTTP Basic client auth, form body, ``authorization_code`` and
  ``refresh_token`` grants. Never returns an ``id_token`` (intuit-oauth would try to verify
  it against ``jwks_uri``). Refresh tokens rotate on every refresh; the previous one keeps
  working for a grace period (24 h in production, configurable), then ``invalid_grant``.
* Revoke endpoint: JSON body ``{"token": ...}``; revoking either token ends the whole grant.

Sources:
[oauth] Intuit, OAuth 2.0:
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from qbo_client.emulator.wire import HttpRequest, HttpResponse, html_response, json_response

JsonDict = dict[str, Any]

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 8_726_400  # ~101 days, as in Intuit's sample response ([oauth])
HARD_EXPIRY_SECONDS = 5 * 365 * 86_400  # the 5-year cap ([oauth])
AUTH_CODE_SECONDS = 300  # Intuit's code lifetime is not in the reference; 5 minutes here
DEFAULT_REFRESH_GRACE_SECONDS = 86_400  # "earlier ones stop working about 24 h after" ([oauth])
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING_SCOPE,
        "com.intuit.quickbooks.payment",
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "project-management.project",
        "intuit_name",
    }
)

DISCOVERY_PATHS = (
    "/.well-known/openid_configuration",
    "/.well-known/openid_configuration/",
    "/.well-known/openid_sandbox_configuration",
    "/.well-known/openid_sandbox_configuration/",
)
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/v2/oauth2/tokens/revoke"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"
OAUTH_PATHS = frozenset(
    {*DISCOVERY_PATHS, AUTHORIZE_PATH, TOKEN_PATH, REVOKE_PATH, USERINFO_PATH, JWKS_PATH}
)


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    realm_id: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    """One connection (authorisation): every token minted from it shares its fate."""

    grant_id: str
    client_id: str
    realm_id: str
    created_at: float
    hard_expires_at: float
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    grant_id: str
    expires_at: float
    # When a newer refresh token replaced this one; it then works for the grace period.
    superseded_at: float | None = None


@dataclass
class AccessToken:
    token: str
    grant_id: str
    expires_at: float


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> JsonDict:
        # A rotated or bad refresh token gives 400 b'{"error":"invalid_grant"}' ([intuit-oauth]).
        payload: JsonDict = {"error": self.error}
        if self.description:
            payload["error_description"] = self.description
        return payload


class TokenStore:
    """Codes, grants and tokens. Callers hold the emulator's state lock."""

    def __init__(self, refresh_grace_seconds: float = DEFAULT_REFRESH_GRACE_SECONDS) -> None:
        self.refresh_grace_seconds = refresh_grace_seconds
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}

    def clear(self) -> None:
        self.codes.clear()
        self.grants.clear()
        self.refresh_tokens.clear()
        self.access_tokens.clear()

    # --- issuing ---
    def issue_code(
        self, *, client_id: str, redirect_uri: str, realm_id: str, scope: str, now: float
    ) -> str:
        code = "AB11" + secrets.token_urlsafe(24)
        self.codes[code] = AuthCode(
            code, client_id, redirect_uri, realm_id, scope, now + AUTH_CODE_SECONDS
        )
        return code

    def exchange_code(
        self, *, client_id: str, code: str, redirect_uri: str, now: float, hard_expiry: bool
    ) -> JsonDict:
        record = self.codes.get(code)
        if record is None or record.client_id != client_id:
            raise OAuthError(400, "invalid_grant")
        if record.used or record.expires_at <= now:
            # Codes are single-use (RFC 6749 §4.1.2) and short-lived.
            raise OAuthError(400, "invalid_grant")
        if redirect_uri != record.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        record.used = True
        return self.mint(
            client_id=client_id, realm_id=record.realm_id, now=now, hard_expiry=hard_expiry
        )

    def mint(
        self, *, client_id: str, realm_id: str, now: float, hard_expiry: bool = False
    ) -> JsonDict:
        """Start a new grant and issue its first token pair."""
        grant = Grant(secrets.token_hex(8), client_id, realm_id, now, now + HARD_EXPIRY_SECONDS)
        self.grants[grant.grant_id] = grant
        return self._issue_pair(grant, now, hard_expiry=hard_expiry)

    def refresh(self, *, client_id: str, token: str, now: float, hard_expiry: bool) -> JsonDict:
        record = self.refresh_tokens.get(token)
        if record is None:
            raise OAuthError(400, "invalid_grant")
        grant = self.grants[record.grant_id]
        if grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant")
        if grant.revoked or record.expires_at <= now or grant.hard_expires_at <= now:
            raise OAuthError(400, "invalid_grant")
        if record.superseded_at is not None and (
            now >= record.superseded_at + self.refresh_grace_seconds
        ):
            raise OAuthError(400, "invalid_grant")
        # Rotate on every refresh: every older token of the grant that is still current
        # starts its grace period now ([oauth]).
        for other in self.refresh_tokens.values():
            if other.grant_id == grant.grant_id and other.superseded_at is None:
                other.superseded_at = now
        return self._issue_pair(grant, now, hard_expiry=hard_expiry)

    def prune(self, now: float) -> None:
        """Forget tokens that can never work again (answers stay the same: invalid)."""
        grace = self.refresh_grace_seconds
        for token, refresh in list(self.refresh_tokens.items()):
            past_grace = refresh.superseded_at is not None and now >= refresh.superseded_at + grace
            if past_grace or refresh.expires_at <= now:
                del self.refresh_tokens[token]
        for token, access in list(self.access_tokens.items()):
            # Keep recently expired ones a day so the 401 detail can say "Token expired".
            if access.expires_at + 86_400 <= now:
                del self.access_tokens[token]
        for code, record in list(self.codes.items()):
            if record.expires_at <= now:
                del self.codes[code]

    def _issue_pair(self, grant: Grant, now: float, *, hard_expiry: bool) -> JsonDict:
        self.prune(now)
        access = AccessToken(
            "eyJlbmMiOi" + secrets.token_urlsafe(48), grant.grant_id, now + ACCESS_TOKEN_SECONDS
        )
        refresh_lifetime = min(REFRESH_TOKEN_SECONDS, grant.hard_expires_at - now)
        refresh = RefreshToken(
            f"RT1-{secrets.randbelow(900) + 100}-H0-{int(now)}{secrets.token_hex(10)}",
            grant.grant_id,
            now + refresh_lifetime,
        )
        self.access_tokens[access.token] = access
        self.refresh_tokens[refresh.token] = refresh
        body: JsonDict = {
            "token_type": "bearer",
            "access_token": access.token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token": refresh.token,
            "x_refresh_token_expires_in": int(refresh_lifetime),
        }
        if hard_expiry:
            body["x_refresh_token_hard_expires_in"] = int(grant.hard_expires_at - now)
        return body

    # --- revocation ---
    def revoke(self, *, client_id: str, token: str) -> bool:
        """Revoking a refresh or access token ends its grant and every token in it."""
        grant_id: str | None = None
        if token in self.refresh_tokens:
            grant_id = self.refresh_tokens[token].grant_id
        elif token in self.access_tokens:
            grant_id = self.access_tokens[token].grant_id
        if grant_id is None:
            return False
        grant = self.grants[grant_id]
        if grant.client_id != client_id:
            return False
        grant.revoked = True
        return True

    def revoke_all(self, realm_id: str | None = None) -> int:
        count = 0
        for grant in self.grants.values():
            if not grant.revoked and (realm_id is None or grant.realm_id == realm_id):
                grant.revoked = True
                count += 1
        return count

    # --- checking ---
    def check_access(self, token: str | None, now: float) -> tuple[Grant | None, str]:
        """Returns (grant, "") for a live access token, else (None, reason)."""
        if not token:
            return None, "Authorization header missing or not a Bearer token"
        record = self.access_tokens.get(token)
        if record is None:
            return None, "Token invalid"
        grant = self.grants[record.grant_id]
        if grant.revoked:
            return None, "Token revoked"
        if record.expires_at <= now:
            return None, "Token expired"
        return grant, ""

    # --- persistence ---
    def to_json(self) -> JsonDict:
        return {
            "grants": [asdict(g) for g in self.grants.values()],
            "refresh_tokens": [asdict(t) for t in self.refresh_tokens.values()],
            "access_tokens": [asdict(t) for t in self.access_tokens.values()],
        }

    def load(self, data: JsonDict) -> None:
        self.clear()
        for item in data.get("grants", []):
            grant = Grant(**item)
            self.grants[grant.grant_id] = grant
        for item in data.get("refresh_tokens", []):
            refresh = RefreshToken(**item)
            self.refresh_tokens[refresh.token] = refresh
        for item in data.get("access_tokens", []):
            access = AccessToken(**item)
            self.access_tokens[access.token] = access


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def discovery_document(base_url: str) -> JsonDict:
    """The keys intuit-oauth reads ([oauth]), plus a few standard ones for other clients."""
    return {
        "issuer": f"{base_url}/op/v1",
        "authorization_endpoint": f"{base_url}{AUTHORIZE_PATH}",
        "token_endpoint": f"{base_url}{TOKEN_PATH}",
        "userinfo_endpoint": f"{base_url}{USERINFO_PATH}",
        "revocation_endpoint": f"{base_url}{REVOKE_PATH}",
        "jwks_uri": f"{base_url}{JWKS_PATH}",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": sorted(KNOWN_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    }


def redirect_with(redirect_uri: str, params: dict[str, str]) -> HttpResponse:
    parts = urlsplit(redirect_uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return HttpResponse(status=302, headers={"Location": location}, content_type="text/plain")


def error_page(status: int, title: str, message: str) -> HttpResponse:
    return html_response(
        status,
        "<!DOCTYPE html><html><head><title>QBO emulator: "
        f"{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>",
    )


def consent_page(params: dict[str, str], company_name: str, realm_id: str) -> HttpResponse:
    """A stand-in for Intuit's consent screen, with an "Authorize" button."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
    )
    body = (
        "<!DOCTYPE html><html><head><title>Connect to QuickBooks (emulator)</title></head>"
        "<body><main><h1>Connect to QuickBooks</h1>"
        f"<p>The app <strong>{html.escape(params.get('client_id', ''))}</strong> wants to "
        f"access <strong>{html.escape(company_name)}</strong> (realm {html.escape(realm_id)}).</p>"
        f'<form method="post" action="{AUTHORIZE_PATH}">{hidden}'
        '<button type="submit" name="decision" value="allow" id="authorize">Authorize</button> '
        '<button type="submit" name="decision" value="deny" id="cancel">Cancel</button>'
        "</form></main></body></html>"
    )
    return html_response(200, body)


def form_params(request: HttpRequest) -> dict[str, str]:
    try:
        parsed = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parsed.items()}


def json_body(request: HttpRequest) -> JsonDict:
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def oauth_error_response(error: OAuthError) -> HttpResponse:
    return json_response(error.status, error.body())
