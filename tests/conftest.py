from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import Client

from integrations.models import Company, Role
from tests.factories import PASSWORD, CompanyFactory, MembershipFactory, UserFactory

pytest_plugins = [
    "tests.fixtures.workers",
    "tests.fixtures.browser",
    "tests.fixtures.qbo",
    "tests.fixtures.linarc",
]


# --- No network beyond loopback -----------------------------------------------------------
_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    is_inet = self.family in (socket.AF_INET, socket.AF_INET6)
    if (
        is_inet
        and isinstance(host, str)
        and not (host.startswith("127.") or host in ("localhost", "::1"))
    ):
        raise RuntimeError(f"Tests must not reach the network (tried {host!r}).")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_internet() -> Iterator[None]:
    socket.socket.connect = _loopback_only
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2 is deliberately slow; tests log personas in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Personas -----------------------------------------------------------------------------
@dataclass
class Personas:
    company: Company
    other_company: Company
    admin: Any
    operator: Any
    viewer: Any
    outsider: Any

    def client_for(self, user: Any) -> Client:
        client = Client()
        # django-axes checks every authenticate() call and needs a request to count it by;
        # Client.login passes none, so hand it a blank one as the axes docs suggest
        # (https://django-axes.readthedocs.io/en/latest/3_usage.html#authenticating-users).
        assert client.login(request=HttpRequest(), username=user.username, password=PASSWORD)
        return client


@pytest.fixture
def personas(db: None) -> Personas:
    company = CompanyFactory(name="Summit Ridge Builders")
    other = CompanyFactory(name="Other Co")
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="ada").user
    operator = MembershipFactory(company=company, role=Role.OPERATOR, user__username="otto").user
    viewer = MembershipFactory(company=company, role=Role.VIEWER, user__username="vera").user
    outsider = MembershipFactory(company=other, role=Role.ADMIN, user__username="oscar").user
    return Personas(company, other, admin, operator, viewer, outsider)


@pytest.fixture
def admin_client(personas: Personas) -> Client:
    return personas.client_for(personas.admin)


@pytest.fixture
def user_without_company(db: None) -> Any:
    return UserFactory(username="nobody")
