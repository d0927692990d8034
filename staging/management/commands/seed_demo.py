"""Create the demo company and logins of the embedded default. Safe to run again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.services.companies import DemoLogin, demo_company_seed


class Command(BaseCommand):
    help = "Create (or refresh) the demo company, its logins and its Linarc connection."

    def handle(self, *args: Any, **options: Any) -> None:
        logins: list[DemoLogin] = demo_company_seed(
            linarc_base_url=settings.LINARC_DEFAULT_BASE_URL
        )
        self.stdout.write(self.style.SUCCESS("Demo company ready. Log in with:"))
        for login in logins:
            self.stdout.write(
                f"  {login.role:<22} username {login.username:<10} password {login.password}"
            )
