"""Staging's answers to what integrations announces (integrations/signals.py).

Each receiver calls one staging service and returns how many projects it changed; the
sender adds the counts up for its message. Connected once, in ``StagingConfig.ready``.
"""

from __future__ import annotations

from typing import Any

from integrations.actors import Actor
from integrations.models import Company
from integrations.signals import naming_rule_changed, qbo_customer_gone
from staging.services.naming import projects_apply_naming_rule
from staging.services.qbo_customer_changes import projects_flag_customer_gone


def projects_rename_for_naming_rule(
    sender: Any, *, company: Company, template: str, actor: Actor, **kwargs: Any
) -> int:
    return projects_apply_naming_rule(company=company, template=template, actor=actor)


def projects_flag_for_gone_customer(
    sender: Any,
    *,
    company: Company,
    qbo_id: str,
    operation: str,
    webhook_event_id: int,
    **kwargs: Any,
) -> int:
    return projects_flag_customer_gone(
        company=company, qbo_id=qbo_id, operation=operation, webhook_event_id=webhook_event_id
    )


def connect() -> None:
    # dispatch_uid: connected once, however often ready() runs (tests may run it again).
    naming_rule_changed.connect(
        projects_rename_for_naming_rule, dispatch_uid="staging.projects_rename_for_naming_rule"
    )
    qbo_customer_gone.connect(
        projects_flag_for_gone_customer, dispatch_uid="staging.projects_flag_for_gone_customer"
    )
