"""Connections that never die quietly (issue #16, item 3): the beat task refreshes a realm's
QuickBooks connection before its refresh token could lapse, through the real OAuth refresh
of the emulator, and a revoked one turns into "Needs reconnect" for every page to show."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from integrations.models import QboConnection, QboConnectionStatus
from integrations.services.qbo_tokens import REFRESH_WHEN_LEFT, qbo_tokens_keep_fresh
from integrations.tasks import keep_qbo_tokens_fresh
from qbo_client.emulator import QboEmulator
from staging.celery import app
from tests.conftest import Personas
from tests.fixtures.qbo import connect_company, control


def test_a_fresh_connection_is_left_alone_and_one_near_expiry_is_refreshed(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    connection = connect_company(personas.company)
    assert qbo_tokens_keep_fresh().refreshed == 0  # a new token has ~100 days left

    soon = timezone.now() + REFRESH_WHEN_LEFT - timedelta(days=1)
    QboConnection.objects.filter(pk=connection.pk).update(refresh_expires_at=soon)
    before = QboConnection.objects.get(pk=connection.pk)

    assert keep_qbo_tokens_fresh.apply().get() == {
        "refreshed": 1,
        "needs_reconnect": 0,
        "failed": 0,
    }

    after = QboConnection.objects.get(pk=connection.pk)
    assert after.access_token != before.access_token
    assert after.refresh_expires_at is not None and after.refresh_expires_at > soon
    assert after.status == QboConnectionStatus.CONNECTED


def test_a_revoked_connection_turns_into_needs_reconnect(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    connection = connect_company(personas.company)
    QboConnection.objects.filter(pk=connection.pk).update(refresh_expires_at=timezone.now())
    control(qbo_emulator, "POST", "tokens/revoke-all")

    kept = qbo_tokens_keep_fresh()

    assert (kept.refreshed, kept.needs_reconnect) == (0, 1)
    assert QboConnection.objects.get(pk=connection.pk).status == (
        QboConnectionStatus.NEEDS_RECONNECT
    )
    page = personas.client_for(personas.admin).get("/portfolio/integration/erp/projects/")
    assert "QuickBooks needs to be reconnected." in page.content.decode()


def test_the_upkeep_runs_on_the_beat_schedule_in_the_maintenance_queue() -> None:
    entry = app.conf.beat_schedule["keep-qbo-tokens-fresh"]
    assert entry["task"] == "integrations.keep_qbo_tokens_fresh"
    assert entry["schedule"] <= 24 * 3600  # many chances before 60 days run out
    assert app.amqp.router.route({}, "integrations.keep_qbo_tokens_fresh")["queue"].name.endswith(
        ".maintenance"
    )
