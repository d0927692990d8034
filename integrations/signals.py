"""What the integrations app announces, for staging to act on.

``integrations`` must not import ``staging`` (docs/architecture.md; import-linter checks it).
Two changes made here matter to the staged projects, and staging owns what follows from
them, so a service sends a signal, inside its own transaction, and staging's receivers
(staging/receivers.py, connected in ``StagingConfig.ready``) do the work there and then.

Each receiver returns how many staged projects it changed; :func:`send_counted` adds them up
for the caller's message. Receivers run in the sender's transaction and their exceptions
propagate (``send``, not ``send_robust``): a failed follow-up fails the change.
https://docs.djangoproject.com/en/5.2/topics/signals/#defining-and-sending-signals
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

# A company's QBO naming rule changed (sent by integrations.services.rules.sync_rules_update,
# sender SyncRules). Arguments: company, template (the new rule), actor. Staging moves the
# Synced projects whose QBO name changes to Needs Sync.
naming_rule_changed = Signal()

# QBO says a customer was deleted, merged away or made inactive (sent by
# integrations.services.webhook_processing, sender QboCustomer). Arguments: company, qbo_id,
# operation (the webhook's: "Delete", "Merge", or another when the customer is inactive or
# missing), webhook_event_id. Staging flags the projects mapped to it as Needs Action.
qbo_customer_gone = Signal()


def send_counted(signal: Signal, sender: type[Any], **kwargs: Any) -> int:
    """Send ``signal`` and return the total its receivers report (projects changed)."""
    # django-stubs types the responses as ``str | None``; receivers may return anything.
    responses: list[tuple[Any, object]] = list(signal.send(sender, **kwargs))
    return sum(response for _receiver, response in responses if isinstance(response, int))
