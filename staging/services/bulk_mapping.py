"""*Map selected…*: many projects mapped to their suggested customers in one confirmed step.

The plan (what would become permanent) and the mapping read the selection the same way,
so the confirmation shows exactly what the click does: the rows to map, counted per
customer, the rows without a suggestion (left unmapped) and the rows already mapped
(skipped, a mapping is permanent). Each customer's rows are claimed with one conditional
UPDATE (``qbo_customer IS NULL``), so a row someone mapped meanwhile keeps its customer and
is counted as skipped; the history gets one *Mapped* entry per row, written together.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction
from django.db.models import (
    Case,
    CharField,
    Field,
    IntegerField,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.errors import Refused
from integrations.models import Company
from integrations.services.qbo import QboNotConnected
from integrations.services.qbo_customers import qbo_customer_create
from staging.models import EventKind, StagedProject
from staging.services.events import event_new, events_write
from staging.services.mapping import MappingError, parent_customer, status_after_mapping
from staging.services.suggestions import EXACT, Suggestion, client_key, client_suggestions

CHOSEN = "chosen"
# Each creation is one or two QuickBooks requests inside the click's request: a few seconds
# for 20 at QuickBooks' usual pace.
MAX_CREATED_PER_CLICK = 20

EXAMPLES = 5


@dataclass(frozen=True)
class CustomerGroup:
    display_name: str
    rows: int
    reason: str  # why the customer was suggested (of its first row)
    differs: bool  # the customer's name is not the Linarc client's


@dataclass
class BulkMapPlan:
    groups: list[CustomerGroup] = field(default_factory=list)  # most rows first
    to_map: int = 0
    without_suggestion: int = 0
    already_mapped: int = 0
    clients_without: list[str] = field(default_factory=list)  # a few, for the dialog
    assignments: dict[int, Suggestion] = field(default_factory=dict)  # project pk → customer
    # Clients without a suggestion, by name: the rows *Map selected…* can map to a customer
    # it creates in QuickBooks for each.
    missing: dict[str, list[int]] = field(default_factory=dict)

    @property
    def selected(self) -> int:
        return self.to_map + self.without_suggestion + self.already_mapped

    @property
    def can_create(self) -> bool:
        return 0 < len(self.missing) <= MAX_CREATED_PER_CLICK

    @property
    def missing_rows(self) -> int:
        return sum(len(pks) for pks in self.missing.values())


@dataclass(frozen=True)
class BulkMapResult:
    mapped: int
    customers: int
    without_suggestion: int
    skipped: int  # mapped already, before or during the click
    created: int = 0  # customers created in QuickBooks for clients it did not have
    notes: tuple[str, ...] = ()  # what could not be done, and why

    def describe(self) -> str:
        if not self.mapped:
            text = "No project was mapped"
        else:
            text = (
                f"Mapped {self.mapped:,} project{'s' if self.mapped != 1 else ''} permanently "
                f"to {self.customers:,} customer{'s' if self.customers != 1 else ''}"
            )
        extras = []
        if self.without_suggestion:
            extras.append(f"{self.without_suggestion:,} without a suggestion were left unmapped")
        if self.skipped:
            extras.append(f"{self.skipped:,} already mapped were skipped")
        if self.created:
            extras.insert(0, f"{self.created:,} new customers were created in QuickBooks")
        text += (": " + "; ".join(extras) if extras else "") + "."
        if self.notes:
            text += " " + " ".join(self.notes)
        return text


def bulk_map_plan(
    *, company: Company, projects: QuerySet[StagedProject], customer_id: int | None = None
) -> BulkMapPlan:
    """What *Map selected…* would make permanent, without writing anything: each unmapped
    row to its suggested customer, or every unmapped row to ``customer_id`` (refused with
    :class:`MappingError` when that customer cannot be used)."""
    rows = list(projects.filter(company=company).values_list("pk", "client_name", "qbo_customer"))
    plan = BulkMapPlan(already_mapped=sum(1 for _pk, _name, customer in rows if customer))
    unmapped = [(pk, name) for pk, name, customer in rows if customer is None]
    if customer_id is None:
        by_key = client_suggestions(company_id=company.pk, client_names={n for _, n in unmapped})
    else:
        by_key = _chosen(company, customer_id, client_names={n for _, n in unmapped})
    without: Counter[str] = Counter()
    for pk, name in unmapped:
        suggestion = by_key.get(client_key(name))
        if suggestion is None:
            without[name.strip() or "(no client)"] += 1
            if client_key(name) and customer_id is None:
                plan.missing.setdefault(" ".join(name.split()), []).append(pk)
        else:
            plan.assignments[pk] = suggestion
    plan.to_map = len(plan.assignments)
    plan.without_suggestion = sum(without.values())
    plan.clients_without = [name for name, _n in without.most_common(EXAMPLES)]
    # One line per customer and kind of evidence: rows whose client has the customer's name
    # apart from those that do not, which the confirmation asks to check.
    per_customer: dict[tuple[int, str], list[Suggestion]] = defaultdict(list)
    for suggestion in plan.assignments.values():
        per_customer[(suggestion.customer_id, suggestion.kind)].append(suggestion)
    plan.groups = sorted(
        (
            CustomerGroup(s[0].display_name, len(s), s[0].reason, s[0].differs_from_client)
            for s in per_customer.values()
        ),
        key=lambda g: (-g.rows, g.display_name.casefold(), g.differs),
    )
    return plan


def _chosen(company: Company, customer_id: int, client_names: set[str]) -> dict[str, Suggestion]:
    """Every client name → the one customer chosen for all of them (exact where the names
    agree, so only the others are marked as differing)."""
    customer = parent_customer(company=company, qbo_customer_id=customer_id)
    chosen = {}
    for name in client_names:
        same = client_key(name) == client_key(customer.display_name)
        chosen[client_key(name)] = Suggestion(
            customer.pk,
            customer.display_name,
            EXACT if same else CHOSEN,
            "Same name as the Linarc client" if same else "Chosen for every selected project",
            100,
            customer.qbo_id,
        )
    return chosen


def projects_map_selected(
    *,
    company: Company,
    projects: QuerySet[StagedProject],
    actor: Actor,
    customer_id: int | None = None,
    create_missing: bool = False,
) -> BulkMapResult:
    """Map every selected unmapped project permanently: to its suggested customer (those
    without one stay unmapped, unless ``create_missing`` creates a customer in QuickBooks
    for each of their clients first), or all of them to ``customer_id``."""
    plan = bulk_map_plan(company=company, projects=projects, customer_id=customer_id)
    created: list[str] = []
    not_created: list[str] = []
    if create_missing and plan.missing:
        if not plan.can_create:
            raise MappingError(
                f"{len(plan.missing):,} Linarc clients have no QuickBooks customer; Map "
                f"selected… creates at most {MAX_CREATED_PER_CLICK} at a time. Narrow the "
                "selection with the search, or create them from each row's picker."
            )
        # QuickBooks first, outside the transaction that maps: a customer created there
        # stays created (and cached) whatever happens to the mapping.
        created, not_created = _create_missing(company, plan)
    result = _map_planned(company=company, plan=plan, actor=actor)
    notes = ("Not created: " + " ".join(not_created),) if not_created else ()
    return replace(result, created=len(created), notes=notes)


def projects_map_pairs(*, company: Company, pairs: dict[int, int], actor: Actor) -> BulkMapResult:
    """Map projects to the customers a person listed (a CSV file, checked and confirmed):
    project pk → customer pk. A customer that can no longer be used (made inactive since
    the preview) leaves its rows unmapped and is named; rows mapped meanwhile are skipped."""
    plan = BulkMapPlan()
    refused: list[str] = []
    for customer_id in sorted(set(pairs.values())):
        try:
            customer = parent_customer(company=company, qbo_customer_id=customer_id)
        except MappingError as exc:
            refused.append(str(exc))
            continue
        suggestion = Suggestion(
            customer.pk, customer.display_name, CHOSEN, "From a CSV file", 100, customer.qbo_id
        )
        plan.assignments.update(
            {project: suggestion for project, chosen in pairs.items() if chosen == customer_id}
        )
    result = _map_planned(company=company, plan=plan, actor=actor, source="CSV file")
    notes = ("Not mapped: " + " ".join(refused),) if refused else ()
    return replace(result, notes=notes)


def _create_missing(company: Company, plan: BulkMapPlan) -> tuple[list[str], list[str]]:
    """A customer in QuickBooks for each client without a suggestion; their rows are added
    to the plan. Returns the names created and the reasons of those that were not."""
    created, refused = [], []
    for name, pks in plan.missing.items():
        try:
            outcome = qbo_customer_create(company=company, display_name=name)
        except QboNotConnected as exc:
            refused.append(str(exc))
            break  # every other one would meet the same
        except Refused as exc:
            refused.append(str(exc))
            continue
        customer = outcome.customer
        reason = (
            "Same name as the Linarc client"
            if outcome.existed
            else "Created in QuickBooks for this Linarc client"
        )
        suggestion = Suggestion(
            customer.pk, customer.display_name, EXACT, reason, 100, customer.qbo_id
        )
        plan.assignments.update(dict.fromkeys(pks, suggestion))
        plan.without_suggestion -= len(pks)
        if not outcome.existed:
            created.append(customer.display_name)
    return created, refused


@transaction.atomic
def _map_planned(
    *, company: Company, plan: BulkMapPlan, actor: Actor, source: str = "Map selected"
) -> BulkMapResult:
    now = timezone.now()
    # One claim of every planned row that is still unmapped (a row mapped meanwhile keeps
    # its customer), then ONE UPDATE that gives each claimed row its customer and the status
    # a mapping gives it: CASEs over the customers and the few distinct outcomes, so 10,000
    # rows to 900 customers stay one statement (one per customer took 1.5 s more).
    mapped = list(
        StagedProject.objects.filter(
            company=company, pk__in=list(plan.assignments), qbo_customer__isnull=True
        )
        .select_for_update(of=("self",))
        .only("pk", "company_id", "problems", "status", "status_reason", "client_name")
    )
    if mapped:
        customer_rows: dict[int, list[int]] = defaultdict(list)
        status_rows: dict[str, list[int]] = defaultdict(list)
        reason_rows: dict[str, list[int]] = defaultdict(list)
        for project in mapped:
            customer_rows[plan.assignments[project.pk].customer_id].append(project.pk)
            status, reason = status_after_mapping(project)
            status_rows[status].append(project.pk)
            reason_rows[reason].append(project.pk)
        StagedProject.objects.filter(pk__in=[p.pk for p in mapped]).update(
            qbo_customer_id=_case(customer_rows, IntegerField()),
            status=_case(status_rows, CharField()),
            status_reason=_case(reason_rows, TextField()),
            mapped_by=actor_user(actor),
            mapped_at=now,
            updated_at=now,
        )
    events_write(
        event_new(
            project=project,
            kind=EventKind.MAPPED,
            summary=(
                f"Mapped to QBO customer “{plan.assignments[project.pk].display_name}” "
                f"(permanent; {source})"
            ),
            actor=actor,
            details={
                "qbo_customer_id": plan.assignments[project.pk].customer_id,
                "display_name": plan.assignments[project.pk].display_name,
                "suggestion": plan.assignments[project.pk].reason,
            },
            at=now,
        )
        for project in mapped
    )
    return BulkMapResult(
        mapped=len(mapped),
        customers=len({plan.assignments[p.pk].customer_id for p in mapped}),
        without_suggestion=plan.without_suggestion,
        skipped=plan.already_mapped + len(plan.assignments) - len(mapped),
    )


def _case(values: Mapping[Any, list[int]], field: Field[Any, Any]) -> Case:
    """``CASE WHEN id IN (…) THEN value …``: each row its value, in one statement."""
    return Case(*(When(pk__in=pks, then=Value(v)) for v, pks in values.items()), output_field=field)
