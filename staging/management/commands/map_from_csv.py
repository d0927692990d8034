"""`manage.py map_from_csv --company SLUG --as USER FILE [--yes]`: the Projects tab's Map from
CSV for scripts. Without --yes it prints each line's verdict and changes nothing; with --yes
it maps the lines marked ok, permanently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from staging.management.selection import company_and_actor
from staging.services.bulk_mapping import projects_map_pairs
from staging.services.csv_mapping import CsvRefused, csv_map_plan


class Command(BaseCommand):
    help = "Map projects to QBO customers from a CSV file (project_number, qbo_customer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--company", required=True, help="the company's slug")
        parser.add_argument(
            "--as",
            dest="username",
            required=True,
            help="the user the change is recorded for; needs the Operator role in the company",
        )
        parser.add_argument("file", type=Path, help="the CSV file")
        parser.add_argument("--yes", action="store_true", help="map; without it, only check")

    def handle(self, *args: Any, **options: Any) -> None:
        company, actor = company_and_actor(options)
        try:
            plan = csv_map_plan(company=company, data=options["file"].read_bytes())
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from exc
        except CsvRefused as exc:
            raise CommandError(str(exc)) from exc
        for line in plan.lines:
            if not line.ok or not options["yes"]:
                self.stdout.write(
                    f"line {line.line}: {line.number} → {line.customer_text}: {line.verdict}"
                )
        if not options["yes"]:
            self.stdout.write(
                f"{len(plan.ok_lines):,} of {len(plan.lines):,} lines can be mapped. "
                "Run again with --yes to map them."
            )
            return
        result = projects_map_pairs(company=company, pairs=plan.pairs, actor=actor)
        style = self.style.SUCCESS if result.mapped else self.style.WARNING
        self.stdout.write(style(result.describe()))
