from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request as the middleware leaves it (django-htmx's documented typing pattern)."""

    htmx: HtmxDetails
