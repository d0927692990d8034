"""Plain settings for the QBO client: the Django side builds one from its settings.

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
[oauth-faq] Intuit, OAuth FAQ:
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

# Intuit's Accounting API bases ([customer]).
PRODUCTION_API_BASE = "https://quickbooks.api.intuit.com/v3"
SANDBOX_API_BASE = "https://sandbox-quickbooks.api.intuit.com/v3"


@dataclass(frozen=True)
class QboConfig:
    """Where QBO lives and how patiently to talk to it.

    ``environment`` is ``"sandbox"``, ``"production"`` or a discovery-document URL (the
    emulator's ``/.well-known/openid_configuration``; intuit-oauth accepts any other string
    as the discovery URL, [intuit-oauth]). ``api_base_url`` is the Accounting API base up to
    ``/v3``; ``None`` picks Intuit's base for the environment.
    """

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    environment: str
    api_base_url: str | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 4
    minorversion: int = 75
    # Exponential backoff between transient retries: base * 2**attempt, capped, with jitter.
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    # Refresh proactively when the access token has less than this left ([oauth-faq]).
    refresh_margin_seconds: float = 300.0
    # False refuses requests to loopback, private, link-local and other non-public addresses
    # (discovery, token endpoint and Accounting API alike) before any connect: production.
    # True lets the local emulator on 127.0.0.1 work: development and tests.
    allow_private_hosts: bool = True

    @property
    def is_sandbox(self) -> bool:
        return self.environment.lower() in {"sandbox", "sand"}

    @property
    def resolved_api_base_url(self) -> str:
        if self.api_base_url:
            return self.api_base_url.rstrip("/")
        return SANDBOX_API_BASE if self.is_sandbox else PRODUCTION_API_BASE


def is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def allow_insecure_loopback(*urls: str) -> None:
    """Let oauthlib send tokens over plain http, but only for a loopback emulator.

    requests-oauthlib's ``OAuth2Session`` (python-quickbooks' ``qb.session``) raises
    ``InsecureTransportError`` for ``http://`` unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set
    ([python-quickbooks]). It reads the variable on every request, so it is process-wide; we set
    it only when every URL involved is http on a loopback address.
    """
    http_urls = [u for u in urls if urlsplit(u).scheme == "http"]
    if http_urls and all(is_loopback_http(u) for u in http_urls):
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
