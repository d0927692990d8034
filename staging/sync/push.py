"""Push claimed projects to QBO as sub-customers: lookup, adopt or create, sparse update.

Called by a lane (lanes.py) with rows it has claimed.
Every row gets an outcome (Synced / Failed / Needs Action) except rows hit by a transient
error, which are returned so the task can retry them with backoff.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.models import QboConnection, SyncRules
from integrations.services.qbo import (
    QboNotConnected,
    connection_mark_needs_reconnect,
    qbo_client_for,
    sync_rate_limiter,
)
from qbo_client.client import BatchItem, QboClient, QboCustomerData, RequestRecord
from qbo_client.errors import (
    NeedsActionError,
    PermanentError,
    QboError,
    ReconnectRequired,
    StaleObjectError,
    TransientError,
)
from qbo_client.names import escape_query_literal, normalize_for_compare
from qbo_client.ratelimit import BatchWindowFull
from staging.models import StagedProject, SyncStatus
from staging.services.qbo_payload import fields_hash, project_job_fields
from staging.sync.outcomes import (
    Outcome,
    project_link_qbo_job,
    project_record_outcome,
    projects_record_outcomes,
    qbo_job_taken_reason,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 30  # QBO's batch item limit

SINGLES_PER_WRITE = 10  # single-request rows per outcome transaction (_send_singles)


class TransientPushError(Exception):
    """Some rows hit a transient QBO error; the task retries them with backoff."""

    def __init__(self, error: QboError, project_ids: list[int]) -> None:
        super().__init__(error.reason)
        self.error = error
        self.project_ids = project_ids


@dataclass
class _Work:
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


def _request_id(project: StagedProject, operation: str) -> str:
    # Derived from the attempt stamped at queue time: the same attempt always sends the
    # same requestid, so QBO replays a write whose response was lost (reference §7).
    return uuid.uuid5(project.attempt_id or uuid.NAMESPACE_OID, f"{project.pk}:{operation}").hex


def _batch_request_id(works: list[_Work]) -> str:
    key = ",".join(f"{w.project.pk}:{w.project.attempt_id}" for w in works)
    return uuid.uuid5(uuid.NAMESPACE_OID, key).hex  # 32 chars ≤ 36 (reference §6)


def _failure(error: QboError, *, request: dict[str, Any] | None = None) -> Outcome:
    status = SyncStatus.NEEDS_ACTION if isinstance(error, NeedsActionError) else SyncStatus.FAILED
    return Outcome(
        status=status,
        reason=error.reason,
        code=error.code or "",
        intuit_tid=error.intuit_tid or "",
        request=request,
        response={"status": error.status, "detail": error.detail} if request else None,
    )


def _synced(
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


def _lookup_names(client: QboClient, names: list[str]) -> dict[str, list[QboCustomerData]]:
    """All customers (inactive included) holding any of the names, in one query."""
    if not names:
        return {}
    literals = ", ".join(f"'{escape_query_literal(n)}'" for n in sorted(set(names)))
    # QBO's query language, not SQL; every literal is escaped above (reference §3).
    statement = f"SELECT * FROM Customer WHERE DisplayName IN ({literals}) "  # noqa: S608
    response = client.query(statement + "AND Active IN (true, false) MAXRESULTS 1000")
    found: dict[str, list[QboCustomerData]] = {}
    for entity in response.get("Customer", []):
        customer = QboCustomerData.from_json(entity)
        found.setdefault(normalize_for_compare(customer.display_name), []).append(customer)
    return found


def _name_taken(
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


def projects_push(*, lease: uuid.UUID, projects: list[StagedProject]) -> None:
    """Push claimed rows; raises TransientPushError listing the rows to retry later."""
    if not projects:
        return
    company = projects[0].company
    exchanges: list[RequestRecord] = []
    try:
        client = qbo_client_for(
            company=company, on_request=exchanges.append, limiter=sync_rate_limiter()
        )
    except (QboNotConnected, ReconnectRequired, PermanentError) as exc:
        # PermanentError: building the client fetches the discovery document, which may be
        # refused (a non-public host in production) or malformed; no retry can help.
        reason = str(exc) if isinstance(exc, QboNotConnected) else exc.reason
        for project in projects:
            project_record_outcome(
                project=project, lease=lease, outcome=Outcome(SyncStatus.FAILED, reason=reason)
            )
        return
    transient: list[int] = []
    last_error: QboError | None = None
    with client:
        for start in range(0, len(projects), BATCH_SIZE):
            try:
                _push_with(
                    client,
                    lease=lease,
                    projects=projects[start : start + BATCH_SIZE],
                    exchanges=exchanges,
                )
            except TransientPushError as exc:
                transient.extend(exc.project_ids)
                last_error = exc.error
    if transient:
        assert last_error is not None
        raise TransientPushError(last_error, transient)


def _push_with(
    client: QboClient,
    *,
    lease: uuid.UUID,
    projects: list[StagedProject],
    exchanges: list[RequestRecord],
) -> None:
    # Outcomes are collected and written together when the chunk is done (also when it
    # raises): one transaction per chunk instead of one per row (projects_record_outcomes).
    outcomes = _Outcomes(lease)
    try:
        _push_chunk(client, projects=projects, outcomes=outcomes)
    finally:
        outcomes.flush()


class _Outcomes:
    """A chunk's outcomes, written in one transaction per :meth:`flush`."""

    def __init__(self, lease: uuid.UUID) -> None:
        self.lease = lease
        self.pending: list[tuple[StagedProject, Outcome]] = []
        self.decided: set[int] = set()

    def record(self, project: StagedProject, outcome: Outcome) -> bool:
        self.pending.append((project, outcome))
        self.decided.add(project.pk)
        return True

    def flush(self) -> None:
        if self.pending:
            projects_record_outcomes(lease=self.lease, outcomes=self.pending)
            self.pending = []


def _push_chunk(
    client: QboClient,
    *,
    projects: list[StagedProject],
    outcomes: _Outcomes,
) -> None:
    rules, _ = SyncRules.objects.get_or_create(company_id=projects[0].company_id)
    record = outcomes.record

    works: list[_Work] = []
    for index, project in enumerate(projects):
        if project.qbo_customer is None:
            record(project, Outcome(SyncStatus.NEEDS_ACTION, reason="No QBO customer selected"))
            continue
        try:
            fields = project_job_fields(project=project, rules=rules)
        except ValueError as exc:
            record(
                project,
                Outcome(
                    SyncStatus.NEEDS_ACTION,
                    reason=f"The QuickBooks name cannot be built: {exc}. Fix the project name "
                    "in Linarc or the naming rule.",
                ),
            )
            continue
        works.append(_Work(project, fields, bid=f"b{index}", lease=outcomes.lease))
    if not works:
        return
    try:
        _adopt_or_flag(client, works, record)
        works = [w for w in works if w.bid]  # rows flagged above have bid cleared
        _send(client, works, record, flush=outcomes.flush)
    except QboError as exc:
        # Rows written one by one (_send_singles) may have their outcome already: they keep
        # it, and only the others share the chunk's error or are retried.
        undecided = [w for w in works if w.project.pk not in outcomes.decided]
        _chunk_failed(exc, company_id=projects[0].company_id, works=undecided, record=record)


def _chunk_failed(
    exc: QboError,
    *,
    company_id: int,
    works: list[_Work],
    record: Callable[[StagedProject, Outcome], bool],
) -> None:
    """An error for the whole chunk (not one item), given to the rows without an outcome."""
    if isinstance(exc, ReconnectRequired):
        # A 401 right after a refresh, or 403/3100, does not pass through the token store:
        # mark the connection here so the panel offers Reconnect (mappings are kept).
        connection_mark_needs_reconnect(
            connection_id=QboConnection.objects.get(company_id=company_id).pk,
            reason=f"Reconnect QuickBooks: {exc.reason}",
        )
        for work in works:
            record(work.project, Outcome(SyncStatus.FAILED, reason=exc.reason, code=exc.code or ""))
    elif isinstance(exc, TransientError):
        raise TransientPushError(exc, [w.project.pk for w in works]) from exc
    else:
        # A fault for the whole request rather than one batch item (an XML validation fault,
        # a Fault without a code): every row gets it, none is left Queued for the reaper to
        # send again and again. A row already given an outcome above keeps that one.
        for work in works:
            record(work.project, _failure(exc))


def _adopt_or_flag(
    client: QboClient, works: list[_Work], record: Callable[[StagedProject, Outcome], bool]
) -> None:
    creates = [w for w in works if not w.project.qbo_record_id]
    found = _lookup_names(client, [w.fields["DisplayName"] for w in creates])
    for work in creates:
        holders = found.get(normalize_for_compare(work.fields["DisplayName"]), [])
        parent_id = work.fields["ParentRef"]["value"]
        owner: StagedProject | None = None
        for holder in holders:
            if holder.is_job and holder.parent_id == parent_id:
                # Ours already (an earlier attempt created it, or a person did): adopt it,
                # unless another project holds it (two projects whose names are alike, or
                # alike in their first 100 characters, must not share one job).
                owner = work.adopt(holder)
                if owner is None:
                    break
        if work.existing is None and holders:
            record(work.project, _name_taken(work.fields["DisplayName"], holders[0], owner))
            work.bid = ""


def _item_for(work: _Work) -> BatchItem:
    if work.existing is not None:
        return BatchItem.sparse_update(
            work.bid, work.existing.id, work.existing.sync_token, work.fields
        )
    if work.project.qbo_record_id:
        return BatchItem.sparse_update(
            work.bid, work.project.qbo_record_id, work.project.qbo_sync_token or "0", work.fields
        )
    return BatchItem.create(work.bid, work.fields)


def _send(
    client: QboClient,
    works: list[_Work],
    record: Callable[[StagedProject, Outcome], bool],
    *,
    flush: Callable[[], None] = lambda: None,
) -> None:
    """Write the chunk as one ``/batch`` request, or, when the realm's batch window (40 per
    minute) is full, as single requests from the rest of the realm's budget (500 per
    minute): a design sending batches only stops at 40 x 30 = 1,200 rows per minute."""
    if not works:
        return
    items = [_item_for(w) for w in works]
    request_id = _batch_request_id(works)
    try:
        # Nothing is sent when this raises: the single writes below are the only attempt.
        batch = client.batch(items, request_id=request_id, wait_for_slot=False)
    except BatchWindowFull:
        _send_singles(client, works, items, record, flush=flush)
        return
    results = {r.bid: r for r in batch}
    transient: list[_Work] = []
    for work, item in zip(works, items, strict=True):
        result = results.get(work.bid)
        request = {"endpoint": "batch", "requestid": request_id, "item": item.to_json()}
        if result is None:
            transient.append(work)
            continue
        done = _on_result(
            client,
            work,
            item,
            customer=result.customer if result.ok else None,
            error=result.error,
            request=request,
            response=result.raw,
            record=record,
        )
        if not done:
            transient.append(work)
    if transient:
        error = next((results[w.bid].error for w in transient if w.bid in results), None)
        raise TransientError(error.reason if error else "QuickBooks did not answer for some rows")


def _send_singles(
    client: QboClient,
    works: list[_Work],
    items: list[BatchItem],
    record: Callable[[StagedProject, Outcome], bool],
    *,
    flush: Callable[[], None],
) -> None:
    """The chunk as one ``POST /customer`` per row: the names were looked up before (as
    for a batch), each write carries a requestid derived from the attempt, and each row's
    fault is handled exactly as a batch item's. Thirty requests take a while (4 s at QBO's
    pace of 8 a second), so outcomes are written every ``SINGLES_PER_WRITE`` rows: rows
    show Synced as they are, and fewer are left to send again after a lost worker."""
    for index, (work, item) in enumerate(zip(works, items, strict=True), start=1):
        body = dict(item.customer or {})
        if item.operation == "create":
            request_id = _request_id(work.project, "create")
        else:
            request_id = _request_id(work.project, f"update-{body['SyncToken']}")
        request = {"endpoint": "customer", "requestid": request_id, "body": body}
        customer: QboCustomerData | None = None
        error: QboError | None = None
        try:
            if item.operation == "create":
                customer = client.create_customer(body, request_id)
            else:
                fields = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")}
                customer = client.sparse_update_customer(
                    body["Id"], str(body["SyncToken"]), fields, request_id
                )
        except (ReconnectRequired, TransientError):
            # For the rest of the chunk too (the connection, a pause, QBO down): the rows
            # written so far keep their outcome, the others go to _chunk_failed.
            raise
        except QboError as exc:
            error = exc
        response: dict[str, Any] = {"Customer": customer.raw} if customer is not None else {}
        if error is not None:
            response = {"status": error.status, "detail": error.detail}
        done = _on_result(
            client,
            work,
            item,
            customer=customer,
            error=error,
            request=request,
            response=response,
            record=record,
        )
        assert done  # transient errors were raised above
        if index % SINGLES_PER_WRITE == 0:
            flush()


def _on_result(
    client: QboClient,
    work: _Work,
    item: BatchItem,
    *,
    customer: QboCustomerData | None,
    error: QboError | None,
    request: dict[str, Any],
    response: dict[str, Any],
    record: Callable[[StagedProject, Outcome], bool],
) -> bool:
    """Record one write's outcome (batch item or single request); False when the error was
    transient and the row must be retried."""
    tid = client.last_intuit_tid
    if error is None and customer is not None:
        verb = (
            "Adopted existing"
            if work.existing
            else ("Updated" if item.operation == "update" else "Created")
        )
        record(
            work.project,
            _synced(
                customer,
                work.fields,
                f"{verb} QBO job “{customer.display_name}” (Id {customer.id})",
                request,
                response,
                tid,
            ),
        )
        return True
    assert error is not None
    if isinstance(error, StaleObjectError) and item.operation == "update":
        _retry_stale(client, work, record)
    elif isinstance(error, NeedsActionError) and error.code == "6240":
        holders = _lookup_names(client, [work.fields["DisplayName"]])
        parent_id = work.fields["ParentRef"]["value"]
        mine = [h for hs in holders.values() for h in hs if h.is_job and h.parent_id == parent_id]
        owner: StagedProject | None = None
        if item.operation == "create":
            for job in mine:
                # Another attempt at this row (a worker whose lease ran out) created the job
                # between our lookup and our create: it is ours, adopt it as the lookup
                # would, unless another project holds it.
                owner = work.adopt(job)
                if owner is None:
                    _retry_stale(client, work, record, adopted=True)
                    return True
        holder = mine[0] if owner is not None else next(iter(holders.values()), [None])[0]
        outcome = _name_taken(work.fields["DisplayName"], holder, owner)
        outcome.request, outcome.response = request, response
        outcome.intuit_tid = error.intuit_tid or ""
        record(work.project, outcome)
    elif isinstance(error, TransientError):
        return False
    else:
        outcome = _failure(error, request=request)
        outcome.response = response
        record(work.project, outcome)
    return True


def _retry_stale(
    client: QboClient,
    work: _Work,
    record: Callable[[StagedProject, Outcome], bool],
    *,
    adopted: bool = False,
) -> None:
    """5010: someone changed the job in QBO since our last write. Re-read once and apply
    our fields on the fresh SyncToken (reference §2.6). With ``adopted``, the same for a
    job an earlier attempt at this row created."""
    record_id = work.existing.id if work.existing else work.project.qbo_record_id
    fresh = client.get_customer(record_id)
    request_id = _request_id(work.project, f"update-after-5010-{fresh.sync_token}")
    request = {
        "endpoint": "customer",
        "requestid": request_id,
        "body": {"Id": fresh.id, "SyncToken": fresh.sync_token, "sparse": True, **work.fields},
    }
    try:
        updated = client.sparse_update_customer(fresh.id, fresh.sync_token, work.fields, request_id)
    except (NeedsActionError, StaleObjectError) as error:
        record(work.project, _failure(error, request=request))
        return
    record(
        work.project,
        _synced(
            updated,
            work.fields,
            f"Adopted existing QBO job “{updated.display_name}” (Id {updated.id}), created by "
            "an earlier attempt"
            if adopted
            else f"Updated QBO job “{updated.display_name}” after a concurrent edit",
            request,
            {"Customer": json.loads(json.dumps(updated.raw))},
            client.last_intuit_tid,
        ),
    )
