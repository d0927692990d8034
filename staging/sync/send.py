"""Send: write a chunk's rows to QBO and give each the outcome of its answer.

A chunk goes as one ``/batch`` request, or, when the realm's batch window is full, as one
``POST /customer`` per row from the rest of the realm's budget. Each answer is read the same
way whichever way the row went (:func:`_on_result`): Synced, a 5010 re-read and applied
again, a 6240 that turns out to be this row's own job (adopted), Needs Action or Failed.
A transient answer leaves the row without an outcome and raises, for push.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from qbo_client.client import BatchItem, QboClient, QboCustomerData
from qbo_client.errors import (
    NeedsActionError,
    QboError,
    ReconnectRequired,
    StaleObjectError,
    TransientError,
)
from qbo_client.ratelimit import BatchWindowFull
from staging.models import StagedProject
from staging.sync.chunk import (
    Record,
    Work,
    batch_request_id,
    failure,
    lookup_names,
    name_taken,
    request_id,
    synced,
)

SINGLES_PER_WRITE = 10  # single-request rows per outcome transaction (_send_singles)


def _item_for(work: Work) -> BatchItem:
    if work.existing is not None:
        return BatchItem.sparse_update(
            work.bid, work.existing.id, work.existing.sync_token, work.fields
        )
    if work.project.qbo_record_id:
        return BatchItem.sparse_update(
            work.bid, work.project.qbo_record_id, work.project.qbo_sync_token or "0", work.fields
        )
    return BatchItem.create(work.bid, work.fields)


def works_send(
    client: QboClient,
    works: list[Work],
    record: Record,
    *,
    flush: Callable[[], None] = lambda: None,
) -> None:
    """Write the chunk as one ``/batch`` request, or, when the realm's batch window (40 per
    minute) is full, as single requests from the rest of the realm's budget (500 per
    minute): a design sending batches only stops at 40 x 30 = 1,200 rows per minute.
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles"""
    if not works:
        return
    items = [_item_for(w) for w in works]
    batch_id = batch_request_id(works)
    try:
        # Nothing is sent when this raises: the single writes below are the only attempt.
        batch = client.batch(items, request_id=batch_id, wait_for_slot=False)
    except BatchWindowFull:
        _send_singles(client, works, items, record, flush=flush)
        return
    results = {r.bid: r for r in batch}
    transient: list[Work] = []
    for work, item in zip(works, items, strict=True):
        result = results.get(work.bid)
        request = {"endpoint": "batch", "requestid": batch_id, "item": item.to_json()}
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
    works: list[Work],
    items: list[BatchItem],
    record: Record,
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
            single_id = request_id(work.project, "create")
        else:
            single_id = request_id(work.project, f"update-{body['SyncToken']}")
        request = {"endpoint": "customer", "requestid": single_id, "body": body}
        customer: QboCustomerData | None = None
        error: QboError | None = None
        try:
            if item.operation == "create":
                customer = client.create_customer(body, single_id)
            else:
                fields = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")}
                customer = client.sparse_update_customer(
                    body["Id"], str(body["SyncToken"]), fields, single_id
                )
        except (ReconnectRequired, TransientError):
            # For the rest of the chunk too (the connection, a pause, QBO down): the rows
            # written so far keep their outcome, the others go to push._chunk_failed.
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
    work: Work,
    item: BatchItem,
    *,
    customer: QboCustomerData | None,
    error: QboError | None,
    request: dict[str, Any],
    response: dict[str, Any],
    record: Record,
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
            synced(
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
        holders = lookup_names(client, [work.fields["DisplayName"]])
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
        outcome = name_taken(work.fields["DisplayName"], holder, owner)
        outcome.request, outcome.response = request, response
        outcome.intuit_tid = error.intuit_tid or ""
        record(work.project, outcome)
    elif isinstance(error, TransientError):
        return False
    else:
        outcome = failure(error, request=request)
        outcome.response = response
        record(work.project, outcome)
    return True


def _retry_stale(client: QboClient, work: Work, record: Record, *, adopted: bool = False) -> None:
    """5010: someone changed the job in QBO since our last write. Re-read once and apply
    our fields on the fresh SyncToken (a sparse update needs the current one:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer).
    With ``adopted``, the same for a job an earlier attempt at this row created."""
    record_id = work.existing.id if work.existing else work.project.qbo_record_id
    fresh = client.get_customer(record_id)
    update_id = request_id(work.project, f"update-after-5010-{fresh.sync_token}")
    request = {
        "endpoint": "customer",
        "requestid": update_id,
        "body": {"Id": fresh.id, "SyncToken": fresh.sync_token, "sparse": True, **work.fields},
    }
    try:
        updated = client.sparse_update_customer(fresh.id, fresh.sync_token, work.fields, update_id)
    except (NeedsActionError, StaleObjectError) as error:
        record(work.project, failure(error, request=request))
        return
    record(
        work.project,
        synced(
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
