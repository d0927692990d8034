"""Push claimed rows to QBO as sub-customers (jobs), one chunk at a time.

Called by a lane (lanes.py) with the rows it has claimed. For each chunk of at most 30:

1. each row's job fields (naming rule, sanitised name); a row without a customer or a usable
   name gets Needs Action at once;
2. the names are looked up in one query: a row whose job already exists under its customer
   adopts it (linked first, so two projects never share one job), a name held by anything
   else is Needs Action (:func:`_adopt_or_flag`);
3. the rest is written (send.py: one /batch, or single requests when the batch window is
   full), and every answer gives its row an outcome;
4. an error for the whole chunk (the connection, QBO down) goes to the rows still without an
   outcome (:func:`_chunk_failed`).

The chunk's outcomes are written together when it is done (``_Outcomes``). Rows hit by a
transient error get none: :class:`TransientPushError` lists them, and the lane gives them
back to be tried again (outcomes.projects_after_transient, with the policy in retry.py).
"""

from __future__ import annotations

import logging
import uuid

from integrations.models import QboConnection, SyncRules
from integrations.services.qbo import (
    QboNotConnected,
    connection_mark_needs_reconnect,
    qbo_client_for,
    sync_rate_limiter,
)
from qbo_client.client import QboClient, QboCustomerData, RequestRecord
from qbo_client.errors import PermanentError, QboError, ReconnectRequired, TransientError
from qbo_client.names import normalize_for_compare
from staging.models import StagedProject, SyncStatus
from staging.services.qbo_payload import (
    project_display_name,
    project_job_fields,
    project_name_suffix,
)
from staging.sync.chunk import Record, Work, failure, lookup_names, name_taken
from staging.sync.outcomes import Outcome, project_record_outcome, projects_record_outcomes
from staging.sync.send import works_send

log = logging.getLogger(__name__)

BATCH_SIZE = 30  # items in one QBO /batch request


class TransientPushError(Exception):
    """Some rows hit a transient QBO error; the lane gives them back to be retried."""

    def __init__(self, error: QboError, project_ids: list[int]) -> None:
        super().__init__(error.reason)
        self.error = error
        self.project_ids = project_ids


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

    works: list[Work] = []
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
        works.append(Work(project, fields, bid=f"b{index}", lease=outcomes.lease))
    if not works:
        return
    try:
        _adopt_or_flag(client, works, record, rules)
        works = [w for w in works if w.bid]  # rows flagged above have bid cleared
        works_send(client, works, record, flush=outcomes.flush)
    except QboError as exc:
        # Rows written one by one (send._send_singles) may have their outcome already: they
        # keep it, and only the others share the chunk's error or are retried.
        undecided = [w for w in works if w.project.pk not in outcomes.decided]
        _chunk_failed(exc, company_id=projects[0].company_id, works=undecided, record=record)


def _adopt_or_flag(client: QboClient, works: list[Work], record: Record, rules: SyncRules) -> None:
    """Look the new rows' names up (one query): a job of the row's own customer is adopted,
    a name anything else holds makes the row Needs Action (its ``bid`` is cleared).

    Two Linarc projects may share a name, and QBO names are unique. When the name is held
    only by the jobs of this company's other projects, the row's job gets the name with its
    project number (" (P-1042)"), kept on the row so every later update sends the same name;
    that name is looked up too (one more query) and must be free or the row's own."""
    creates = [w for w in works if not w.project.qbo_record_id]
    found = lookup_names(client, [w.fields["DisplayName"] for w in creates])
    renamed = _rename_where_siblings_hold(creates, found, rules)
    if renamed:
        found.update(lookup_names(client, [w.fields["DisplayName"] for w in renamed]))
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
            record(work.project, name_taken(work.fields["DisplayName"], holders[0], owner))
            work.bid = ""


def _rename_where_siblings_hold(
    creates: list[Work], found: dict[str, list[QboCustomerData]], rules: SyncRules
) -> list[Work]:
    """Give the project number to the rows whose name belongs to another project: its job
    holds the name in QBO, or an older project (a smaller id) of the company makes the same
    name, synced yet or not, so whichever chunk or worker comes first the older keeps the
    plain name. Two queries: the holders' projects and the same-named projects (through the
    (company, name) index). Returns the rows renamed."""
    template = rules.display_name_template
    candidates = [w for w in creates if not w.project.qbo_name_suffix]
    if not candidates:
        return []
    company_id = candidates[0].project.company_id
    held = {
        w.project.pk: found.get(normalize_for_compare(w.fields["DisplayName"]), [])
        for w in candidates
    }
    job_ids = {h.id for holders in held.values() for h in holders}
    siblings = (
        dict(
            StagedProject.objects.filter(
                company_id=company_id, qbo_record_id__in=job_ids
            ).values_list("qbo_record_id", "pk")
        )
        if job_ids
        else {}
    )
    same_name: dict[str, list[StagedProject]] = {}
    for other in StagedProject.objects.filter(
        company_id=company_id, name__in={w.project.name for w in candidates}
    ).only("pk", "linarc_id", "name", "number", "client_name", "qbo_name_suffix"):
        same_name.setdefault(other.name, []).append(other)
    renamed = []
    for work in candidates:
        own = work.project.pk
        holders = held[own]
        if any(siblings.get(h.id, own) == own for h in holders):
            continue  # held by something else too, or by this row's own job: see the caller
        name = normalize_for_compare(work.fields["DisplayName"])
        older_twin = any(
            _display_name_or_none(other, template) == name
            for other in same_name.get(work.project.name, [])
            if other.pk < own
        )
        if not holders and not older_twin:
            continue  # the name is free and this row's to take
        suffix = project_name_suffix(project=work.project)
        # Kept before anything is sent, under the lease: a retry of this attempt sends, and
        # finds, the same name.
        if StagedProject.objects.filter(pk=own, lease_id=work.lease).update(qbo_name_suffix=suffix):
            work.project.qbo_name_suffix = suffix
            work.fields["DisplayName"] = project_display_name(
                project=work.project, template=template
            )
            renamed.append(work)
    return renamed


def _display_name_or_none(project: StagedProject, template: str) -> str | None:
    try:
        return normalize_for_compare(project_display_name(project=project, template=template))
    except ValueError:
        return None


def _chunk_failed(
    exc: QboError,
    *,
    company_id: int,
    works: list[Work],
    record: Record,
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
            record(work.project, failure(exc))
