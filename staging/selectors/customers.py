"""QBO customers and jobs for the mapping drop-downs and the Manual Mapping picker, from the
company's customer cache (never a QBO call in a request).
"""

from __future__ import annotations

from dataclasses import dataclass

from integrations.models import Company, QboCustomer
from staging.models import StagedProject
from staging.selectors.filters import MAX_SEARCH_LENGTH, without_nul

CUSTOMER_OPTIONS_LIMIT = 20


def _customer_search(text: str) -> str:
    # search_name is display_name.casefold() (written by the cache refresh).
    return " ".join(without_nul(text).split())[:MAX_SEARCH_LENGTH].casefold()


def qbo_customer_options(
    *, company: Company, q: str, limit: int = CUSTOMER_OPTIONS_LIMIT
) -> list[QboCustomer]:
    """Active top-level customers for the customer drop-down. The (company, is_job, active,
    search_name) index serves both the filter and the order, so LIMIT stops early."""
    customers = QboCustomer.objects.filter(
        company=company, is_job=False, active=True, deleted_in_qbo=False
    )
    text = _customer_search(q)
    if text:
        customers = customers.filter(search_name__contains=text)
    return list(customers.order_by("search_name", "id")[:limit])


@dataclass(frozen=True)
class JobOption:
    """A QBO sub-customer in the Manual Mapping picker, and the project that holds it (a job
    stands for one project only, so such a job is shown but cannot be chosen)."""

    job: QboCustomer
    held_by: StagedProject | None


def qbo_job_options(
    *, company: Company, project: StagedProject, q: str, limit: int = CUSTOMER_OPTIONS_LIMIT
) -> list[JobOption]:
    """QBO sub-customers for Manual Mapping: the jobs under the project's customer, or every
    job when no customer is mapped yet."""
    jobs = QboCustomer.objects.filter(company=company, is_job=True, deleted_in_qbo=False)
    if project.qbo_customer is not None:
        jobs = jobs.filter(parent_qbo_id=project.qbo_customer.qbo_id)
    text = _customer_search(q)
    if text:
        jobs = jobs.filter(search_name__contains=text)
    found = list(jobs.order_by("search_name", "id")[:limit])
    holders = {
        holder.qbo_record_id: holder
        for holder in StagedProject.objects.filter(
            company=company, qbo_record_id__in=[job.qbo_id for job in found]
        )
        .exclude(pk=project.pk)
        .only("pk", "qbo_record_id", "number", "name")
    }
    return [JobOption(job, holders.get(job.qbo_id)) for job in found]


def qbo_job_for_project(
    *, company: Company, project: StagedProject, qbo_customer_id: int
) -> QboCustomer | None:
    jobs = QboCustomer.objects.filter(company=company, is_job=True, pk=qbo_customer_id)
    if project.qbo_customer is not None:
        jobs = jobs.filter(parent_qbo_id=project.qbo_customer.qbo_id)
    return jobs.first()


def qbo_job_search(*, company: Company, q: str, limit: int = 10) -> list[QboCustomer]:
    """Sub-customers (jobs) whose name contains ``q``, for the customer picker: they cannot
    be a project's customer, so the picker shows them with their parent path and a way to
    Manual Mapping instead."""
    text = _customer_search(q)
    if not text:
        return []
    jobs = QboCustomer.objects.filter(
        company=company, is_job=True, deleted_in_qbo=False, search_name__contains=text
    )
    return list(jobs.order_by("search_name", "id")[:limit])
