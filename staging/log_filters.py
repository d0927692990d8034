"""Log filters: the correlation id on every line, and expected refusals (4xx) as one line
while server errors keep their traceback.

Django logs a `PermissionDenied` on `django.request` with the exception attached, and a
suspicious request (an unknown Host, a 3 MB form) on `django.security.<Exception>` likewise
(https://docs.djangoproject.com/en/5.2/ref/logging/#django-request). For a role that may not
act, a forged CSRF token or a wrong Host, that traceback says nothing the message does not;
what helps is who asked for what. `ClientErrorsOneLine` is a logger filter (settings.LOGGING)
so every handler, the console and pytest's caplog alike, sees the one-line record.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils.functional import LazyObject, empty
from django_guid.log_filters import CorrelationId as GuidFilter


class CorrelationId(GuidFilter):
    """django-guid's filter, with "-" for lines outside any request or task (start-up,
    beat) instead of "None"."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if getattr(record, self.correlation_id_field, None) is None:
            setattr(record, self.correlation_id_field, "-")
        return True


class ClientErrorsOneLine(logging.Filter):
    """Turn a 4xx record into "<message> (<METHOD> <path>, user <id>): <reason>"."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if not isinstance(status, int) or not 400 <= status < 500:
            return True  # a 5xx, or not a response at all: keep everything, traceback too
        line = record.getMessage()
        request = getattr(record, "request", None)
        if request is not None:
            who = _user_id(request)
            where = f"{request.method} {request.path}" + (f", user {who}" if who else "")
            line += f" ({_printable(where)})"
        exception = record.exc_info[1] if record.exc_info else None
        reason = str(exception) if exception is not None else ""
        if reason and reason not in line:
            line += f": {_printable(reason)}"
        record.msg, record.args = line, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _user_id(request: Any) -> str:
    """The signed-in user's id, if the request already knows it.

    A CSRF failure or an unknown Host is refused before the user is loaded; loading it here
    would query the database from inside logging, so those lines go without it.
    """
    user = getattr(request, "user", None)
    if isinstance(user, LazyObject) and getattr(user, "_wrapped", empty) is empty:
        return ""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return str(user.pk)


def _printable(text: str) -> str:
    # A path or a Host header may carry control characters: keep the record on one line.
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
