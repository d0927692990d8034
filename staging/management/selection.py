"""What the Projects tab's bulk commands share: the company, the person the change is
recorded for (with the role the button needs), and the rows, chosen as in the tab (a status
chip and a search, or project ids)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.db.models import QuerySet

from integrations.actors import Actor
from integrations.models import Company, Membership, Role
from staging.models import StagedProject, SyncStatus
from staging.selectors import project_filters_from, projects_matching

User = get_user_model()


def add_selection_arguments(parser: CommandParser, *, statuses: bool = True) -> None:
    parser.add_argument("--company", required=True, help="the company's slug")
    parser.add_argument(
        "--as",
        dest="username",
        required=True,
        help="the user the change is recorded for; needs the Operator role in the company",
    )
    if statuses:
        parser.add_argument("--status", choices=SyncStatus.values, help="a status chip")
        parser.add_argument("--ids", nargs="+", type=int, metavar="ID", help="staged project ids")
    parser.add_argument("--search", default="", help="the tab's search: name, number or client")


def company_and_actor(options: dict[str, Any]) -> tuple[Company, Actor]:
    company = Company.objects.filter(slug=options["company"]).first()
    if company is None:
        raise CommandError(f"No company with slug {options['company']!r}.")
    user = User.objects.filter(username=options["username"]).first()
    membership = Membership.objects.filter(user=user, company=company).first() if user else None
    if membership is None or not membership.has_role(Role.OPERATOR):
        raise CommandError(
            f"{options['username']!r} is not an Operator or Admin of {company.name}: "
            "the same role the Projects tab asks for."
        )
    return company, user


def selected_projects(company: Company, options: dict[str, Any]) -> QuerySet[StagedProject]:
    filters = project_filters_from({"status": options.get("status"), "q": options["search"]})
    projects = projects_matching(company=company, filters=filters)
    ids = options.get("ids")
    if ids:
        projects = projects.filter(pk__in=ids)
    elif not (filters.status or filters.q):
        raise CommandError("Choose the projects: --status, --search or --ids.")
    return projects
