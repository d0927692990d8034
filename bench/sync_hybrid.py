"""A prototype, for the benchmark only: what the sync gains by spending QBO's remaining
request budget on single creates once the window's 40 batch requests are used up.

Start workers with ``celery -A bench.sync_hybrid worker``: the Celery app is the product's
(``staging.celery``), and each pool process replaces ``qbo_push._send`` with
:func:`send_hybrid` after Django is set up. Nothing here is imported by the product.

Why it helps (bench/README.md): per window QBO allows 500 requests of which only 40 may be
batches. The shipped sync sends batches only, so it stops at 40 x 30 = 1,200 creates
(1,140 with the limiter's 0.95 margin) and leaves ~420 requests unused.

The prototype keeps every guarantee of ``qbo_push``: the chunk's names were looked up
(``_adopt_or_flag``, one query) before any create, single writes carry a requestid derived
from the attempt, 6240 / 5010 / transient errors are handled per row exactly as for a
batch item. ``BENCH_LIMITER_JITTER=scaled`` also scales the limiter's 50 ms jitter
allowance with the window (with a 6 s window the fixed 50 ms stretches the per-second
window from 0.1 s to 0.15 s, a third of the per-second rate; in real time it is 5 %).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from celery.signals import worker_process_init

from staging.celery import app

__all__ = ["app", "patch", "send_hybrid"]


def _batch_slot_free(client: Any) -> bool:
    """Whether the realm's batch window has a slot now (no waiting, nothing taken)."""
    limiter = client._limiter
    strategy = getattr(limiter, "_strategy", None)
    if strategy is None:  # NullRateLimiter: nothing to save
        return True
    return bool(strategy.test(limiter._batch, client.realm_id))


def send_hybrid(client: Any, works: list[Any], record: Any) -> None:
    if not works:
        return
    if _batch_slot_free(client):
        qbo_push_send(client, works, record)
        return
    _send_singles(client, works, record)


def _send_singles(client: Any, works: list[Any], record: Any) -> None:
    from qbo_client.errors import NeedsActionError, QboError, StaleObjectError, TransientError
    from staging.services import qbo_push

    transient: list[Any] = []
    last_error: QboError | None = None
    for work in works:
        item = qbo_push._item_for(work)
        body = dict(item.customer or {})
        if item.operation == "create":
            request_id = qbo_push._request_id(work.project, "create")
        else:
            request_id = qbo_push._request_id(work.project, f"update-{body.get('SyncToken')}")
        request = {"endpoint": "customer", "requestid": request_id, "body": body}
        try:
            if item.operation == "create":
                customer = client.create_customer(body, request_id)
            else:
                fields = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")}
                customer = client.sparse_update_customer(
                    body["Id"], str(body["SyncToken"]), fields, request_id
                )
        except StaleObjectError:
            qbo_push._retry_stale(client, work, record)
            continue
        except NeedsActionError as error:
            if error.code != "6240":
                record(work.project, qbo_push._failure(error, request=request))
                continue
            holders = qbo_push._lookup_names(client, [work.fields["DisplayName"]])
            holder = next(iter(holders.values()), [None])[0]
            outcome = qbo_push._name_taken(work.fields["DisplayName"], holder)
            outcome.request = request
            outcome.intuit_tid = error.intuit_tid or ""
            record(work.project, outcome)
            continue
        except TransientError as error:
            transient.append(work)
            last_error = error
            continue
        except QboError as error:
            record(work.project, qbo_push._failure(error, request=request))
            continue
        verb = (
            "Adopted existing"
            if work.existing
            else ("Updated" if item.operation == "update" else "Created")
        )
        record(
            work.project,
            qbo_push._synced(
                customer,
                work.fields,
                f"{verb} QBO job “{customer.display_name}” (Id {customer.id})",
                request,
                {"Customer": customer.raw},
                client.last_intuit_tid,
            ),
        )
    if transient:
        raise TransientError(last_error.reason if last_error else "QuickBooks did not answer")


qbo_push_send: Any = None


def patch(*, scaled_jitter: bool) -> None:
    global qbo_push_send
    from integrations.services import qbo
    from qbo_client.ratelimit import RealmRateLimiter
    from staging.services import qbo_push

    if qbo_push_send is None:
        qbo_push_send = qbo_push._send
    qbo_push._send = send_hybrid
    if scaled_jitter:

        @cache
        def limiter(url: str | None, window_seconds: int) -> RealmRateLimiter:
            jitter = 0.05 * window_seconds / 60
            return RealmRateLimiter.from_url(
                url, window_seconds=window_seconds, jitter_seconds=jitter
            )

        qbo._limiter = limiter


@worker_process_init.connect
def _patch_pool_process(**_kwargs: Any) -> None:
    patch(scaled_jitter=os.environ.get("BENCH_LIMITER_JITTER") == "scaled")
