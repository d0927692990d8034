"""The daily digest e-mail: to each company's admins, what failed or needs a person, by
kind, with the links that fix it. Once per company and day, whatever the beat does.

Sent with Django's e-mail framework (https://docs.djangoproject.com/en/5.2/topics/email/):
files in var/mail/ on the embedded default, SMTP when the settings say so.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from integrations.models import Company
from integrations.services.alerts import admin_emails
from staging.models import ChangeEvent, DigestSent, EventKind
from staging.selectors.health import FailureClass, failure_classes


def digests_send(*, day: date | None = None) -> int:
    """Each company's digest for ``day`` (today); returns how many were sent."""
    day = day or timezone.localdate()
    return sum(digest_send(company=company, day=day) for company in Company.objects.all())


def digest_send(*, company: Company, day: date) -> bool:
    """The company's digest for ``day``, at most once: the day's row is claimed first (a
    unique constraint), and a send that fails rolls the claim back for the next beat."""
    recipients = admin_emails(company=company, wanting="email_digest")
    if not recipients:
        return False
    previous = DigestSent.objects.filter(company=company, day__lt=day).order_by("-day").first()
    since = previous.sent_at if previous else timezone.now() - timedelta(days=1)
    try:
        with transaction.atomic():
            DigestSent.objects.create(company=company, day=day, recipients=len(recipients))
            classes = failure_classes(company=company)
            new = ChangeEvent.objects.filter(
                company=company, kind__in=(EventKind.FAILED, EventKind.NEEDS_ACTION), at__gte=since
            ).count()
            if not classes:
                return False  # nothing needs anyone: no e-mail, and the day is decided
            send_mail(
                subject=_subject(company, classes),
                message=_body(company, classes, new),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
    except IntegrityError:
        return False  # this day's digest was already decided
    return True


def _subject(company: Company, classes: list[FailureClass]) -> str:
    total = sum(c.count for c in classes)
    return f"{company.name}: {total:,} project{'s' if total != 1 else ''} need attention"


def _body(company: Company, classes: list[FailureClass], new: int) -> str:
    health = settings.SITE_URL + reverse("portfolio:integration_health")
    projects = settings.SITE_URL + reverse("portfolio:projects")
    lines = [
        f"Daily digest for {company.name}.",
        "",
        f"{new:,} project{'s' if new != 1 else ''} failed or came to need a person since the "
        "last digest. Open now, by kind:",
        "",
    ]
    for failure in classes:
        state = "Failed" if failure.retryable else "Needs Action"
        lines.append(f"* {failure.name} ({state}): {failure.count:,}")
        if failure.sample:
            lines.append(f"  For example: {failure.sample[:200]}")
        lines.append(f"  What to do: {failure.advice}")
        lines.append(f"  {projects}?{failure.projects_query}")
    lines += [
        "",
        f"The integration's health page: {health}",
        "",
        "You receive this as an admin of the company; you can turn it off on the health page.",
    ]
    return "\n".join(lines)
