"""One matrix over every URL of the product: login, company scoping and role checks.

Adding a URL without adding it to URL_POLICY fails `test_every_url_is_covered`, so no
endpoint ships without its permission test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from integrations.models import Role
from staging.models import Run, RunKind
from tests.conftest import Personas
from tests.factories import StagedProjectFactory
from tests.policies import imports as policies_imports
from tests.policies import projects as policies_projects
from tests.policies import qbo as policies_qbo
from tests.policies import rules as policies_rules
from tests.policy import Policy

URL_POLICY: dict[str, Policy] = {
    "root": Policy(role=None),
    "healthz": Policy(role=None),
    "login": Policy(role=None),
    "logout": Policy(method="post", role=None),
    "switch_company": Policy(method="post", role=Role.VIEWER),
    # No login: authenticated by the intuit-signature HMAC (tests/integrations/test_webhooks.py)
    "qbo_webhook": Policy(method="post", role=None),
    # No login: a bearer token (METRICS_TOKEN; tests/staging/test_metrics.py), 404 without one
    "metrics": Policy(role=None),
    "portfolio:home": Policy(),
    "portfolio:integration": Policy(),
    "portfolio:erp": Policy(),
}
for _module in (policies_projects, policies_imports, policies_qbo, policies_rules):
    URL_POLICY.update(_module.POLICY)
EXEMPT_NAMESPACES = {"admin"}


def _all_url_names(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    resolver = resolver or get_resolver()
    names: list[str] = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace in EXEMPT_NAMESPACES:
                continue
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            names.extend(_all_url_names(entry, namespace))
        elif isinstance(entry, URLPattern) and entry.name:
            names.append(prefix + entry.name)
    return names


# Each object kind the URLs name, built in a given company; areas add theirs here.
OBJECT_BUILDERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "project": lambda company: {"pk": StagedProjectFactory(company=company).pk},
    "refresh_run": lambda company: {
        "pk": Run.objects.create(company=company, kind=RunKind.REFRESH_CUSTOMERS).pk
    },
    "run": lambda company: {"pk": Run.objects.create(company=company, kind=RunKind.IMPORT_ALL).pk},
}


def _build_kwargs(policy: Policy, personas: Personas, *, own: bool) -> dict[str, Any]:
    kwargs = dict(policy.kwargs)
    if policy.obj is None:
        return kwargs
    company = personas.company if own else personas.other_company
    builder = OBJECT_BUILDERS.get(policy.obj)
    assert builder is not None, f"No builder for object kind {policy.obj!r}"
    return {**kwargs, **builder(company)}


def test_every_url_is_covered() -> None:
    missing = sorted(set(_all_url_names()) - set(URL_POLICY))
    assert not missing, f"URLs without a permission policy in URL_POLICY: {missing}"


PROTECTED = [name for name, p in URL_POLICY.items() if p.role is not None]
WRITES_ABOVE_VIEWER = [
    name for name, p in URL_POLICY.items() if p.role in (Role.OPERATOR, Role.ADMIN)
]
OBJECT_URLS = [name for name, p in URL_POLICY.items() if p.obj is not None]


@pytest.mark.parametrize("name", PROTECTED)
def test_anonymous_is_sent_to_login(name: str, personas: Personas, client: Any) -> None:
    policy = URL_POLICY[name]
    url = reverse(name, kwargs=_build_kwargs(policy, personas, own=True))
    response = getattr(client, policy.method)(url, policy.data)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", WRITES_ABOVE_VIEWER or ["<none yet>"])
def test_viewer_is_forbidden_to_write(name: str, personas: Personas) -> None:
    if name == "<none yet>":
        pytest.skip("no write endpoints registered yet")
    policy = URL_POLICY[name]
    client = personas.client_for(personas.viewer)
    url = reverse(name, kwargs=_build_kwargs(policy, personas, own=True))
    response = getattr(client, policy.method)(url, policy.data)
    assert response.status_code == 403


@pytest.mark.parametrize("name", OBJECT_URLS or ["<none yet>"])
def test_outsider_gets_404_for_another_companys_object(name: str, personas: Personas) -> None:
    if name == "<none yet>":
        pytest.skip("no object URLs registered yet")
    policy = URL_POLICY[name]
    client = personas.client_for(personas.admin)
    url = reverse(name, kwargs=_build_kwargs(policy, personas, own=False))
    response = getattr(client, policy.method)(url, policy.data)
    assert response.status_code == 404


def test_user_without_company_gets_a_clear_page(user_without_company: Any, client: Any) -> None:
    client.force_login(user_without_company)
    response = client.get(reverse("portfolio:projects"))
    assert response.status_code == 403
    assert b"not a member of any company" in response.content


def test_switch_company_only_to_own_memberships(personas: Personas) -> None:
    client = personas.client_for(personas.admin)
    response = client.post(reverse("switch_company"), {"company": personas.other_company.pk})
    assert response.status_code == 404


def test_switch_company_changes_current_company(personas: Personas) -> None:
    from tests.factories import MembershipFactory

    MembershipFactory(user=personas.admin, company=personas.other_company, role=Role.VIEWER)
    client = personas.client_for(personas.admin)
    page = client.get(reverse("portfolio:home"))
    assert personas.company.name in page.content.decode()
    client.post(reverse("switch_company"), {"company": personas.other_company.pk, "next": "/"})
    page = client.get(reverse("portfolio:home"))
    assert "<h1>Other Co</h1>" in page.content.decode()


ADMIN_ONLY = [name for name, p in URL_POLICY.items() if p.role == Role.ADMIN]


@pytest.mark.parametrize("name", ADMIN_ONLY)
def test_operator_cannot_use_admin_only_urls(name: str, personas: Personas) -> None:
    policy = URL_POLICY[name]
    client = personas.client_for(personas.operator)
    url = reverse(name, kwargs=_build_kwargs(policy, personas, own=True))
    response = getattr(client, policy.method)(url, policy.data)
    assert response.status_code == 403
