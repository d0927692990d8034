"""Sync rules: the Linarc connection, Auto-Create / Auto-Update, the pull schedule and the
QBO naming rule, and the django-celery-beat task that keeps the schedule.

Each company has at most one PeriodicTask, linked from ``SyncRules.periodic_task``. It is
created the first time either auto flag is switched on, follows the interval, and is disabled
(never deleted, so its history in the admin survives) when both flags are off.
"""

from __future__ import annotations

import json
import logging
import string
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from integrations.actors import Actor, actor_pk
from integrations.errors import Refused
from integrations.models import Company, LinarcConnection, SyncRules
from integrations.services.linarc import KEY_FOR_ANOTHER_URL, linarc_stored_key_usable
from integrations.signals import naming_rule_changed, send_counted

logger = logging.getLogger(__name__)

SCHEDULED_PULL_TASK = "staging.scheduled_pull"
NAMING_PLACEHOLDERS = ("name", "number", "client")
MIN_PULL_MINUTES = 1
MAX_PULL_MINUTES = 1440


class SyncRulesError(Refused, ValueError):
    """A rule value that cannot be saved; the message is fit for the form. ``field`` names
    the form field it belongs to, ``None`` for the form as a whole."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SyncRulesSettings:
    """What the sync rules page shows: saved values (unsaved defaults on first visit)."""

    connection: LinarcConnection | None
    rules: SyncRules

    @property
    def has_api_key(self) -> bool:
        return bool(self.connection and self.connection.api_key)

    @property
    def initial(self) -> dict[str, Any]:
        return {
            "base_url": self.connection.base_url if self.connection else "",
            "auto_create": self.rules.auto_create,
            "auto_update": self.rules.auto_update,
            "pull_every_minutes": self.rules.pull_every_minutes,
            "display_name_template": self.rules.display_name_template,
        }


def sync_rules_get(*, company: Company) -> SyncRulesSettings:
    """The company's Linarc connection and rules, without writing anything."""
    connection = LinarcConnection.objects.filter(company=company).first()
    rules = (
        SyncRules.objects.select_related("periodic_task", "periodic_task__interval")
        .filter(company=company)
        .first()
    ) or SyncRules(company=company)
    return SyncRulesSettings(connection=connection, rules=rules)


def display_name_template_problem(template: str) -> str | None:
    """Why ``template`` is not a usable naming rule, or ``None`` when it is.

    Only the bare placeholders {name}, {number} and {client} are allowed: a conversion or a
    format spec (``{name!r}``, ``{name:>40}``) would put Python's formatting into QBO names,
    and a rule without {name} or {number} would give every project the same QBO name.
    """
    allowed = ", ".join(f"{{{p}}}" for p in NAMING_PLACEHOLDERS)
    if not template.strip():
        return f"Enter a naming rule, for example {{name}} or {{number}} {{name}}. Use {allowed}."
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return f"The naming rule has an unmatched “{{” or “}}”. Use only {allowed}."
    used: set[str] = set()
    for _literal, field_name, format_spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in NAMING_PLACEHOLDERS:
            shown = "{" + field_name + "}" if field_name else "{}"
            return f"Unknown placeholder {shown} in the naming rule. Use only {allowed}."
        if format_spec or conversion:
            return (
                f"Write {{{field_name}}} without a conversion or format "
                f"(“!…” or “:…”). Use only {allowed}."
            )
        used.add(field_name)
    if not used & {"name", "number"}:
        return (
            "The naming rule must include {name} or {number}, or every project would get "
            "the same QuickBooks name."
        )
    return None


def _interval(minutes: int) -> IntervalSchedule:
    schedule, _ = IntervalSchedule.objects.get_or_create(
        every=minutes, period=IntervalSchedule.MINUTES
    )
    return schedule


def sync_rules_schedule(*, rules: SyncRules) -> PeriodicTask | None:
    """Bring the company's PeriodicTask in step with ``rules`` (call inside a transaction).

    Saved with ``.save()`` (not a queryset update) so django-celery-beat's change tracking
    tells a running beat to reload its schedule.
    """
    enabled = rules.auto_create or rules.auto_update
    task = rules.periodic_task
    if task is None and not enabled:
        return None
    if task is None:
        # One per company; the name is unique in django-celery-beat, so adopt an orphan
        # left by an earlier SyncRules row of the same company instead of failing.
        task, _ = PeriodicTask.objects.get_or_create(
            name=f"Linarc pull for company {rules.company_id}",
            defaults={"task": SCHEDULED_PULL_TASK, "interval": _interval(rules.pull_every_minutes)},
        )
        rules.periodic_task = task
        rules.save(update_fields=["periodic_task"])
    task.task = SCHEDULED_PULL_TASK
    task.kwargs = json.dumps({"company_id": rules.company_id})
    task.interval = _interval(rules.pull_every_minutes)
    task.crontab = None
    task.enabled = enabled
    task.description = (
        f"Pull Linarc projects for company {rules.company_id} every "
        f"{rules.pull_every_minutes} min (Auto-Create: {'on' if rules.auto_create else 'off'}, "
        f"Auto-Update: {'on' if rules.auto_update else 'off'})."
    )
    task.save()
    return task


@dataclass(frozen=True)
class SyncRulesSaved:
    rules: SyncRules
    renamed: int  # Synced projects moved to Needs Sync because their QBO name changes


def renamed_message(renamed: int) -> str:
    """What the page says after a naming rule change moved Synced projects."""
    if not renamed:
        return ""
    projects = "project" if renamed == 1 else "projects"
    return (
        f"{renamed} synced {projects} will get the new QuickBooks name: "
        f"{'it is' if renamed == 1 else 'they are'} now Needs Sync."
    )


@transaction.atomic
def sync_rules_update(
    *,
    company: Company,
    base_url: str,
    api_key: str | None,
    auto_create: bool,
    auto_update: bool,
    pull_every_minutes: int,
    display_name_template: str,
    actor: Actor,
) -> SyncRulesSaved:
    """Save the Linarc connection and the sync rules, and keep the schedule in step. A new
    naming rule moves the Synced projects whose QBO name it changes to Needs Sync.

    ``api_key`` ``None`` or blank keeps the stored key (the form never shows it back), but
    only with the base URL it was saved for: another URL needs the key again.
    """
    problem = display_name_template_problem(display_name_template)
    if problem:
        raise SyncRulesError(problem)
    if not MIN_PULL_MINUTES <= pull_every_minutes <= MAX_PULL_MINUTES:
        raise SyncRulesError(
            f"Pull every must be between {MIN_PULL_MINUTES} and {MAX_PULL_MINUTES} minutes."
        )
    connection = LinarcConnection.objects.select_for_update().filter(
        company=company
    ).first() or LinarcConnection(company=company)
    if not api_key and not connection.api_key:
        raise SyncRulesError("Enter the Linarc API key.", field="api_key")
    if not api_key and not linarc_stored_key_usable(
        stored_base_url=connection.base_url, base_url=base_url
    ):
        # Checked here, under the row lock, as well as in the form: the stored key must never
        # be paired with a URL it was not saved for, whoever calls this.
        raise SyncRulesError(KEY_FOR_ANOTHER_URL, field="api_key")
    connection.base_url = base_url.strip()
    if api_key:
        connection.api_key = api_key.strip()
    connection.save()

    rules, _ = SyncRules.objects.select_for_update().get_or_create(company=company)
    renamed = 0
    if display_name_template.strip() != rules.display_name_template:
        # Staging moves the Synced projects whose QBO name changes, in this transaction
        # (staging.receivers), and says how many.
        renamed = send_counted(
            naming_rule_changed,
            SyncRules,
            company=company,
            template=display_name_template.strip(),
            actor=actor,
        )
    rules.auto_create = auto_create
    rules.auto_update = auto_update
    rules.pull_every_minutes = pull_every_minutes
    rules.display_name_template = display_name_template.strip()
    rules.save()
    sync_rules_schedule(rules=rules)
    logger.info(
        "Sync rules of company %s saved by %s (auto_create=%s, auto_update=%s, every %s min; "
        "%s synced project(s) renamed by the naming rule)",
        company.pk,
        actor_pk(actor),
        auto_create,
        auto_update,
        pull_every_minutes,
        renamed,
    )
    return SyncRulesSaved(rules=rules, renamed=renamed)
