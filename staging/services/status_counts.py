"""The status chips' counts as PostgreSQL keeps them (StatusCountDelta, migration 0005).

Reading sums a company's delta rows; every write statement on the staged projects adds
one or two, so a company's rows are folded into one per status once there are more than
COMPACT_AFTER of them. Compaction deletes the rows it read and inserts their sum in one
transaction: a delta inserted meanwhile by another transaction is not visible to the
DELETE, so it is neither lost nor counted twice. An advisory lock per company keeps two
compactions from waiting on each other's deleted rows (and so from deadlocking); a
compaction that finds the lock taken simply skips, the other one is doing the work.
"""

from __future__ import annotations

from django.db import connection, transaction

from staging.models import StatusCountDelta

COMPACT_AFTER = 500
# pg_try_advisory_xact_lock(classid, objid): this number names "status counts" locks.
_LOCK_CLASS = 0x5C0DE


def status_counts_supported() -> bool:
    """The triggers exist on PostgreSQL only (SQLite counts the rows)."""
    return connection.vendor == "postgresql"


# The table name below comes from the model's metadata; every value is a parameter.


def status_counts_read(*, company_id: int) -> tuple[dict[str, int], int]:
    """(rows per status, number of delta rows summed) for one company."""
    table = StatusCountDelta._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, SUM(n), COUNT(*) FROM {table} WHERE company_id = %s GROUP BY status",  # noqa: S608
            [company_id],
        )
        rows = cursor.fetchall()
    return {status: int(total) for status, total, _ in rows}, sum(int(r[2]) for r in rows)


def status_counts_compact(*, company_id: int) -> bool:
    """Fold a company's delta rows into one row per status; False when another compaction
    holds the company's lock."""
    table = StatusCountDelta._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, company_id % 2**31]
        )
        (locked,) = cursor.fetchone() or (False,)
        if not locked:
            return False
        cursor.execute(
            f"WITH gone AS (DELETE FROM {table} WHERE company_id = %s RETURNING status, n) "  # noqa: S608
            f"INSERT INTO {table} (company_id, status, n) "
            "SELECT %s, status, SUM(n) FROM gone GROUP BY status HAVING SUM(n) <> 0",
            [company_id, company_id],
        )
    return True
