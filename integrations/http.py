"""How every screen answers HTMX: the whole page, or one of its `{% partialdef %}` blocks.

Both apps use these helpers (`staging` may import `integrations`, never the reverse), so the
rule is written once: an HTMX request gets `page.html#partial`; a plain request, and htmx's
history restore (the back button after a history-cache miss, which replaces the whole
body), get the page. Both answers vary on `HX-Request`, so a browser or proxy cache never
serves the fragment for a full navigation
(https://django-htmx.readthedocs.io/en/latest/tips.html#use-vary-headers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

_Response = TypeVar("_Response", bound=HttpResponseBase)


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it
    (https://django-htmx.readthedocs.io/en/latest/tips.html#make-htmx-aware-request-types)."""

    htmx: HtmxDetails


def is_partial_request(request: HttpRequest) -> bool:
    """True for an HTMX request that swaps part of the page it came from."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request  # type: ignore[union-attr]


def vary_on_htmx(response: _Response) -> _Response:
    """Mark an answer whose body depends on `HX-Request`."""
    patch_vary_headers(response, ("HX-Request",))
    return response


def render_page_or_partial(
    request: HttpRequest,
    template_name: str,
    context: Mapping[str, Any],
    *,
    partial: str | None,
    status: int = 200,
) -> HttpResponse:
    """`template_name` for a page load, its partial `partial` for an HTMX swap.

    `partial` names a `{% partialdef %}` of `template_name`, or of another template when
    written in full (`"staging/_project_drawers.html#history"`: a drawer whose page is a
    different template). None always renders the page.
    """
    name = template_name
    if partial is not None and is_partial_request(request):
        name = partial if "#" in partial else f"{template_name}#{partial}"
    return vary_on_htmx(render(request, name, context, status=status))
