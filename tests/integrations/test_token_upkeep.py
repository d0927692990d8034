"""Connections that never die quietly (issue #16, item 3): the beat task refreshes a realm's
QuickBooks connection before its refresh token could lapse, through the real OAuth refresh
of the emulator, and a revoked one turns into "Needs reconnect" for every page to show."""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from integrations.models import QboConnection, QboConnectionStatus
from integrations.services.qbo_tokens import REFRESH_WHEN_LEFT, KeptFresh, qbo_tokens_keep_fresh
from integrations.tasks import keep_qbo_tokens_fresh
from qbo_client import oauth
from qbo_client.emulator import QboEmulator
from qbo_client.errors import TransientError
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
        "warned": 0,
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


DAY = 86_400


def _upkeep_after(emulator: QboEmulator, connection_id: int, days: int) -> KeptFresh:
    """Let ``days`` of QuickBooks time pass, then run the upkeep as if the token were due."""
    control(emulator, "POST", "clock", json={"advance_seconds": days * DAY})
    QboConnection.objects.filter(pk=connection_id).update(
        refresh_expires_at=timezone.now() + timedelta(days=1)
    )
    return qbo_tokens_keep_fresh()


def test_admins_hear_once_fourteen_days_before_the_five_year_limit(
    personas: Personas, qbo_emulator: QboEmulator
) -> None:
    personas.admin.email = "ada@example.com"
    personas.admin.save(update_fields=["email"])
    connection = connect_company(personas.company)
    hard_end = connection.refresh_hard_expires_at
    assert hard_end is not None and hard_end - timezone.now() > timedelta(days=5 * 365 - 1)

    # Refreshed every 90 days of QuickBooks time for 1,800 days: the grant nears its end.
    for _ in range(20):
        kept = _upkeep_after(qbo_emulator, connection.pk, 90)
        assert (kept.refreshed, kept.warned) == (1, 0)
    assert mail.outbox == []
    left = QboConnection.objects.get(pk=connection.pk).ends_at
    assert left is not None and timedelta(days=20) < left - timezone.now() < timedelta(days=30)

    # 12 days later the refreshed connection has 13 days left: one e-mail, then no more.
    kept = _upkeep_after(qbo_emulator, connection.pk, 12)
    assert (kept.refreshed, kept.warned) == (1, 1)
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.subject.startswith("Summit Ridge Builders: reconnect QuickBooks before ")
    assert "QuickBooks ends every connection five years after it was made." in message.body
    assert "/portfolio/integration/erp/qbo/" in message.body
    assert qbo_tokens_keep_fresh().warned == 0
    assert len(mail.outbox) == 1

    page = personas.client_for(personas.admin).get(reverse("portfolio:integration_health"))
    assert "QuickBooks ends this connection in 12 days" in page.content.decode()

    # Reconnecting starts a new five-year grant and clears the mark.
    connect_company(personas.company)
    renewed = QboConnection.objects.get(pk=connection.pk)
    assert renewed.expiry_warned_at is None
    assert renewed.ends_at is not None and renewed.ends_at - timezone.now() > timedelta(days=90)


def test_a_connection_whose_refreshes_keep_failing_warns_before_it_lapses(
    personas: Personas, qbo_emulator: QboEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    personas.admin.email = "ada@example.com"
    personas.admin.save(update_fields=["email"])
    connection = connect_company(personas.company)
    ends = timezone.now() + timedelta(days=10)
    QboConnection.objects.filter(pk=connection.pk).update(refresh_expires_at=ends)

    def unavailable(*args: object, **kwargs: object) -> NoReturn:
        raise TransientError("QuickBooks did not answer; will retry")

    monkeypatch.setattr(oauth, "refresh_tokens", unavailable)

    kept = qbo_tokens_keep_fresh()

    assert (kept.refreshed, kept.failed, kept.warned) == (0, 1, 1)
    [message] = mail.outbox
    assert "has not accepted a refresh of the connection lately" in message.body
