from __future__ import annotations

from collections.abc import Callable

from django.contrib.messages import get_messages
from django.contrib.messages.storage.base import BaseStorage
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from integrations.http import is_partial_request
from integrations.tenancy import memberships_for, pick_membership

# The page's flash messages block (a partial of base.html), re-rendered out of band.
MESSAGES_PARTIAL = "base.html#messages"

# Answers after which htmx navigates instead of swapping: the next page shows the messages.
_NAVIGATING_HEADERS = ("HX-Location", "HX-Redirect", "HX-Refresh")


class CurrentCompanyMiddleware:
    """Attach `request.membership` and `request.company` for the session's current company."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        memberships = memberships_for(request.user)
        membership = pick_membership(request, memberships)
        request.memberships = memberships  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        request.company = membership.company if membership else None  # type: ignore[attr-defined]
        return self.get_response(request)


class HtmxMessagesMiddleware:
    """Flash messages for HTMX answers: appended to the fragment as `#messages` with
    `hx-swap-oob`, so no partial has to include them.

    A page renders its messages in base.html; an HTMX answer is a fragment, so here the
    messages block is added to any HTML fragment that is swapped (not a redirect, not an
    answer that makes htmx navigate, where the next page shows them). Listed after
    MessageMiddleware and HtmxMiddleware: the messages shown here are marked read before
    MessageMiddleware stores the unread ones.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not self._swaps_html(request, response):
            return response
        messages = get_messages(request)
        # `used`: the answer rendered them itself (a whole page, for instance).
        if not isinstance(messages, BaseStorage) or not messages or messages.used:
            return response
        block = render_to_string(
            MESSAGES_PARTIAL, {"messages": messages, "oob": True}, request=request
        )
        # Inside <template>: an answer that starts with a table row would have a <div> after
        # it moved out by the HTML parser; htmx 2 takes out-of-band elements from templates
        # (https://htmx.org/attributes/hx-swap-oob/, "Troublesome Tables and lists").
        response.write(f"<template>{block}</template>")
        return response

    @staticmethod
    def _swaps_html(request: HttpRequest, response: HttpResponse) -> bool:
        return (
            is_partial_request(request)
            and not response.streaming
            and response.status_code != 204
            and not 300 <= response.status_code < 400
            and not any(response.has_header(h) for h in _NAVIGATING_HEADERS)
            and response.get("Content-Type", "").startswith("text/html")
        )
