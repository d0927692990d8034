"""What a refused or failed request gets back: a page that names the cause, or JSON for the
machine endpoints under /webhooks/.

Django passes handler400 the exception behind the 400
(https://docs.djangoproject.com/en/5.2/ref/views/#the-400-bad-request-view). An unknown Host
is found by `request.get_host()` in CommonMiddleware, before the session, the user and the
company are attached, so the page is rendered without the request: no context processor runs
and nothing calls `get_host()` again.
"""

from __future__ import annotations

from enum import Enum

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template import loader
from django.views import defaults
from django.views.decorators.csrf import requires_csrf_token

# Intuit (and any later provider) is a machine: it gets JSON, never an HTML page.
MACHINE_PREFIX = "/webhooks/"


class Refusal(Enum):
    UNKNOWN_HOST = "unknown_host"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    refusal = _refusal(exception)
    if request.path_info.startswith(MACHINE_PREFIX):
        status = 413 if refusal is Refusal.TOO_LARGE else 400
        return JsonResponse({"error": _JSON_MESSAGES[refusal]}, status=status)
    page = loader.get_template("400.html").render({"message": _page_message(refusal)})
    return HttpResponseBadRequest(page)


@requires_csrf_token  # as Django's own server_error, so the 500 page may use {% csrf_token %}
def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith(MACHINE_PREFIX):
        message = "The webhook could not be received; please deliver it again."
        return JsonResponse({"error": message}, status=500)
    return defaults.server_error(request)


def _refusal(exception: Exception) -> Refusal:
    if isinstance(exception, DisallowedHost):
        return Refusal.UNKNOWN_HOST
    if isinstance(exception, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
        return Refusal.TOO_LARGE
    return Refusal.UNREADABLE  # any other SuspiciousOperation, BadRequest, a broken multipart


_JSON_MESSAGES = {
    Refusal.UNKNOWN_HOST: "This address is not served here (unknown host).",
    Refusal.TOO_LARGE: "The request is too large.",
    Refusal.UNREADABLE: "The request could not be read.",
}


def _page_message(refusal: Refusal) -> str:
    if refusal is Refusal.UNKNOWN_HOST:
        return _JSON_MESSAGES[refusal]
    if refusal is Refusal.UNREADABLE:
        return "The request could not be read, so nothing was changed."
    limit_mb = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) / 2**20
    fields = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS or 0
    return (
        f"The request was too large or could not be read (more than {limit_mb:g} MB of form "
        f"data, or more than {fields:,} fields), so nothing was changed. Select fewer "
        "projects, or use Select All, and try again."
    )
