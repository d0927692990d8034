"""A chunk's rows on their way to QBO, and the pieces push.py and send.py share: each row's
work (its job fields and the job it writes to), the requestids derived from its attempt,
the name look-up, and the Outcome each kind of answer makes of a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qbo_client.client import QboClient, QboCustomerData
from qbo_client.errors import NeedsActionError, QboError
from qbo_client.names import escape_query_literal, normalize_for_compare
from staging.models import StagedProject, SyncStatus
from staging.services.qbo_payload import fields_hash
from staging.sync.outcomes import Outcome, project_link_qbo_job, qbo_job_taken_reason

# Gives one row its outcome; the chunk's outcomes are written together (push._Outcomes).
Record = Callable[[StagedProject, Outcome], bool]


@dataclass
class Work:
    """One claimed row in a chunk: its job's fields, its ``bid`` in the batch (cleared once
    the row has an outcome before sending) and the QBO job it adopted, if any."""

    project: StagedProject
    fields: dict[str, Any]
    bid: str
    lease: uuid.UUID
    existing: QboCustomerData | None = None

    def adopt(self, customer: QboCustomerData) -> StagedProject | None:
        """Take an existing job for this row: linked in the database before anything is
        written to it. Returns the project that holds the job instead (nothing is adopted)."""
        owner = project_link_qbo_job(
            project=self.project,
            lease=self.lease,
            qbo_record_id=customer.id,
            sync_token=customer.sync_token,
        )
        if owner is None:
            self.existing = customer
        return owner


def request_id(project: StagedProject, operation: str) -> str:
    # Derived from the attempt stamped at queue time: the same attempt always sends the
    # same requestid, so QBO replays a write whose response was lost:
    # https://blogs.intuit.com/2015/04/06/15346/
    return uuid.uuid5(project.attempt_id or uuid.NAMESPACE_OID, f"{project.pk}:{operation}").hex


def batch_request_id(works: list[Work]) -> str:
    # 32 characters: a /batch requestid may have at most 36.
    # https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/batch
    key = ",".join(f"{w.project.pk}:{w.project.attempt_id}" for w in works)
    return uuid.uuid5(uuid.NAMESPACE_OID, key).hex


def failure(error: QboError, *, request: dict[str, Any] | None = None) -> Outcome:
    status = SyncStatus.NEEDS_ACTION if isinstance(error, NeedsActionError) else SyncStatus.FAILED
    return Outcome(
        status=status,
        reason=error.reason,
        code=error.code or "",
        intuit_tid=error.intuit_tid or "",
        request=request,
        response={"status": error.status, "detail": error.detail} if request else None,
    )


def synced(
    customer: QboCustomerData,
    fields: dict[str, Any],
    summary: str,
    request: dict[str, Any],
    response: dict[str, Any],
    tid: str | None,
) -> Outcome:
    return Outcome(
        status=SyncStatus.SYNCED,
        qbo_record_id=customer.id,
        sync_token=customer.sync_token,
        display_name=customer.display_name,
        synced_hash=fields_hash(fields),
        summary=summary,
        request=request,
        response=response,
        intuit_tid=tid or "",
    )


def lookup_names(client: QboClient, names: list[str]) -> dict[str, list[QboCustomerData]]:
    """All customers (inactive included) holding any of the names, in one query."""
    if not names:
        return {}
    literals = ", ".join(f"'{escape_query_literal(n)}'" for n in sorted(set(names)))
    # QBO's query language, not SQL; every literal is escaped above. Without the filter on
    # Active, QBO leaves inactive customers out, yet they hold their names:
    # https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
    statement = f"SELECT * FROM Customer WHERE DisplayName IN ({literals}) "  # noqa: S608
    response = client.query(statement + "AND Active IN (true, false) MAXRESULTS 1000")
    found: dict[str, list[QboCustomerData]] = {}
    for entity in response.get("Customer", []):
        customer = QboCustomerData.from_json(entity)
        found.setdefault(normalize_for_compare(customer.display_name), []).append(customer)
    return found


def name_taken(
    name: str, holder: QboCustomerData | None, owner: StagedProject | None = None
) -> Outcome:
    if owner is not None and holder is not None:
        return Outcome(
            status=SyncStatus.NEEDS_ACTION,
            code="6240",
            reason=f'The name "{name}" is already used in QuickBooks. '
            + qbo_job_taken_reason(qbo_record_id=holder.id, owner=owner),
        )
    who = f"another record (Id {holder.id})" if holder else "a vendor, employee or customer"
    return Outcome(
        status=SyncStatus.NEEDS_ACTION,
        code="6240",
        reason=(
            f'The name "{name}" is already used in QuickBooks by {who}. Link it with Manual '
            "Mapping or change the naming rule."
        ),
    )
