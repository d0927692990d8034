from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from integrations.models import Company, LinarcConnection, Membership, Role, SyncRules

DEMO_COMPANY_SLUG = "summit-ridge"
DEMO_LINARC_API_KEY = "demo-linarc-key"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str


DEMO_LOGINS = (
    DemoLogin(Role.ADMIN.label, "admin", "linarc-demo"),
    DemoLogin(Role.OPERATOR.label, "operator", "linarc-demo"),
    DemoLogin(Role.VIEWER.label, "viewer", "linarc-demo"),
)
_ROLE_BY_USERNAME = {"admin": Role.ADMIN, "operator": Role.OPERATOR, "viewer": Role.VIEWER}


@transaction.atomic
def company_create(*, name: str, slug: str) -> Company:
    company, _ = Company.objects.get_or_create(slug=slug, defaults={"name": name})
    SyncRules.objects.get_or_create(company=company)
    return company


@transaction.atomic
def demo_company_seed(*, linarc_base_url: str) -> list[DemoLogin]:
    company = company_create(name="Summit Ridge Builders", slug=DEMO_COMPANY_SLUG)
    LinarcConnection.objects.get_or_create(
        company=company,
        defaults={"base_url": linarc_base_url, "api_key": DEMO_LINARC_API_KEY},
    )
    user_model = get_user_model()
    for login in DEMO_LOGINS:
        user, created = user_model.objects.get_or_create(username=login.username)
        if created:
            user.set_password(login.password)
            user.first_name = login.username.title()
            user.last_name = "Demo"
            user.is_staff = login.username == "admin"
            user.is_superuser = login.username == "admin"
            user.save()
        Membership.objects.update_or_create(
            user=user, company=company, defaults={"role": _ROLE_BY_USERNAME[login.username]}
        )
    return list(DEMO_LOGINS)
