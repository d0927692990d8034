"""OAuth 2.0 conformance, driven through intuit-oauth ([oauth], [intuit-oauth]).

Sources:
[oauth] Intuit, OAuth 2.0:
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException
from quickbooks.objects.customer import Customer

from qbo_client.emulator import QboEmulator
from tests.qbo_client.conftest import (
    REDIRECT_URI,
    Control,
    authorize,
    connect,
    make_qb,
    new_auth_client,
)

HUNDRED_DAYS = 100 * 86_400


def test_discovery_document_has_the_six_keys_intuit_oauth_reads(qbo_emulator: QboEmulator) -> None:
    response = requests.get(qbo_emulator.discovery_url, timeout=5)
    document = response.json()
    base = qbo_emulator.base_url
    assert document["authorization_endpoint"] == f"{base}/connect/oauth2"
    assert document["token_endpoint"] == f"{base}/oauth2/v1/tokens/bearer"
    assert document["revocation_endpoint"] == f"{base}/v2/oauth2/tokens/revoke"
    assert document["issuer"] == f"{base}/op/v1"
    assert document["jwks_uri"] == f"{base}/op/v1/jwks"
    assert document["userinfo_endpoint"] == f"{base}/v1/openid_connect/userinfo"
    assert response.headers["intuit_tid"].startswith("1-")

    auth = new_auth_client(qbo_emulator)
    assert auth.token_endpoint == document["token_endpoint"]
    assert auth.revoke_endpoint == document["revocation_endpoint"]


def test_authorize_redirects_at_once_with_code_state_and_realm(qbo_emulator: QboEmulator) -> None:
    auth = new_auth_client(qbo_emulator)
    callback = authorize(qbo_emulator, auth, state="csrf-42")
    assert callback["state"] == "csrf-42"
    assert callback["realmId"] == qbo_emulator.realm_id
    assert callback["code"]


def test_bearer_token_response_matches_the_reference(qbo_emulator: QboEmulator) -> None:
    auth = new_auth_client(qbo_emulator)
    callback = authorize(qbo_emulator, auth)
    # Raw call to see the exact body (intuit-oauth drops token_type).
    response = requests.post(
        auth.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": callback["code"],
            "redirect_uri": REDIRECT_URI,
        },
        auth=(qbo_emulator.client_id, qbo_emulator.client_secret),
        headers={"Accept": "application/json"},
        timeout=5,
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {
        "token_type",
        "access_token",
        "expires_in",
        "refresh_token",
        "x_refresh_token_expires_in",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] > HUNDRED_DAYS
    assert "id_token" not in body
    assert response.headers["intuit_tid"]


def test_get_bearer_token_through_intuit_oauth(qbo_emulator: QboEmulator) -> None:
    auth = connect(qbo_emulator)
    assert auth.access_token and auth.refresh_token
    assert auth.expires_in == 3600
    assert auth.realm_id == qbo_emulator.realm_id
    assert auth.id_token is None


def test_authorization_code_is_single_use(qbo_emulator: QboEmulator) -> None:
    auth = new_auth_client(qbo_emulator)
    code = authorize(qbo_emulator, auth)["code"]
    auth.get_bearer_token(code)
    with pytest.raises(AuthClientError) as excinfo:
        auth.get_bearer_token(code)
    assert excinfo.value.status_code == 400
    assert json.loads(excinfo.value.content) == {"error": "invalid_grant"}
    assert excinfo.value.intuit_tid


def test_wrong_client_secret_is_invalid_client(qbo_emulator: QboEmulator) -> None:
    auth = AuthClient(
        qbo_emulator.client_id,
        "not-the-secret",
        REDIRECT_URI,
        environment=qbo_emulator.discovery_url,
    )
    code = authorize(qbo_emulator, auth)["code"]
    with pytest.raises(AuthClientError) as excinfo:
        auth.get_bearer_token(code)
    assert excinfo.value.status_code == 401
    assert json.loads(excinfo.value.content) == {"error": "invalid_client"}


def test_refresh_rotates_and_old_token_works_only_during_grace(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    auth = connect(qbo_emulator)
    first_refresh, first_access = auth.refresh_token, auth.access_token
    auth.refresh()
    second_refresh = auth.refresh_token
    assert second_refresh != first_refresh
    assert auth.access_token != first_access

    # Within the grace period the previous token still works (and rotates again).
    auth.refresh(refresh_token=first_refresh)
    third_refresh = auth.refresh_token
    assert third_refresh not in (first_refresh, second_refresh)

    control.post("clock", {"advance_seconds": 86_400 + 1})
    for stale in (first_refresh, second_refresh):
        with pytest.raises(AuthClientError) as excinfo:
            auth.refresh(refresh_token=stale)
        assert excinfo.value.status_code == 400
        assert json.loads(excinfo.value.content) == {"error": "invalid_grant"}
    auth.refresh(refresh_token=third_refresh)  # the newest one still works


def test_refresh_grace_period_is_configurable() -> None:
    with QboEmulator(refresh_grace_seconds=0, throttle_enabled=False) as emulator:
        auth = connect(emulator)
        old = auth.refresh_token
        auth.refresh()
        with pytest.raises(AuthClientError):
            auth.refresh(refresh_token=old)


def test_refresh_token_expires_after_its_lifetime(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    auth = connect(qbo_emulator)
    control.post("clock", {"advance_seconds": 102 * 86_400})
    with pytest.raises(AuthClientError) as excinfo:
        auth.refresh()
    assert json.loads(excinfo.value.content) == {"error": "invalid_grant"}


def test_hard_expiry_is_returned_when_asked(qbo_emulator: QboEmulator) -> None:
    auth = connect(qbo_emulator)
    auth.headers["x-include-refresh-token-hard-expires-in"] = "true"
    auth.refresh()
    assert auth.x_refresh_token_hard_expires_in > 4 * 365 * 86_400


def test_expired_access_token_gets_the_gateway_401_fault(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    auth = connect(qbo_emulator)
    qb = make_qb(qbo_emulator, auth)
    assert Customer.all(qb=qb) == []
    control.post("clock", {"advance_seconds": 3600})
    with pytest.raises(AuthorizationException) as excinfo:
        Customer.all(qb=qb)
    assert excinfo.value.error_code == 401
    body = json.loads(excinfo.value.detail)
    assert set(body) == {
        "warnings",
        "intuitObject",
        "fault",
        "report",
        "queryResponse",
        "batchItemResponse",
        "attachableResponse",
        "syncErrorResponse",
        "requestId",
        "time",
        "status",
        "cdcresponse",
    }
    assert body["fault"]["type"] == "AUTHENTICATION"
    error = body["fault"]["error"][0]
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert error["code"] == "3200"
    assert error["element"] is None
    assert isinstance(body["time"], int)

    # Refresh once, point the session at the new token, retry once ([python-quickbooks]).
    auth.refresh()
    qb.session.access_token = auth.access_token
    assert Customer.all(qb=qb) == []


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
def test_missing_or_unknown_bearer_is_401_3200(
    qbo_emulator: QboEmulator, header: str | None
) -> None:
    headers = {"Accept": "application/json"}
    if header:
        headers["Authorization"] = header
    response = requests.get(
        f"{qbo_emulator.api_base_url}/company/{qbo_emulator.realm_id}/customer/1",
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["fault"]["error"][0]["code"] == "3200"
    assert response.headers["intuit_tid"]


def test_token_for_another_realm_is_403_3100(qbo_emulator: QboEmulator, control: Control) -> None:
    tokens = control.post("tokens")
    response = requests.get(
        f"{qbo_emulator.api_base_url}/company/1234/customer/1",
        headers={"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"},
        timeout=5,
    )
    assert response.status_code == 403
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3100"
    assert error["message"] == "message=AuthorizationFailed; errorCode=003100; statusCode=403"


def test_revoking_the_refresh_token_kills_its_access_tokens(qbo_emulator: QboEmulator) -> None:
    auth = connect(qbo_emulator)
    qb = make_qb(qbo_emulator, auth)
    refresh_token = auth.refresh_token
    assert auth.revoke(token=refresh_token) is True
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)
    with pytest.raises(AuthClientError) as excinfo:
        auth.refresh(refresh_token=refresh_token)
    assert json.loads(excinfo.value.content) == {"error": "invalid_grant"}


def test_revoke_all_simulates_a_revoked_connection(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    auth = connect(qbo_emulator)
    assert control.post("tokens/revoke-all")["revoked_grants"] == 1
    with pytest.raises(AuthClientError) as excinfo:
        auth.refresh()
    assert excinfo.value.status_code == 400


def test_lost_refresh_response_is_recovered_within_the_grace_period(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    auth = connect(qbo_emulator)
    old = auth.refresh_token
    control.fault(kind="lost_response", path="/oauth2/v1/tokens/bearer", operation="refresh_token")
    with pytest.raises(requests.ConnectionError):
        auth.refresh()
    assert auth.refresh_token == old  # the client never saw the rotated token
    auth.refresh()  # the old token is in its grace period
    assert auth.refresh_token != old


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values["value"]
        elif tag == "button":
            self.buttons[values["id"]] = values["value"]


def _consent_form(emulator: QboEmulator, auth: AuthClient) -> _FormParser:
    url = auth.get_authorization_url([Scopes.ACCOUNTING], state_token="s-1")
    page = requests.get(url, allow_redirects=False, timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert ">Authorize</button>" in page.text
    parser = _FormParser()
    parser.feed(page.text)
    return parser


def test_consent_page_authorize_button_completes_the_flow(
    qbo_emulator: QboEmulator, control: Control
) -> None:
    control.post("consent", {"enabled": True})
    auth = new_auth_client(qbo_emulator)
    form = _consent_form(qbo_emulator, auth)
    answer = requests.post(
        f"{qbo_emulator.base_url}{form.action}",
        data={**form.fields, "decision": form.buttons["authorize"]},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["s-1"]
    auth.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])
    assert auth.access_token


def test_consent_page_cancel_returns_access_denied() -> None:
    with QboEmulator(consent_page=True, throttle_enabled=False) as emulator:
        auth = new_auth_client(emulator)
        form = _consent_form(emulator, auth)
        answer = requests.post(
            f"{emulator.base_url}{form.action}",
            data={**form.fields, "decision": form.buttons["cancel"]},
            allow_redirects=False,
            timeout=5,
        )
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query == {"error": ["access_denied"], "state": ["s-1"]}


def test_authorize_rejects_unknown_client_and_bad_scope(qbo_emulator: QboEmulator) -> None:
    auth = AuthClient("someone-else", "x", REDIRECT_URI, environment=qbo_emulator.discovery_url)
    url = auth.get_authorization_url([Scopes.ACCOUNTING])
    assert requests.get(url, allow_redirects=False, timeout=5).status_code == 400

    bad_scope = f"{qbo_emulator.base_url}/connect/oauth2?" + (
        f"client_id={qbo_emulator.client_id}&response_type=code&scope=nope"
        f"&redirect_uri={REDIRECT_URI}&state=z"
    )
    answer = requests.get(bad_scope, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["invalid_scope"]
