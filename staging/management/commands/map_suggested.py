"""`manage.py map_suggested --company SLUG --as USER (--status S | --search TEXT | --ids …)
[--yes]`: the Projects tab's Map selected… for scripts. Without --yes it prints what would
become permanent and changes nothing; with --yes it maps, permanently."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from staging.management.selection import (
    add_selection_arguments,
    company_and_actor,
    selected_projects,
)
from staging.services.bulk_mapping import bulk_map_plan, projects_map_selected


class Command(BaseCommand):
    help = "Map the chosen projects to their suggested QBO customers (permanent; --yes to do it)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_selection_arguments(parser)
        parser.add_argument(
            "--yes", action="store_true", help="map them; without it, only show the plan"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        company, actor = company_and_actor(options)
        projects = selected_projects(company, options)
        if not options["yes"]:
            plan = bulk_map_plan(company=company, projects=projects)
            self.stdout.write(f"{plan.to_map:,} projects would be mapped permanently:")
            for group in plan.groups:
                note = " (not the Linarc client's name)" if group.differs else ""
                self.stdout.write(f"  {group.rows:>6,}  {group.display_name}: {group.reason}{note}")
            self.stdout.write(
                f"{plan.without_suggestion:,} without a suggestion stay unmapped; "
                f"{plan.already_mapped:,} already mapped are skipped. "
                "Run again with --yes to map them."
            )
            return
        result = projects_map_selected(company=company, projects=projects, actor=actor)
        style = self.style.SUCCESS if result.mapped else self.style.WARNING
        self.stdout.write(style(result.describe()))
