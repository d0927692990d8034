"""Alerts by e-mail, at once: a company's admins hear that QuickBooks needs reconnecting,
or that the scheduled Linarc pull started failing, the moment it happens, not when they
next open the Projects tab. Once per change of state:
a connection already marked sends nothing more. Admins can turn them off per company
(``Membership.email_alerts``; the health page).

Django's e-mail framework: https://docs.djangoproject.com/en/5.2/topics/email/
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from integrations.models import Company, Membership, QboConnection, Role


def reconnect_alert_send(*, connection_id: int) -> int:
    """E-mail the company's admins that QuickBooks needs reconnecting; returns how many."""
    connection = QboConnection.objects.select_related("company").get(pk=connection_id)
    company = connection.company
    panel = settings.SITE_URL + reverse("portfolio:qbo_connection")
    return _alert_send(
        company,
        f"{company.name}: QuickBooks needs reconnecting",
        f"QuickBooks stopped accepting {company.name}'s connection: "
        f"{connection.last_error or 'it was revoked or has expired.'}\n\n"
        "Nothing is sent to QuickBooks until an admin reconnects it; imports and "
        "mappings go on, and the projects queued meanwhile wait.\n\n"
        f"Reconnect here: {panel}\n",
    )


def expiry_alert_send(*, connection_id: int, ends_at: datetime) -> int:
    """E-mail the company's admins that the QuickBooks connection lapses soon and only a
    reconnect keeps it; returns how many."""
    connection = QboConnection.objects.select_related("company").get(pk=connection_id)
    company = connection.company
    panel = settings.SITE_URL + reverse("portfolio:qbo_connection")
    hard_end = connection.refresh_hard_expires_at
    # A refresh token issued near the hard end lasts only until it: count that as the end.
    hard = hard_end is not None and hard_end - ends_at < timedelta(days=1)
    why = (
        "QuickBooks ends every connection five years after it was made."
        if hard
        else "QuickBooks has not accepted a refresh of the connection lately."
    )
    return _alert_send(
        company,
        f"{company.name}: reconnect QuickBooks before {ends_at:%d %B %Y}",
        f"{company.name}'s QuickBooks connection ends on {ends_at:%d %B %Y at %H:%M} UTC. "
        f"{why}\n\n"
        "After that nothing is sent to QuickBooks until an admin reconnects it. Reconnecting "
        "now keeps every mapping and takes a minute: sign in to the same QuickBooks company.\n\n"
        f"Reconnect here: {panel}\n",
    )


def pull_failing_alert_send(*, company_id: int, error: str) -> int:
    """E-mail the company's admins that the scheduled Linarc pull has started failing (the
    first failure after a success: not every failing run); returns how many."""
    company = Company.objects.get(pk=company_id)
    rules = settings.SITE_URL + reverse("portfolio:sync_rules")
    return _alert_send(
        company,
        f"{company.name}: the scheduled Linarc pull is failing",
        f"The scheduled pull of {company.name}'s Linarc projects failed: {error}\n\n"
        "It is tried again at its next time; projects already staged are not affected. "
        "You hear from us again only after it has worked once more and then fails.\n\n"
        f"The Linarc connection and the schedule: {rules}\n",
    )


def _alert_send(company: Company, subject: str, message: str) -> int:
    recipients = admin_emails(company=company, wanting="email_alerts")
    if recipients:
        send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, recipients)
    return len(recipients)


def admin_emails(*, company: Company, wanting: str) -> list[str]:
    """The addresses of the company's admins who want ``wanting`` (``email_digest`` or
    ``email_alerts``, their Membership's choice) and have one."""
    memberships = Membership.objects.filter(
        company=company, role=Role.ADMIN, **{wanting: True}
    ).select_related("user")
    return sorted({m.user.email for m in memberships if m.user.email})


def membership_notifications_set(*, membership: Membership, digest: bool, alerts: bool) -> None:
    """What this person receives by e-mail for this company."""
    membership.email_digest, membership.email_alerts = digest, alerts
    membership.save(update_fields=["email_digest", "email_alerts"])
