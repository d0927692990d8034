"""`manage.py import_projects --company SLUG --mode new|all [--ids ID ...]`: the Import
drop-down for scripts. Runs synchronously in this process and prints the run's counts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import Company
from staging.imports.pages import import_run_execute
from staging.imports.runs import COUNT_KEYS, ImportRefused, import_run_create
from staging.models import RunKind, RunState

MODES = {"new": RunKind.IMPORT_NEW, "all": RunKind.IMPORT_ALL, "selected": RunKind.IMPORT_SELECTED}


class Command(BaseCommand):
    help = "Import projects from Linarc into staging (Import New / Import All / Import Selected)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--company", required=True, help="the company's slug")
        parser.add_argument(
            "--mode",
            choices=sorted(MODES),
            help="new: only projects not staged yet; all: every project, updating staged ones "
            "and flagging deleted ones; selected: the --ids (the default when --ids is given)",
        )
        parser.add_argument("--ids", nargs="+", metavar="LINARC_ID", help="Linarc project ids")

    def handle(self, *args: Any, **options: Any) -> None:
        company = Company.objects.filter(slug=options["company"]).first()
        if company is None:
            raise CommandError(f"No company with slug {options['company']!r}.")
        ids: list[str] | None = options["ids"]
        mode = options["mode"] or ("selected" if ids else None)
        if mode is None:
            raise CommandError("Give --mode new|all, or --ids to import selected projects.")
        if ids and mode != "selected":
            raise CommandError("--ids imports the selected projects; leave out --mode or use it.")
        try:
            run = import_run_create(company=company, kind=MODES[mode], actor=None, linarc_ids=ids)
        except ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        run = import_run_execute(run_id=run.pk)
        counts = ", ".join(f"{key} {run.counts.get(key, 0)}" for key in COUNT_KEYS)
        if run.state != RunState.DONE:
            raise CommandError(f"{run.get_kind_display()} failed: {run.error} ({counts})")
        self.stdout.write(self.style.SUCCESS(f"{run.get_kind_display()} done: {counts}"))
