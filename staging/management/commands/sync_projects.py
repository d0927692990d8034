"""`manage.py sync_projects --company SLUG --as USER (--status S | --search TEXT | --ids …)`:
the Projects tab's Sync to QBO for scripts. Queues the rows for the workers, with the same
rules as the button (only mapped rows without problems go), and prints what it did."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from staging.management.selection import (
    add_selection_arguments,
    company_and_actor,
    selected_projects,
)
from staging.sync.queue import projects_enqueue_sync


class Command(BaseCommand):
    help = "Queue staged projects for QuickBooks, as Sync to QBO does."

    def add_arguments(self, parser: CommandParser) -> None:
        add_selection_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        company, actor = company_and_actor(options)
        projects = selected_projects(company, options)
        summary = projects_enqueue_sync(company=company, projects=projects, actor=actor)
        style = self.style.SUCCESS if summary.queued else self.style.WARNING
        self.stdout.write(style(summary.describe()))
