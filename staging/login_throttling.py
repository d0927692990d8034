"""Login throttling on top of django-axes (https://django-axes.readthedocs.io/).

Axes counts failed log-ins in the database and refuses further attempts once a limit is
reached. Three pieces are ours, named in settings.py:

- `client_ip`: the address a failure is counted against. REMOTE_ADDR unless the deployment
  says how many reverse proxies it runs behind (LOGIN_TRUSTED_PROXY_COUNT); a client can
  put anything in X-Forwarded-For, so the header is only read when a proxy we trust wrote
  the part of it we use.
- `LoginThrottleHandler`: axes compares every lockout parameter with one failure limit. We
  want two: a low one for one username from one address (someone mistyping, or guessing
  one account) and a higher one for one address over all usernames (password spraying,
  while an office behind one NAT address is not locked out by one person's typos).
- `lockout_response`: the login page again, with a message that says what happened and
  when to try again, as HTTP 429 with Retry-After, instead of axes' bare text.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the one the outermost trusted proxy saw.

    Each proxy appends the address it received the request from to X-Forwarded-For, so with
    N trusted proxies the client's address is the N-th entry from the right; entries left
    of it were written by the client and prove nothing."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    proxies: int = getattr(settings, "LOGIN_TRUSTED_PROXY_COUNT", 0)
    if proxies <= 0:
        return remote
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    forwarded = [part.strip() for part in header.split(",") if part.strip()]
    if len(forwarded) < proxies:
        return remote
    return _valid_ip(forwarded[-proxies]) or remote


class LoginThrottleHandler(AxesDatabaseHandler):
    """Axes' database handler with a second, higher limit per client address.

    AXES_LOCKOUT_PARAMETERS is [["username", "ip_address"]], so axes itself counts (and a
    successful log-in clears) the failures of one username from one address. This adds the
    failures of every username from the same address within the cool-off, and reports the
    request as over the limit once those reach LOGIN_IP_FAILURE_LIMIT. It is the one
    method both the check before authenticating and the count after a failure call."""

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        failures: int = super().get_failures(request, credentials)
        address = getattr(request, "axes_ip_address", None)
        if address is None:
            return failures
        attempts = AccessAttempt.objects.filter(ip_address=address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        from_address = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
        if from_address >= settings.LOGIN_IP_FAILURE_LIMIT:
            return max(failures, get_failure_limit(request, credentials))
        return failures


def lockout_message(cool_off: timedelta | None) -> str:
    if cool_off is None:
        return (
            "Too many failed log-in attempts. This account is locked on this network "
            "until a support administrator unlocks it."
        )
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Too many failed log-in attempts. Try again in {minutes} {unit}, "
        "or ask a support administrator to unlock your account."
    )


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page with the lockout message, as 429.

    Axes calls this with (request, original_response, credentials) and, if that raises a
    TypeError, again with two arguments; keep the three-argument signature."""
    cool_off = get_cool_off(request)
    username = get_client_username(request, credentials) or ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "lockout_message": lockout_message(cool_off),
        "next": request.POST.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    if cool_off is not None:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
