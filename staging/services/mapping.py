"""The permanent customer mapping, suggestions, and Manual Mapping to an existing QBO job.

Mapping is write-once. The service claims it with a conditional UPDATE (`qbo_customer IS
NULL`), so two browsers racing get one winner and one clear 409; a database trigger
(staging/triggers.py) refuses any later change from any other path.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.actors import Actor, actor_user
from integrations.errors import Conflict, Refused
from integrations.models import Company, QboCustomer
from integrations.services.qbo_customers import qbo_customer_create
from staging.models import EventKind, StagedProject, SyncStatus
from staging.services.events import event_record
from staging.services.suggestions import client_key, client_suggestions


class MappingError(Refused):
    """The chosen customer cannot be used (HTTP 422)."""


class MappingConflict(MappingError, Conflict):
    """The project already has its permanent customer (HTTP 409)."""


class QboJobTaken(MappingConflict):
    """The QBO job is already linked to another project (HTTP 409): one job, one project."""

    def __init__(self, *, job_name: str, job_id: str, owner: StagedProject) -> None:
        super().__init__(
            f"The QuickBooks job “{job_name}” (Id {job_id}) already belongs to project "
            f"“{owner}”. One QuickBooks job can stand for one project only: "
            "choose another job, or Sync to QBO to create this project's own."
        )
        self.owner = owner


def qbo_job_owner(
    *, company: Company, qbo_record_id: str, exclude_project_id: int | None = None
) -> StagedProject | None:
    """The staged project linked to this QBO record, if any (the database allows one)."""
    if not qbo_record_id:
        return None
    owners = StagedProject.objects.filter(company=company, qbo_record_id=qbo_record_id)
    if exclude_project_id is not None:
        owners = owners.exclude(pk=exclude_project_id)
    return owners.only("pk", "number", "name", "linarc_id").first()


@dataclass(frozen=True)
class CustomerSuggestion:
    customer: QboCustomer
    reason: str


def parent_customer(*, company: Company, qbo_customer_id: int) -> QboCustomer:
    customer = QboCustomer.objects.filter(company=company, pk=qbo_customer_id).first()
    if customer is None:
        raise MappingError("That QuickBooks customer is not in this company's customer list.")
    if customer.is_job:
        raise MappingError(
            f"“{customer.display_name}” is a sub-customer; choose a top-level customer."
        )
    if not customer.active or customer.deleted_in_qbo:
        raise MappingError(f"“{customer.display_name}” is inactive in QuickBooks.")
    owner = qbo_job_owner(company=company, qbo_record_id=customer.qbo_id)
    if owner is not None:
        # The cache can lag behind QBO (a job listed before it got its parent): a record that
        # is a project's job is never another project's customer.
        raise MappingError(
            f"“{customer.display_name}” is the QuickBooks job of project “{owner}”; "
            "choose a top-level customer."
        )
    return customer


def status_after_mapping(project: StagedProject) -> tuple[str, str]:
    if project.problems:
        return SyncStatus.NEEDS_ACTION, "; ".join(project.problems)
    if project.status in (SyncStatus.NEEDS_ACTION, ""):
        return SyncStatus.NEEDS_SYNC, ""
    return project.status, project.status_reason


@transaction.atomic
def project_map_customer(
    *, company: Company, project_id: int, qbo_customer_id: int, actor: Actor
) -> StagedProject:
    customer = parent_customer(company=company, qbo_customer_id=qbo_customer_id)
    now = timezone.now()
    claimed = StagedProject.objects.filter(
        pk=project_id, company=company, qbo_customer__isnull=True
    ).update(qbo_customer=customer, mapped_by=actor_user(actor), mapped_at=now, updated_at=now)
    project = StagedProject.objects.select_related("qbo_customer").get(
        pk=project_id, company=company
    )
    if not claimed:
        assert project.qbo_customer is not None
        raise MappingConflict(
            f"This project is already mapped to “{project.qbo_customer.display_name}”; "
            "the mapping is permanent."
        )
    project.status, project.status_reason = status_after_mapping(project)
    project.save(update_fields=["status", "status_reason"])
    event_record(
        project=project,
        kind=EventKind.MAPPED,
        summary=f"Mapped to QBO customer “{customer.display_name}” (permanent)",
        actor=actor,
        details={"qbo_customer_id": customer.qbo_id, "display_name": customer.display_name},
    )
    return project


def customer_suggestions(*, project: StagedProject, limit: int = 3) -> list[CustomerSuggestion]:
    """For the picker's top: the project's best suggestion (staging.services.suggestions)
    with its reason, then customers whose name contains the Linarc client's. Shown, never
    applied."""
    key = client_key(project.client_name)
    if not key or project.qbo_customer_id:
        return []
    suggestions: list[CustomerSuggestion] = []
    best = client_suggestions(company_id=project.company_id, client_names=[project.client_name])
    if key in best:
        customer = QboCustomer.objects.filter(pk=best[key].customer_id).first()
        if customer is not None:
            suggestions.append(CustomerSuggestion(customer, best[key].reason))
    containing = QboCustomer.objects.filter(
        company_id=project.company_id,
        is_job=False,
        active=True,
        deleted_in_qbo=False,
        search_name__contains=key,
    ).exclude(pk__in=[s.customer.pk for s in suggestions])
    for customer in containing.order_by("search_name", "pk")[: limit - len(suggestions)]:
        suggestions.append(
            CustomerSuggestion(customer, f"Contains the Linarc client name “{project.client_name}”")
        )
    return suggestions[:limit]


def customer_to_create(*, project: StagedProject) -> str:
    """The Linarc client's name when no cached customer holds it (active or not, job or
    not): the picker offers to create it in QuickBooks. "" otherwise."""
    key = client_key(project.client_name)
    if not key or project.qbo_customer_id:
        return ""
    if QboCustomer.objects.filter(company_id=project.company_id, search_name=key).exists():
        return ""
    return " ".join(project.client_name.split())


def project_create_customer_and_map(
    *, company: Company, project_id: int, actor: Actor
) -> tuple[StagedProject, bool]:
    """Create the project's Linarc client as a customer in QuickBooks, then map the project
    to it permanently; returns the project and whether QuickBooks already had a customer of
    that exact name (then it is mapped to that one and nothing is created)."""
    project = StagedProject.objects.select_related("qbo_customer").get(
        pk=project_id, company=company
    )
    if project.qbo_customer is not None:
        raise MappingConflict(
            f"This project is already mapped to “{project.qbo_customer.display_name}”; "
            "the mapping is permanent."
        )
    created = qbo_customer_create(company=company, display_name=project.client_name)
    mapped = project_map_customer(
        company=company, project_id=project.pk, qbo_customer_id=created.customer.pk, actor=actor
    )
    return mapped, created.existed


def _sub_customer(*, company: Company, qbo_customer_id: int) -> QboCustomer:
    job = QboCustomer.objects.filter(company=company, pk=qbo_customer_id, is_job=True).first()
    if job is None:
        raise MappingError("Choose an existing QuickBooks sub-customer (job).")
    return job


def _job_free_for(*, company: Company, job: QboCustomer, project: StagedProject) -> None:
    owner = qbo_job_owner(company=company, qbo_record_id=job.qbo_id, exclude_project_id=project.pk)
    if owner is not None:
        raise QboJobTaken(job_name=job.display_name, job_id=job.qbo_id, owner=owner)


def manual_map_preview(
    *, company: Company, project: StagedProject, qbo_customer_id: int
) -> list[str]:
    job = _sub_customer(company=company, qbo_customer_id=qbo_customer_id)
    _job_free_for(company=company, job=job, project=project)
    lines = [f"Link this project to the QuickBooks job “{job.display_name}” (Id {job.qbo_id})."]
    if project.qbo_record_id and project.qbo_record_id != job.qbo_id:
        lines.append(
            f"It is linked today to QBO Id {project.qbo_record_id}; that link is replaced."
        )
    if project.qbo_customer is None:
        parent = QboCustomer.objects.filter(company=company, qbo_id=job.parent_qbo_id).first()
        name = parent.display_name if parent else f"Id {job.parent_qbo_id}"
        lines.append(f"The project's customer becomes “{name}”, permanently.")
    lines.append("The next Sync to QBO updates that job instead of creating a new one.")
    return lines


@transaction.atomic
def project_manual_map(
    *, company: Company, project_id: int, qbo_customer_id: int, actor: Actor
) -> StagedProject:
    job = _sub_customer(company=company, qbo_customer_id=qbo_customer_id)
    project = (
        StagedProject.objects.select_for_update(of=("self",))
        .select_related("qbo_customer")
        .get(pk=project_id, company=company)
    )
    if project.status == SyncStatus.QUEUED:
        raise MappingError("This project is being synced right now; try again when it settles.")
    _job_free_for(company=company, job=job, project=project)
    if project.qbo_customer is None:
        parent = QboCustomer.objects.filter(
            company=company, qbo_id=job.parent_qbo_id, is_job=False
        ).first()
        if parent is None:
            raise MappingError("The job's parent customer is not in the customer list.")
        project = project_map_customer(
            company=company, project_id=project.pk, qbo_customer_id=parent.pk, actor=actor
        )
    assert project.qbo_customer is not None
    if job.parent_qbo_id != project.qbo_customer.qbo_id:
        raise MappingError(
            f"“{job.display_name}” is not under this project's customer "
            f"“{project.qbo_customer.display_name}”."
        )
    previous = project.qbo_record_id
    project.qbo_record_id = job.qbo_id
    project.qbo_sync_token = job.sync_token
    project.qbo_display_name = job.display_name
    project.last_synced_hash = ""  # the job's fields are not ours yet: the next sync updates it
    if not project.problems:
        project.status, project.status_reason = SyncStatus.NEEDS_SYNC, ""
    project.updated_at = timezone.now()
    try:
        # The unique constraint one_project_per_qbo_job settles a race with another
        # Manual Mapping or a sync adopting the same job since the check above.
        with transaction.atomic():
            project.save()
    except IntegrityError:
        owner = qbo_job_owner(
            company=company, qbo_record_id=job.qbo_id, exclude_project_id=project.pk
        )
        if owner is None:
            raise
        raise QboJobTaken(job_name=job.display_name, job_id=job.qbo_id, owner=owner) from None
    event_record(
        project=project,
        kind=EventKind.MANUALLY_MAPPED,
        summary=f"Linked to existing QBO job “{job.display_name}” (Id {job.qbo_id})",
        actor=actor,
        details={"qbo_record_id": job.qbo_id, "previous_qbo_record_id": previous},
    )
    return project
