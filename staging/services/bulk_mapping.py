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
from dataclasses import dataclass, field
from itertools import groupby

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.models import Company
from staging.models import EventKind, StagedProject
from staging.services.events import event_new, events_write
from staging.services.mapping import parent_customer, status_after_mapping
from staging.services.suggestions import EXACT, Suggestion, client_key, client_suggestions

CHOSEN = "chosen"

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

    @property
    def selected(self) -> int:
        return self.to_map + self.without_suggestion + self.already_mapped


@dataclass(frozen=True)
class BulkMapResult:
    mapped: int
    customers: int
    without_suggestion: int
    skipped: int  # mapped already, before or during the click

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
        return text + (": " + "; ".join(extras) if extras else "") + "."


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


@transaction.atomic
def projects_map_selected(
    *,
    company: Company,
    projects: QuerySet[StagedProject],
    actor: Actor,
    customer_id: int | None = None,
) -> BulkMapResult:
    """Map every selected unmapped project permanently: to its suggested customer (those
    without one stay unmapped), or all of them to ``customer_id``."""
    plan = bulk_map_plan(company=company, projects=projects, customer_id=customer_id)
    now = timezone.now()
    by_customer = sorted(plan.assignments.items(), key=lambda item: item[1].customer_id)
    mapped: list[StagedProject] = []
    for customer_id, items in groupby(by_customer, key=lambda item: item[1].customer_id):
        pks = [pk for pk, _s in items]
        claimable = StagedProject.objects.filter(
            company=company, pk__in=pks, qbo_customer__isnull=True
        )
        claimed = list(
            claimable.select_for_update(of=("self",)).only(
                "pk", "company_id", "problems", "status", "status_reason", "client_name"
            )
        )
        StagedProject.objects.filter(pk__in=[p.pk for p in claimed]).update(
            qbo_customer_id=customer_id, mapped_by=actor_user(actor), mapped_at=now, updated_at=now
        )
        mapped.extend(claimed)
    _statuses_after_mapping(mapped)
    events_write(
        event_new(
            project=project,
            kind=EventKind.MAPPED,
            summary=(
                f"Mapped to QBO customer “{plan.assignments[project.pk].display_name}” "
                "(permanent; Map selected)"
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
        skipped=plan.already_mapped + plan.to_map - len(mapped),
    )


def _statuses_after_mapping(projects: list[StagedProject]) -> None:
    """Each row's status as one mapping gives it, one UPDATE per distinct outcome."""
    outcomes: dict[tuple[str, str], list[int]] = defaultdict(list)
    for project in projects:
        after = status_after_mapping(project)
        if after != (project.status, project.status_reason):
            outcomes[after].append(project.pk)
    for (status, reason), pks in outcomes.items():
        StagedProject.objects.filter(pk__in=pks).update(status=status, status_reason=reason)
