"""Executing a claimed import run: Linarc read page by page, each page staged as it comes.

One page is held at a time, and each commits on its own (the writer: writer.py), so a
Linarc failure on page 7 keeps pages 1-6 and the run says so. What is read depends on the
run's kind:

* *Import New Items*: the whole listing, staging only projects not staged yet;
* *Import All*: the whole listing, new and edited projects; then, when every record of the
  listing was readable, the staged projects it no longer holds are flagged (deletions.py);
* *Import Selected*: the chosen ids, one ``get_project`` each, staged in chunks;
* the *scheduled pull*: what changed since the last successful pull, creating and updating
  as the sync rules' Auto-Create and Auto-Update say.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime

from django.db import connections, transaction

from integrations.services.linarc import LinarcNotConfigured, linarc_client_for
from linarc_client import (
    LinarcClient,
    LinarcError,
    LinarcNotFound,
    LinarcProtocolError,
    ProjectRecord,
)
from staging.imports.deletions import SeenRows, projects_flag_deleted
from staging.imports.rows import IMPORT_PAGE_SIZE
from staging.imports.runs import (
    Tally,
    import_run_claim,
    import_run_finish,
    run_save_progress,
    scheduled_pull_create,
)
from staging.imports.writer import projects_stage_page
from staging.models import Run, RunKind, StagedProject

logger = logging.getLogger(__name__)

SELECTED_CHUNK_SIZE = 100  # Import Selected stages its get_project results in chunks
# A first import of a big account into an empty table runs without planner statistics, and
# PostgreSQL then scans all the company's rows for each page's lookup by linarc_id. One
# ANALYZE once this many rows are new (and the table's estimate is far below that) keeps the
# import linear.
ANALYZE_AFTER_CREATED = 5000


def import_run_execute(*, run_id: int) -> Run:
    """Execute a pending import run. A run already claimed (a re-delivered task, or a
    second worker) is returned untouched."""
    run, claimed = import_run_claim(run_id=run_id)
    if not claimed:
        return run
    tally = Tally(total=run.total)
    try:
        with linarc_client_for(company=run.company) as client:
            _execute(client=client, run=run, tally=tally)
    except (LinarcError, LinarcNotConfigured) as exc:
        logger.warning("Import run %s failed: %s", run.pk, exc)
        import_run_finish(run, tally, error=_failure_message(exc, tally))
        return run
    except Exception as exc:
        import_run_finish(run, tally, error=f"The import stopped on an unexpected error: {exc!r}")
        raise
    import_run_finish(run, tally)
    return run


def _execute(*, client: LinarcClient, run: Run, tally: Tally) -> None:
    if run.kind == RunKind.IMPORT_SELECTED:
        _selected(client=client, run=run, tally=tally)
    elif run.kind == RunKind.IMPORT_NEW:
        _listing(client=client, run=run, tally=tally, create=True, update=False)
    elif run.kind == RunKind.SCHEDULED_PULL:
        _listing(
            client=client,
            run=run,
            tally=tally,
            create=bool(run.params.get("auto_create")),
            update=bool(run.params.get("auto_update")),
        )
    else:
        seen = _listing(client=client, run=run, tally=tally, create=True, update=True)
        if tally.counts["invalid"]:
            # An unreadable record may be one of ours (its id unreadable too): flagging
            # would mark a live project deleted. Deletions wait for a clean listing.
            run.params = {**run.params, "deletions_checked": False}
        else:
            tally.counts["deleted"] = projects_flag_deleted(
                company=run.company, seen=seen, actor=run.started_by, run_id=run.pk
            )
            run.params = {**run.params, "deletions_checked": True}


def _listing(
    *, client: LinarcClient, run: Run, tally: Tally, create: bool, update: bool
) -> SeenRows:
    """Stage every page of the listing; the staged rows Linarc listed (for deletions).

    Pages are fetched one at a time. Reading the next page in a thread while this one is
    written was measured and left out: the two threads share the GIL, and the writer then
    waits for it after every database round trip (0.84-0.98x the sequential speed)."""
    updated_since = run.params.get("updated_since")
    seen = SeenRows()
    analyzed = False
    pages = client.iter_pages(
        updated_since=datetime.fromisoformat(updated_since) if updated_since else None,
        page_size=IMPORT_PAGE_SIZE,
    )
    for page in pages:
        tally.total = page.count
        with transaction.atomic():
            outcome = projects_stage_page(
                company=run.company,
                records=page.records,
                create=create,
                update=update,
                actor=run.started_by,
                run_id=run.pk,
            )
            tally.add_page(outcome, page.invalid)
            run_save_progress(run, tally)
        seen.update(outcome.seen_pks)
        if not analyzed:
            analyzed = _analyze_if_unplanned(tally.counts["created"])
    return seen


def _analyze_if_unplanned(created_in_run: int) -> bool:
    """``ANALYZE`` the staged projects table when this run has written many rows the planner
    does not know of (PostgreSQL only); ``True`` when it ran (once per run is enough)."""
    connection = connections[StagedProject.objects.db]
    if connection.vendor != "postgresql" or created_in_run < ANALYZE_AFTER_CREATED:
        return False
    table = StagedProject._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
        if row is not None and row[0] >= created_in_run / 2:
            return True  # statistics already cover most of what we wrote
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return True


def _selected(*, client: LinarcClient, run: Run, tally: Tally) -> None:
    ids: list[str] = list(run.params.get("linarc_ids", []))
    tally.total = len(ids)
    for chunk in _chunks(ids, SELECTED_CHUNK_SIZE):
        records: list[ProjectRecord] = []
        invalid: list[tuple[str, str]] = []
        for linarc_id in chunk:
            try:
                records.append(client.get_project(linarc_id))
            except LinarcNotFound:
                tally.add_not_found(linarc_id)
            except LinarcProtocolError as exc:
                # One unreadable project does not stop the others.
                invalid.append((exc.reason, exc.detail or linarc_id))
        with transaction.atomic():
            outcome = projects_stage_page(
                company=run.company,
                records=records,
                create=True,
                update=True,
                actor=run.started_by,
                run_id=run.pk,
            )
            tally.add_page(outcome, [])
            tally.counts["fetched"] += len(invalid)
            tally.add_invalid(invalid)
            run_save_progress(run, tally)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _failure_message(exc: LinarcError | LinarcNotConfigured, tally: Tally) -> str:
    kept = tally.counts["created"] + tally.counts["updated"]
    reason = exc.reason if isinstance(exc, LinarcError) else str(exc)
    where = f" after {tally.processed} projects" if tally.processed else ""
    message = f"Linarc error{where}: {reason}."
    if kept:
        message += f" The {kept} projects staged before it were kept; run the import again."
    else:
        message += " Nothing was changed in staging."
    return message


def scheduled_pull_run(*, company_id: int) -> Run | None:
    """The sync rules' scheduled pull, executed here, in its beat task (what it pulls:
    runs.scheduled_pull_create). ``None`` when there is nothing to do."""
    run = scheduled_pull_create(company_id=company_id)
    return None if run is None else import_run_execute(run_id=run.pk)
