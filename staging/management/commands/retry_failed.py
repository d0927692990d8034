"""`manage.py retry_failed --company SLUG --as USER [--search TEXT]`: the Projects tab's
Retry all failed for scripts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from staging.management.selection import add_selection_arguments, company_and_actor
from staging.selectors import project_filters_from, projects_matching
from staging.sync.queue import projects_retry_failed


class Command(BaseCommand):
    help = "Retry every Failed project (matching --search), as Retry all failed does."

    def add_arguments(self, parser: CommandParser) -> None:
        add_selection_arguments(parser, statuses=False)

    def handle(self, *args: Any, **options: Any) -> None:
        company, actor = company_and_actor(options)
        filters = project_filters_from({"q": options["search"]})
        projects = projects_matching(company=company, filters=filters)
        summary = projects_retry_failed(company=company, projects=projects, actor=actor)
        if summary.queued:
            self.stdout.write(self.style.SUCCESS(f"Retrying {summary.queued:,} failed projects."))
        else:
            self.stdout.write(self.style.WARNING("No failed projects match."))
