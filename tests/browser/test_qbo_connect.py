from __future__ import annotations

from typing import Any

import pytest

from integrations.models import QboConnection, QboConnectionStatus, QboCustomer
from qbo_client.emulator import QboEmulator
from tests.conftest import Personas
from tests.factories import PASSWORD
from tests.fixtures.browser import login, screenshot
from tests.fixtures.qbo import control

pytestmark = pytest.mark.browser


def test_connect_to_quickbooks_end_to_end(
    page: Any, live_server: Any, personas: Personas, qbo_emulator: QboEmulator, settings: Any
) -> None:
    settings.QBO_REDIRECT_URI = f"{live_server.url}/portfolio/integration/erp/qbo/callback/"
    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.goto(f"{live_server.url}/portfolio/integration/erp/qbo/")
    assert page.get_by_text("Not connected").is_visible()
    page.get_by_role("button", name="Connect to QuickBooks").click()
    # The emulator's authorize endpoint sends the browser straight back to our callback.
    page.wait_for_url("**/portfolio/integration/erp/qbo/")
    assert page.get_by_text("Connected", exact=True).first.is_visible()
    connection = QboConnection.objects.get(company=personas.company)
    assert connection.status == QboConnectionStatus.CONNECTED
    assert connection.connected_by == personas.admin
    realm = control(qbo_emulator, "GET", "state")["realm_id"]
    assert page.locator("dd", has_text=realm).is_visible()
    screenshot(page, "qbo-connection-connected")

    # Disconnect revokes; the panel offers to connect again.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disconnect").click()
    page.wait_for_selector("text=Not connected")
    connection.refresh_from_db()
    assert connection.status == QboConnectionStatus.DISCONNECTED
    assert connection.refresh_token == ""


def test_callback_with_a_forged_state_is_refused(
    page: Any, live_server: Any, personas: Personas, qbo_emulator: QboEmulator
) -> None:
    login(page, live_server.url, personas.admin.username, PASSWORD)
    page.goto(
        f"{live_server.url}/portfolio/integration/erp/qbo/callback/?code=abc&state=forged&realmId=1"
    )
    assert page.get_by_text("expired or was already used").is_visible()
    assert not QboConnection.objects.filter(
        company=personas.company, status=QboConnectionStatus.CONNECTED
    ).exists()
    assert not QboCustomer.objects.exists()
