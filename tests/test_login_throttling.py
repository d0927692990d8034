"""Login throttling with django-axes (issue #12): https://django-axes.readthedocs.io/

The defaults under test: 5 failures for one username from one address lock that pair out,
20 failures from one address (any usernames) lock the address, both for 15 minutes; a
successful log-in clears the user's failures; support unlocks in the admin or with
`manage.py axes_reset_username`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.urls import reverse

from tests.conftest import Personas
from tests.factories import PASSWORD, UserFactory

OFFICE = "203.0.113.10"
ELSEWHERE = "198.51.100.7"


def _client(ip: str = OFFICE, **headers: str) -> Client:
    return Client(REMOTE_ADDR=ip, **headers)


def _log_in(client: Client, username: str, password: str = PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password})


def _fail(client: Client, username: str, times: int) -> None:
    for _ in range(times):
        response = _log_in(client, username, "wrong password")
        assert response.status_code in (200, 429)


def _logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def _assert_locked_out(response, client: Client) -> None:
    assert response.status_code == 429
    assert not _logged_in(client)
    body = response.content.decode()
    assert "Too many failed log-in attempts" in body
    assert "Try again in 15 minutes" in body
    # The login page itself, not a bare error text: the form is still there.
    assert 'name="username"' in body
    assert response["Retry-After"] == "900"


def test_wrong_passwords_then_the_right_one_is_refused_with_a_clear_message(
    personas: Personas,
) -> None:
    client = _client()
    _fail(client, "ada", settings.AXES_FAILURE_LIMIT - 1)
    last_wrong = _log_in(client, "ada", "still wrong")
    _assert_locked_out(last_wrong, client)
    right = _log_in(client, "ada")
    _assert_locked_out(right, client)


def test_lockout_is_per_user_and_address_another_user_on_the_same_address_gets_in(
    personas: Personas,
) -> None:
    office = _client()
    _fail(office, "ada", settings.AXES_FAILURE_LIMIT)
    _assert_locked_out(_log_in(office, "ada"), office)

    colleague = _client()
    response = _log_in(colleague, "otto")
    assert response.status_code == 302
    assert _logged_in(colleague)

    # The same user from another address is not locked out by someone guessing elsewhere.
    home = _client(ELSEWHERE)
    assert _log_in(home, "ada").status_code == 302


def test_many_failures_across_usernames_lock_the_address(personas: Personas) -> None:
    attacker = _client()
    per_user = settings.AXES_FAILURE_LIMIT - 1
    usernames = [f"guess{n}" for n in range(settings.LOGIN_IP_FAILURE_LIMIT // per_user + 1)]
    for username in usernames:
        _fail(attacker, username, per_user)

    same_address = _client()
    _assert_locked_out(_log_in(same_address, "otto"), same_address)
    other_address = _client(ELSEWHERE)
    assert _log_in(other_address, "otto").status_code == 302


def test_login_works_again_after_the_cool_off(personas: Personas) -> None:
    client = _client()
    _fail(client, "ada", settings.AXES_FAILURE_LIMIT)
    _assert_locked_out(_log_in(client, "ada"), client)

    # Travel past the cool-off: the failures are now older than 15 minutes.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))
    response = _log_in(client, "ada")
    assert response.status_code == 302
    assert _logged_in(client)


def test_cool_off_is_configurable(personas: Personas, settings) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(minutes=2)
    client = _client()
    _fail(client, "ada", settings.AXES_FAILURE_LIMIT)
    response = _log_in(client, "ada")
    assert response.status_code == 429
    assert "Try again in 2 minutes" in response.content.decode()
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=2, seconds=1))
    assert _log_in(client, "ada").status_code == 302


def test_deleting_the_access_attempt_in_admin_unlocks_the_user(personas: Personas) -> None:
    client = _client()
    _fail(client, "ada", settings.AXES_FAILURE_LIMIT)
    _assert_locked_out(_log_in(client, "ada"), client)

    support = Client()
    support.force_login(UserFactory(username="support", is_staff=True, is_superuser=True))
    attempt = AccessAttempt.objects.get(username="ada")
    response = support.post(
        reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert _log_in(client, "ada").status_code == 302


def test_axes_reset_username_command_unlocks_the_user(personas: Personas) -> None:
    client = _client()
    _fail(client, "ada", settings.AXES_FAILURE_LIMIT)
    _assert_locked_out(_log_in(client, "ada"), client)

    call_command("axes_reset_username", "ada")
    assert _log_in(client, "ada").status_code == 302


def test_successful_login_resets_the_failure_count(personas: Personas) -> None:
    client = _client()
    almost = settings.AXES_FAILURE_LIMIT - 1
    _fail(client, "ada", almost)
    assert _log_in(client, "ada").status_code == 302
    client.post(reverse("logout"))

    # Without the reset these would add up to more than the limit.
    _fail(client, "ada", almost)
    assert _log_in(client, "ada").status_code == 302
    client.post(reverse("logout"))

    # And the limit still holds once the count has started again.
    _fail(client, "ada", settings.AXES_FAILURE_LIMIT)
    _assert_locked_out(_log_in(client, "ada"), client)


def test_forwarded_for_header_is_ignored_without_a_trusted_proxy(personas: Personas) -> None:
    # Behind no proxy (docker-compose runs gunicorn directly) a client could otherwise
    # claim a new address on every try.
    for n in range(settings.AXES_FAILURE_LIMIT):
        client = _client(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        _log_in(client, "ada", "wrong password")
    client = _client(HTTP_X_FORWARDED_FOR="192.0.2.200")
    _assert_locked_out(_log_in(client, "ada"), client)


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_used(
    personas: Personas, settings
) -> None:
    settings.LOGIN_TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    # What a client sends is kept; the proxy appends the address it saw.
    attacker = _client(proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {OFFICE}")
    _fail(attacker, "ada", settings.AXES_FAILURE_LIMIT)
    _assert_locked_out(_log_in(attacker, "ada"), attacker)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {OFFICE}

    # Another client behind the same proxy is not locked out with them.
    colleague = _client(proxy, HTTP_X_FORWARDED_FOR=ELSEWHERE)
    assert _log_in(colleague, "ada").status_code == 302


@pytest.mark.parametrize("garbage", ["not-an-address", "", "999.1.1.1"])
def test_a_malformed_forwarded_address_falls_back_to_the_peer(
    personas: Personas, settings, garbage: str
) -> None:
    settings.LOGIN_TRUSTED_PROXY_COUNT = 1
    client = _client("10.0.0.2", HTTP_X_FORWARDED_FOR=garbage)
    response = _log_in(client, "ada", "wrong password")
    assert response.status_code == 200
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.2"}


def test_admin_login_is_throttled_too(personas: Personas) -> None:
    staff = UserFactory(username="support", is_staff=True, is_superuser=True)
    client = _client()
    url = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": staff.username, "password": "wrong password"})
    response = client.post(url, {"username": staff.username, "password": PASSWORD})
    _assert_locked_out(response, client)


def test_persona_logins_in_tests_pass_through_axes(personas: Personas) -> None:
    # tests/conftest.py logs personas in with Client.login, which must hand axes a request.
    client = personas.client_for(personas.viewer)
    assert _logged_in(client)
