"""Deletion detection: staged projects that a complete Linarc listing no longer holds are
flagged *Deleted in Linarc*, never removed (a staged row may be synced to QBO, and its
history must stay).

Memory does not grow with the account: the listing keeps one bit per staged row it saw
(:class:`SeenRows`), not a list of ids, and the company's rows are then walked by primary
key in slices.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from django.db import transaction
from django.utils import timezone

from integrations.actors import Actor
from integrations.models import Company
from staging.imports.rows import IMPORT_PAGE_SIZE
from staging.imports.writer import company_imports_lock
from staging.models import EventKind, StagedProject
from staging.services.events import event_new, events_write

DELETION_SCAN_SIZE = 5000  # staged ids read per query by deletion detection


class SeenRows:
    """The primary keys of the staged rows a listing saw, as a bitmap in 64 KiB blocks (one
    bit per key), for deletion detection.

    Holding every listed id in a set grew the worker by ~0.3 kB per project (+26 MB from
    10,000 to 100,000); a bitmap costs one bit per key, and keys of one company sit close
    together, so a 100,000-project account fits in one or two blocks. No row is written to
    mark it seen: a re-import of unchanged rows stays read-only.
    """

    _SHIFT = 19  # 2**19 keys per block = 64 KiB
    _MASK = (1 << _SHIFT) - 1

    def __init__(self) -> None:
        self._blocks: dict[int, bytearray] = {}

    def add(self, pk: int) -> None:
        block = self._blocks.get(pk >> self._SHIFT)
        if block is None:
            block = self._blocks[pk >> self._SHIFT] = bytearray(1 << (self._SHIFT - 3))
        offset = pk & self._MASK
        block[offset >> 3] |= 1 << (offset & 7)

    def update(self, pks: Iterable[int]) -> None:
        for pk in pks:
            self.add(pk)

    def __contains__(self, pk: object) -> bool:
        if not isinstance(pk, int):
            return False
        block = self._blocks.get(pk >> self._SHIFT)
        if block is None:
            return False
        offset = pk & self._MASK
        return bool(block[offset >> 3] & (1 << (offset & 7)))


def projects_flag_deleted(
    *, company: Company, seen: Container[int], actor: Actor = None, run_id: int | None = None
) -> int:
    """Flag staged projects Linarc no longer lists (``deleted_in_linarc``), never remove
    them: a staged row may be synced to QBO and its history must stay. Only a complete
    listing may call this (an interrupted one would flag projects it simply did not reach).

    ``seen``: the primary keys of the rows the listing staged or found unchanged. The
    company's rows are walked by primary key in slices, so memory does not grow with the
    account.
    """
    flagged = 0
    after = 0
    while True:
        pks = list(
            StagedProject.objects.filter(company=company, deleted_in_linarc=False, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:DELETION_SCAN_SIZE]
        )
        if not pks:
            return flagged
        after = pks[-1]
        missing = [pk for pk in pks if pk not in seen]
        for start in range(0, len(missing), IMPORT_PAGE_SIZE):
            flagged += _flag_deleted_chunk(
                company=company,
                pks=missing[start : start + IMPORT_PAGE_SIZE],
                actor=actor,
                run_id=run_id,
            )


def _flag_deleted_chunk(
    *, company: Company, pks: list[int], actor: Actor, run_id: int | None
) -> int:
    now = timezone.now()
    with transaction.atomic():
        company_imports_lock(company)
        rows = list(
            StagedProject.objects.select_for_update(no_key=True)
            .filter(pk__in=pks, deleted_in_linarc=False)
            .only("pk", "company_id")
        )
        StagedProject.objects.filter(pk__in=[p.pk for p in rows]).update(
            deleted_in_linarc=True, updated_at=now
        )
        events_write(
            [
                event_new(
                    project=project,
                    kind=EventKind.DELETED_IN_LINARC,
                    summary="Deleted in Linarc: no longer in Linarc's project list",
                    details={"run_id": run_id} if run_id else {},
                    actor=actor,
                    at=now,
                )
                for project in rows
            ],
            batch_size=IMPORT_PAGE_SIZE,
        )
    return len(rows)
