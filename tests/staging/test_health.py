"""The integration health page (issue #16, item 1): healthy, reconnect needed, failures by
kind with one-click retry; bounded reads."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from integrations.models import LinarcConnection, QboConnection, SyncRules
from integrations.services.rules import sync_rules_schedule
from staging.models import Run, RunKind, RunState, StagedProject, SyncStatus, WorkerHeartbeat
from staging.selectors import health
from staging.selectors.health import failure_classes, integration_health
from tests.conftest import Personas
from tests.factories import QboCustomerFactory, StagedProjectFactory

URL = "/portfolio/integration/erp/health/"


def _connect(personas: Personas, *, status: str = "connected", days: int = 90) -> QboConnection:
    return QboConnection.objects.create(
        company=personas.company,
        realm_id="9130",
        status=status,
        refresh_expires_at=timezone.now() + timedelta(days=days, hours=1),
        last_error="" if status == "connected" else "The refresh token was revoked.",
    )


def _failures(personas: Personas) -> dict[str, list[StagedProject]]:
    customer = QboCustomerFactory(company=personas.company)

    def rows(n: int, **fields: Any) -> list[StagedProject]:
        return [
            StagedProjectFactory(company=personas.company, qbo_customer=customer, **fields)
            for _ in range(n)
        ]

    return {
        "unavailable": rows(
            3,
            status=SyncStatus.FAILED,
            status_reason="QuickBooks did not answer after several tries (503).",
        ),
        "refused": rows(
            2, status=SyncStatus.FAILED, failure_code="6190", status_reason="Subscription ended"
        ),
        "duplicate": rows(
            1,
            status=SyncStatus.NEEDS_ACTION,
            failure_code="6240",
            status_reason='The name "X" is already used in QuickBooks by another record.',
        ),
        "synced": rows(4, status=SyncStatus.SYNCED),
    }


def test_a_healthy_integration_says_so(personas: Personas) -> None:
    _connect(personas)
    LinarcConnection.objects.create(company=personas.company, base_url="https://api.linarc.test")
    WorkerHeartbeat.objects.create(hostname="w1", seen_at=timezone.now())
    page = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Everything is working" in page
    assert "Connected</strong> to company 9130" in page
    assert "expires in 90 days" in page


def test_reconnect_needed_and_an_expiring_token_are_called_out(personas: Personas) -> None:
    _connect(personas, status="needs_reconnect")
    admin = personas.client_for(personas.admin).get(URL).content.decode()
    assert "Some things need attention" in admin
    assert "Needs reconnecting.</strong> The refresh token was revoked." in admin
    assert admin.count("Reconnect QuickBooks") == 1  # the box's button; no page-wide banner
    assert 'class="qbo-banner"' not in admin
    viewer = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Reconnect QuickBooks" not in viewer
    assert "Ask an admin of your company to reconnect it." in viewer

    QboConnection.objects.filter(company=personas.company).update(
        status="connected", refresh_expires_at=timezone.now() + timedelta(days=9, hours=1)
    )
    page = personas.client_for(personas.admin).get(URL).content.decode()
    assert '<p class="warn">The connection expires in 9 days' in page


def test_failures_are_grouped_by_kind_with_advice(personas: Personas) -> None:
    _failures(personas)
    classes = {c.name: c for c in failure_classes(company=personas.company)}
    assert {name: c.count for name, c in classes.items()} == {
        "QuickBooks unavailable": 3,
        "Refused by QuickBooks": 2,
        "Duplicate name in QuickBooks": 1,
    }
    assert classes["Refused by QuickBooks"].codes == ("6190",)
    assert classes["Duplicate name in QuickBooks"].retryable is False
    page = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Link the existing record with Manual Mapping" in page
    assert "Retry these" not in page  # a viewer reads only


def test_show_opens_the_projects_tab_filtered_to_that_kind(personas: Personas) -> None:
    rows = _failures(personas)
    client = personas.client_for(personas.operator)
    page = client.get(URL).content.decode()

    projects = reverse("portfolio:projects")
    links = {
        "unavailable": ("failed&amp;code=none", "Show the 3 projects: QuickBooks unavailable"),
        "refused": ("failed&amp;code=6190", "Show the 2 projects: Refused by QuickBooks"),
        "duplicate": ("needs_action&amp;code=6240", "Show the 1 project: Duplicate name in"),
    }
    for kind, (query, name) in links.items():
        href = f'href="{projects}?status={query}"'
        assert href in page, kind
        # The link's accessible name says which projects (the rest is visually hidden).
        link = page.split(href, 1)[1].split("</a>", 1)[0]
        assert re.sub(r"<[^>]+>", "", link).lstrip(">").startswith(name), link
        listed = client.get(f"{projects}?status={query.replace('&amp;', '&')}").content.decode()
        ids = {int(pk) for pk in re.findall(r'<tr id="project-(\d+)"', listed)}
        assert ids == {p.pk for p in rows[kind]}, kind
    assert 'Retry these<span class="visually-hidden"> 3 projects: QuickBooks unavailable' in page


def test_failure_kinds_are_two_reads_with_the_newest_rows_reason(
    personas: Personas, django_assert_num_queries: Any
) -> None:
    customer = QboCustomerFactory(company=personas.company)
    for reason in ("Subscription ended (older)", "Subscription ended (newest)"):
        StagedProjectFactory(
            company=personas.company,
            qbo_customer=customer,
            status=SyncStatus.FAILED,
            failure_code="6190",
            status_reason=reason,
        )
    StagedProjectFactory(
        company=personas.other_company, status=SyncStatus.FAILED, failure_code="6190"
    )

    with django_assert_num_queries(2):  # counted per (status, code), then one row each by id
        [refused] = failure_classes(company=personas.company)

    assert (refused.name, refused.count, refused.codes) == ("Refused by QuickBooks", 2, ("6190",))
    assert refused.sample == "Subscription ended (newest)"
    assert refused.projects_query == "status=failed&code=6190"


def test_a_project_that_left_its_kind_since_it_was_counted_is_no_example(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failures(personas)
    real = health._sample_reasons

    def retried_meanwhile(**kwargs: Any) -> dict[tuple[int, str, str], str]:
        StagedProject.objects.filter(company=personas.company).update(
            status=SyncStatus.QUEUED, status_reason=""
        )
        return real(**kwargs)

    monkeypatch.setattr(health, "_sample_reasons", retried_meanwhile)
    classes = failure_classes(company=personas.company)

    assert {c.sample for c in classes} == {""}
    assert sum(c.count for c in classes) == 6  # as counted


def test_retry_a_kind_queues_only_its_rows(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    rows = _failures(personas)
    client = personas.client_for(personas.operator)
    with django_capture_on_commit_callbacks():
        answer = client.post(
            reverse("portfolio:integration_health_retry"),
            {"name": "QuickBooks unavailable"},
            follow=True,
        )
    assert "Retrying 3 projects: QuickBooks unavailable." in answer.content.decode()
    statuses = {
        kind: {p.status for p in StagedProject.objects.filter(pk__in=[r.pk for r in group])}
        for kind, group in rows.items()
    }
    assert statuses["unavailable"] == {SyncStatus.QUEUED}
    assert statuses["refused"] == {SyncStatus.FAILED}
    gone = client.post(reverse("portfolio:integration_health_retry"), {"name": "Nope"}, follow=True)
    assert "No failed projects of that kind are left." in gone.content.decode()


@pytest.mark.parametrize("rows", [10, 300])
def test_the_page_reads_a_fixed_number_of_times(
    personas: Personas, django_assert_max_num_queries: Any, rows: int
) -> None:
    _connect(personas)
    customer = QboCustomerFactory(company=personas.company)
    StagedProject.objects.bulk_create(
        StagedProject(
            company=personas.company,
            linarc_id=f"h{n}",
            qbo_customer=customer,
            status=SyncStatus.FAILED if n % 3 else SyncStatus.QUEUED,
            failure_code=str(6000 + n % 7),
            queued_at=timezone.now(),
        )
        for n in range(rows)
    )
    Run.objects.bulk_create(
        Run(company=personas.company, kind=RunKind.SYNC, state=RunState.DONE) for _ in range(20)
    )
    client = personas.client_for(personas.operator)
    client.get(URL)
    # Session, user, membership; QuickBooks and Linarc connections; the queue; the last
    # runs and (none among them) the last import; workers; failures counted, then their
    # examples. The full page reads no more: it shows no banner (erp.html).
    with django_assert_max_num_queries(11):
        assert client.get(URL, HTTP_HX_REQUEST="true").status_code == 200
    with django_assert_max_num_queries(11):
        assert client.get(URL).status_code == 200


def test_the_last_import_is_taken_from_the_recent_runs_when_it_is_one(
    personas: Personas,
) -> None:
    now = timezone.now()
    old_import = Run.objects.create(
        company=personas.company,
        kind=RunKind.IMPORT_ALL,
        state=RunState.DONE,
        created_at=now - timedelta(days=2),
    )
    for minutes in range(health.RECENT_RUNS):
        Run.objects.create(
            company=personas.company,
            kind=RunKind.SYNC,
            state=RunState.DONE,
            created_at=now - timedelta(minutes=minutes + 1),
        )
    with CaptureQueriesContext(connection) as apart:
        state = integration_health(company=personas.company)
    assert state.last_import == old_import  # read on its own: not among the recent runs

    pull = Run.objects.create(
        company=personas.company, kind=RunKind.SCHEDULED_PULL, state=RunState.FAILED
    )
    with CaptureQueriesContext(connection) as among:
        state = integration_health(company=personas.company)
    assert state.last_import == pull and state.runs[0] == pull
    assert len(among.captured_queries) == len(apart.captured_queries) - 1


@pytest.mark.parametrize(
    ("ages", "says"),
    [
        ([5, 20], "2 projects queued, all less than a minute ago."),
        ([5], "1 project queued, less than a minute ago."),
        ([5, 600], "2 projects queued, the oldest for 10\xa0minutes."),
        ([], "0 projects queued."),
    ],
)
def test_the_queue_says_how_long_the_oldest_waited_in_plain_words(
    personas: Personas, ages: list[int], says: str
) -> None:
    now = timezone.now()
    for age in ages:
        StagedProjectFactory(
            company=personas.company,
            status=SyncStatus.QUEUED,
            queued_at=now - timedelta(seconds=age),
        )
    page = personas.client_for(personas.viewer).get(URL).content.decode()
    assert says in page
    assert "for 0\xa0minutes" not in page


def test_the_queue_says_when_it_will_be_sent_at_quickbooks_pace(
    personas: Personas, settings: Any
) -> None:
    # 40 batches of 30 rows per rate window; an hour's window makes it 1 row every 3 s.
    settings.QBO_RATE_WINDOW_SECONDS = 3600
    StagedProjectFactory.create_batch(
        3, company=personas.company, status=SyncStatus.QUEUED, queued_at=timezone.now()
    )
    viewer = personas.client_for(personas.viewer)
    assert "sent within about" not in viewer.get(URL).content.decode()  # no worker to send

    WorkerHeartbeat.objects.create(hostname="w1", seen_at=timezone.now())
    page = viewer.get(URL).content.decode()
    assert "At QuickBooks' pace they are all sent within about 9 s." in page


def test_the_linarc_box_says_when_the_next_scheduled_pull_is_and_when_it_is_overdue(
    personas: Personas,
) -> None:
    LinarcConnection.objects.create(company=personas.company, base_url="https://api.linarc.test")
    viewer = personas.client_for(personas.viewer)
    page = viewer.get(URL).content.decode()
    assert "No scheduled pull: Auto-Create and Auto-Update are off" in page

    rules = SyncRules.objects.create(
        company=personas.company, auto_create=True, pull_every_minutes=15
    )
    task = sync_rules_schedule(rules=rules)
    assert task is not None
    page = " ".join(viewer.get(URL).content.decode().split())
    assert "Scheduled pull every 15 minutes; the first is due now." in page
    assert "Connected to" in page  # the connection read with the rules

    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=timezone.now() - timedelta(minutes=5)
    )
    page = " ".join(viewer.get(URL).content.decode().split())
    assert re.search(r"Scheduled pull every 15 minutes; the next in (9|10) minutes\.", page)
    assert "overdue" not in page

    # Beat stopped: the pull is 40 minutes late, and the page says what that likely means.
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=timezone.now() - timedelta(minutes=55)
    )
    page = " ".join(viewer.get(URL).content.decode().split())
    assert "overdue by 40 minutes" in page
    assert "The scheduler may be stopped" in page
    assert "Everything is working" not in page


def test_the_quickbooks_box_speaks_plainly(personas: Personas) -> None:
    QboConnection.objects.create(
        company=personas.company,
        realm_id="9130",
        status="connected",
        refreshed_at=timezone.now() - timedelta(minutes=35),
    )
    page = personas.client_for(personas.viewer).get(URL).content.decode()
    assert "Connection last renewed 35\xa0minutes ago." in page
    assert "Token last refreshed" not in page and "Redis" not in page


def test_an_admin_without_an_email_address_is_warned_instead_of_offered_choices(
    personas: Personas,
) -> None:
    client = personas.client_for(personas.admin)
    page = client.get(URL).content.decode()
    assert '<p class="health-notice">' in page
    assert "Your account has no e-mail address, so nothing can be sent to you." in page
    assert "under Users" in page  # where the address is set
    assert 'name="email_digest"' not in page  # no boxes promising e-mails that cannot come

    personas.admin.email = "ada@example.com"
    personas.admin.save(update_fields=["email"])
    page = client.get(URL).content.decode()
    assert "health-notice" not in page
    assert 'name="email_digest" value="1" checked' in page
