"""The one way every screen answers HTMX (integrations/http.py) and the flash messages that
follow HTMX answers out of band (integrations/middleware.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from integrations.http import is_partial_request, render_page_or_partial
from integrations.middleware import HtmxMessagesMiddleware
from tests.conftest import Personas

HX = {"HX-Request": "true"}
RESTORE = {**HX, "HX-History-Restore-Request": "true"}
OOB_MESSAGES = '<div id="messages" class="messages" aria-live="polite" hx-swap-oob="true">'


def make_request(headers: dict[str, str] | None = None, method: str = "get") -> HttpRequest:
    request: HttpRequest = getattr(RequestFactory(), method)("/", headers=headers or {})
    request.htmx = HtmxDetails(request)
    request.user = AnonymousUser()
    request._messages = CookieStorage(request)
    return request


# --- render_page_or_partial -----------------------------------------------------------------


def test_htmx_request_gets_the_partial_and_varies_on_hx_request() -> None:
    request = make_request(HX)
    response = render_page_or_partial(
        request, "base.html", {"messages": ["Saved."]}, partial="messages"
    )
    html = response.content.decode()
    assert html.strip().startswith('<div id="messages"')
    assert "Saved." in html and "<html" not in html
    assert "HX-Request" in response["Vary"]
    assert is_partial_request(request)


def test_plain_request_gets_the_page_and_varies_on_hx_request() -> None:
    request = make_request()
    response = render_page_or_partial(request, "base.html", {}, partial="messages", status=422)
    assert "<html" in response.content.decode()
    assert response.status_code == 422
    assert "HX-Request" in response["Vary"]
    assert not is_partial_request(request)


def test_history_restore_gets_the_whole_page() -> None:
    # The back button after a history-cache miss replaces the whole body.
    request = make_request(RESTORE)
    response = render_page_or_partial(request, "base.html", {}, partial="messages")
    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]
    assert not is_partial_request(request)


def test_no_partial_always_renders_the_page() -> None:
    response = render_page_or_partial(make_request(HX), "base.html", {}, partial=None)
    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_a_partial_of_another_template_is_named_in_full() -> None:
    response = render_page_or_partial(
        make_request(HX),
        "base.html",
        {"message": "An import is already running."},
        partial="staging/_run_progress.html#run-refused",
    )
    assert response.content.decode().startswith('<div class="run-refused" role="alert">')


# --- HtmxMessagesMiddleware ------------------------------------------------------------------


def middleware(answer: Callable[[], HttpResponse]) -> HtmxMessagesMiddleware:
    def view(request: HttpRequest) -> HttpResponse:
        messages.success(request, "Mapped “Riverside”.")
        return answer()

    return HtmxMessagesMiddleware(view)


def test_htmx_answer_with_a_message_gets_the_messages_block_out_of_band() -> None:
    request = make_request(HX, method="post")
    response = middleware(lambda: HttpResponse("<tr id='project-1'></tr>"))(request)
    html = response.content.decode()
    assert html.startswith("<tr id='project-1'></tr><template>")
    assert OOB_MESSAGES in html
    assert '<div class="message message-success" role="status">Mapped “Riverside”.</div>' in html
    assert html.endswith("</template>")
    # Marked read: MessageMiddleware does not store it for the next page.
    assert messages.get_messages(request).used


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: HttpResponse(status=302, headers={"Location": "/"}), id="redirect"),
        pytest.param(lambda: HttpResponse(headers={"HX-Redirect": "/"}), id="hx-redirect"),
        pytest.param(lambda: HttpResponse(headers={"HX-Refresh": "true"}), id="hx-refresh"),
        pytest.param(lambda: HttpResponse(status=204), id="no-content"),
        pytest.param(lambda: JsonResponse({"ok": True}), id="json"),
    ],
)
def test_answers_that_are_not_swapped_html_keep_the_messages_for_the_next_page(
    answer: Callable[[], HttpResponse],
) -> None:
    request = make_request(HX, method="post")
    before = answer().content
    response = middleware(answer)(request)
    assert response.content == before
    assert not messages.get_messages(request).used


@pytest.mark.parametrize("headers", [{}, RESTORE], ids=["plain", "history-restore"])
def test_a_page_load_gets_no_out_of_band_block(headers: dict[str, str]) -> None:
    request = make_request(headers, method="post")
    response = middleware(lambda: HttpResponse("<p>page</p>"))(request)
    assert response.content == b"<p>page</p>"


def test_no_messages_no_block() -> None:
    request = make_request(HX)
    response = HtmxMessagesMiddleware(lambda r: HttpResponse("<p>rows</p>"))(request)
    assert response.content == b"<p>rows</p>"


# --- through the real screens -----------------------------------------------------------------


def test_htmx_post_that_adds_a_message_swaps_it_in_out_of_band(personas: Personas) -> None:
    operator = personas.client_for(personas.operator)
    url = reverse("portfolio:projects_retry_failed")

    response = operator.post(url, {}, headers=HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="results"')
    assert OOB_MESSAGES in html
    assert "No failed projects match this view." in html
    # Shown once: the next page does not repeat it.
    page = operator.get(reverse("portfolio:projects")).content.decode()
    assert "No failed projects match this view." not in page


def test_plain_post_keeps_the_message_for_the_page_it_redirects_to(personas: Personas) -> None:
    operator: Client = personas.client_for(personas.operator)

    response = operator.post(reverse("portfolio:projects_retry_failed"), {})

    assert response.status_code == 302
    assert b"hx-swap-oob" not in response.content
    page = operator.get(response["Location"]).content.decode()
    assert '<div class="message message-info" role="status">No failed projects' in page
    assert OOB_MESSAGES not in page


def test_rules_form_answers_vary_and_swap_the_form_for_htmx(personas: Personas) -> None:
    admin = personas.client_for(personas.admin)
    url = reverse("portfolio:sync_rules")
    answers: dict[str, Any] = {
        "plain": admin.get(url),
        "htmx": admin.get(url, headers=HX),
        "restore": admin.get(url, headers=RESTORE),
    }
    for response in answers.values():
        assert "HX-Request" in response["Vary"]
    assert b"<html" in answers["plain"].content
    assert answers["htmx"].content.decode().lstrip().startswith('<form id="sync-rules-form"')
    assert b"<html" in answers["restore"].content
