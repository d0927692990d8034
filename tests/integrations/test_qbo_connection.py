from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from integrations.models import QboConnection, QboConnectionStatus
from integrations.services.qbo_connection import ConnectError, qbo_connect_finish, qbo_connect_start
from qbo_client.emulator import QboEmulator
from staging.models import Run, RunKind, RunState
from tests.conftest import Personas
from tests.fixtures.qbo import connect_company, control, refresh_customers


def test_state_is_single_use(personas: Personas, qbo_emulator: QboEmulator) -> None:
    session: dict[str, Any] = {}
    qbo_connect_start(company=personas.company, session=session)
    state = session["qbo_oauth_state"]["state"]
    with pytest.raises(ConnectError):
        qbo_connect_finish(
            company=personas.company,
            actor=None,
            session=session,
            state="wrong",
            code="x",
            realm_id="1",
        )
    # The failed attempt consumed it: the right state no longer works either.
    with pytest.raises(ConnectError, match="already used"):
        qbo_connect_finish(
            company=personas.company,
            actor=None,
            session=session,
            state=state,
            code="x",
            realm_id="1",
        )


def test_state_is_bound_to_the_company(personas: Personas, qbo_emulator: QboEmulator) -> None:
    session: dict[str, Any] = {}
    qbo_connect_start(company=personas.other_company, session=session)
    state = session["qbo_oauth_state"]["state"]
    with pytest.raises(ConnectError):
        qbo_connect_finish(
            company=personas.company,
            actor=None,
            session=session,
            state=state,
            code="x",
            realm_id="1",
        )


def test_tokens_are_encrypted_at_rest(personas: Personas, qbo_emulator: QboEmulator) -> None:
    from django.db import connection as db

    qbo = connect_company(personas.company)
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM integrations_qboconnection WHERE id = %s",
            [qbo.pk],
        )
        stored_access, stored_refresh = cursor.fetchone()
    assert qbo.access_token and qbo.access_token not in stored_access
    assert qbo.refresh_token and qbo.refresh_token not in stored_refresh


def test_reconnect_keeps_mappings_and_refuses_another_realm(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    connect_company(personas.company)
    refresh_customers(personas.company)
    control(qbo_emulator, "POST", "tokens/revoke-all")
    QboConnection.objects.filter(company=personas.company).update(
        status=QboConnectionStatus.NEEDS_RECONNECT
    )
    connection = connect_company(personas.company)  # reconnect, same realm
    assert connection.status == QboConnectionStatus.CONNECTED
    session: dict[str, Any] = {}
    qbo_connect_start(company=personas.company, session=session)
    with pytest.raises(ConnectError, match="same QuickBooks company"):
        qbo_connect_finish(
            company=personas.company,
            actor=None,
            session=session,
            state=session["qbo_oauth_state"]["state"],
            code="x",
            realm_id="999",
        )


def test_refresh_customers_view_with_and_without_htmx(
    personas: Personas, qbo_emulator: QboEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    connect_company(personas.company)
    client = personas.client_for(personas.admin)
    url = reverse("portfolio:qbo_refresh_customers")
    with django_capture_on_commit_callbacks() as callbacks:
        plain = client.post(url)
        partial = client.post(url, headers={"HX-Request": "true"})
    assert plain.status_code == 302
    assert partial.status_code == 200
    assert b'id="qbo-customers"' in partial.content and b"<html" not in partial.content
    assert len(callbacks) == 2


def test_refresh_status_stops_the_poll_when_done_and_is_the_panel_as_a_page(
    personas: Personas,
) -> None:
    run = Run.objects.create(
        company=personas.company, kind=RunKind.REFRESH_CUSTOMERS, state=RunState.RUNNING
    )
    client = personas.client_for(personas.admin)
    url = reverse("portfolio:qbo_refresh_status", args=[run.pk])

    running = client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    assert b'hx-trigger="every 1s"' in running.content and b"<html" not in running.content

    Run.objects.filter(pk=run.pk).update(state=RunState.DONE)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling; the section is still swapped in
    assert b'id="qbo-customers"' in done.content and b"every 1s" not in done.content

    page = client.get(url)
    assert page.status_code == 200 and b"<html" in page.content
    for response in (running, done, page):
        assert "HX-Request" in response["Vary"]
