"""Fixtures for the QBO emulator conformance tests.

``qbo_emulator`` is a real HTTP server on a free port, shared by the session and reset to a
fresh, empty company before each test. Throttling is off by default so ordinary tests can
make requests back-to-back; throttle tests switch it on through the control API.

Sources:
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from quickbooks import QuickBooks

from qbo_client.emulator import QboEmulator

REDIRECT_URI = "http://localhost:8000/integrations/qbo/callback"


class Control:
    """Tiny client for the emulator's control API (``/__emulator__/…``)."""

    def __init__(self, emulator: QboEmulator) -> None:
        self.base = emulator.control_url
        self.session = requests.Session()

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.base}/{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, payload: Any = None) -> Any:
        response = self.session.post(f"{self.base}/{path}", json=payload or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> Any:
        response = self.session.delete(f"{self.base}/{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def fault(self, **spec: Any) -> None:
        self.post("faults", spec)


def authorize(
    emulator: QboEmulator, auth: AuthClient, *, state: str = "state-123"
) -> dict[str, str]:
    """Follow the authorize redirect like a browser would; returns the callback params."""
    url = auth.get_authorization_url([Scopes.ACCOUNTING], state_token=state)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    callback = urlsplit(response.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == REDIRECT_URI
    return {k: v[0] for k, v in parse_qs(callback.query).items()}


def new_auth_client(emulator: QboEmulator, **kwargs: Any) -> AuthClient:
    return AuthClient(
        emulator.client_id,
        emulator.client_secret,
        REDIRECT_URI,
        environment=emulator.discovery_url,
        **kwargs,
    )


def connect(emulator: QboEmulator) -> AuthClient:
    """The full connect flow through intuit-oauth: authorize, then exchange the code."""
    auth = new_auth_client(emulator)
    callback = authorize(emulator, auth)
    auth.get_bearer_token(callback["code"], realm_id=callback["realmId"])
    return auth


def make_qb(emulator: QboEmulator, auth: AuthClient) -> QuickBooks:
    """python-quickbooks pointed at the emulator as the libraries' READMEs show
    ([python-quickbooks], [intuit-oauth])."""
    qb = QuickBooks(
        auth_client=auth,
        refresh_token=auth.refresh_token,
        company_id=auth.realm_id,
        minorversion=75,
    )
    qb.api_url_v3 = emulator.api_base_url
    return qb


@pytest.fixture(autouse=True)
def _insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests-oauthlib refuses plain http unless told otherwise ([python-quickbooks]).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(scope="session")
def qbo_emulator_server() -> Iterator[QboEmulator]:
    with QboEmulator(seed="empty", throttle_enabled=False) as emulator:
        yield emulator


@pytest.fixture
def qbo_emulator(qbo_emulator_server: QboEmulator) -> QboEmulator:
    """A running emulator with fresh state (empty company, no tokens, no faults)."""
    qbo_emulator_server.reset()
    return qbo_emulator_server


@pytest.fixture
def control(qbo_emulator: QboEmulator) -> Control:
    return Control(qbo_emulator)


@pytest.fixture
def auth_client(qbo_emulator: QboEmulator) -> AuthClient:
    return connect(qbo_emulator)


@pytest.fixture
def qb(qbo_emulator: QboEmulator, auth_client: AuthClient) -> QuickBooks:
    return make_qb(qbo_emulator, auth_client)
