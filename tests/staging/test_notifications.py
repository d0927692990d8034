"""E-mails (issue #16, item 2): the admins' daily digest (content, once per day, opt-out)
and the alert when QuickBooks needs reconnecting (once per change)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core import mail
from django.urls import reverse

from integrations.models import Membership, QboConnection
from integrations.services.qbo import connection_mark_needs_reconnect
from staging.models import DigestSent, SyncStatus
from staging.services.digest import digests_send
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory

TODAY = date(2026, 12, 6)


def _admin_mail(personas: Personas, address: str = "ada@example.com") -> None:
    personas.admin.email = address
    personas.admin.save(update_fields=["email"])


def _failed(personas: Personas, n: int = 2) -> None:
    customer = QboCustomerFactory(company=personas.company)
    for _ in range(n):
        StagedProjectFactory(
            company=personas.company,
            qbo_customer=customer,
            status=SyncStatus.FAILED,
            failure_code="6190",
            status_reason="Subscription period has ended",
        )


def test_the_digest_reaches_the_admins_once_a_day_with_what_to_do(personas: Personas) -> None:
    _admin_mail(personas)
    personas.operator.email = "otto@example.com"
    personas.operator.save(update_fields=["email"])
    _failed(personas)

    assert digests_send(day=TODAY) == 1
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]  # admins only
    assert message.subject == "Summit Ridge Builders: 2 projects need attention"
    assert "* Refused by QuickBooks (Failed): 2" in message.body
    assert "For example: Subscription period has ended" in message.body
    # The kind's own rows: the Failed chip narrowed to its code.
    assert "/portfolio/integration/erp/projects/?status=failed&code=6190\n" in message.body
    assert "/portfolio/integration/erp/health/" in message.body

    assert digests_send(day=TODAY) == 0  # the beat delivered twice: nothing more
    assert len(mail.outbox) == 1
    assert digests_send(day=TODAY + timedelta(days=1)) == 1
    assert len(mail.outbox) == 2


def test_no_digest_when_nothing_needs_anyone_or_nobody_wants_it(personas: Personas) -> None:
    _admin_mail(personas)
    assert digests_send(day=TODAY) == 0
    assert DigestSent.objects.filter(company=personas.company, day=TODAY).exists()  # decided

    _failed(personas)
    Membership.objects.filter(user=personas.admin).update(email_digest=False)
    assert digests_send(day=TODAY + timedelta(days=1)) == 0
    assert mail.outbox == []


def test_reconnect_needed_alerts_the_admins_once(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    _admin_mail(personas)
    connection = QboConnection.objects.create(
        company=personas.company, realm_id="9130", status="connected"
    )
    with django_capture_on_commit_callbacks(execute=True):
        connection_mark_needs_reconnect(connection_id=connection.pk, reason="invalid_grant")
    with django_capture_on_commit_callbacks(execute=True):
        connection_mark_needs_reconnect(connection_id=connection.pk, reason="invalid_grant")

    [message] = mail.outbox
    assert message.subject == "Summit Ridge Builders: QuickBooks needs reconnecting"
    assert "invalid_grant" in message.body and "/portfolio/integration/erp/qbo/" in message.body


def test_an_admin_turns_the_emails_off_on_the_health_page(personas: Personas) -> None:
    _admin_mail(personas)
    client = personas.client_for(personas.admin)
    page = client.get(reverse("portfolio:integration_health")).content.decode()
    assert 'name="email_digest" value="1" checked' in page
    client.post(reverse("portfolio:integration_health_notifications"), {"email_alerts": "1"})
    membership = Membership.objects.get(user=personas.admin, company=personas.company)
    assert (membership.email_digest, membership.email_alerts) == (False, True)
    viewer = personas.client_for(personas.viewer).get(reverse("portfolio:integration_health"))
    assert "E-mails to you" not in viewer.content.decode()


def test_a_failing_scheduled_pull_alerts_once_per_streak(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    from staging.imports.runs import Tally, import_run_finish
    from staging.models import Run, RunKind, RunState

    _admin_mail(personas)

    def pull(error: str) -> None:
        run = Run.objects.create(
            company=personas.company, kind=RunKind.SCHEDULED_PULL, state=RunState.RUNNING
        )
        with django_capture_on_commit_callbacks(execute=True):
            import_run_finish(run, Tally(), error=error)

    pull("Linarc error: 503")
    pull("Linarc error: 503")  # still failing: no second e-mail
    assert [m.subject for m in mail.outbox] == [
        "Summit Ridge Builders: the scheduled Linarc pull is failing"
    ]
    assert "Linarc error: 503" in mail.outbox[0].body
    assert (
        "/portfolio/integration/erp/rules/" in mail.outbox[0].body or "rules" in mail.outbox[0].body
    )
    pull("")  # it works again
    pull("Linarc error: the API key was refused")
    assert len(mail.outbox) == 2 and "API key was refused" in mail.outbox[1].body
