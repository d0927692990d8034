"""The 400 page names its cause, and expected 4xx answers are logged as one line each.

Django hands the exception that caused a 400 to ``handler400``
(https://docs.djangoproject.com/en/5.2/ref/views/#the-400-bad-request-view) and logs every
4xx it raises on the ``django.request`` / ``django.security.*`` loggers
(https://docs.djangoproject.com/en/5.2/ref/logging/#django-request).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import Personas

UNKNOWN_HOST = "This address is not served here (unknown host)."
UNREADABLE = "The request could not be read"
TOO_BIG = "The request was too large or could not be read"


# --- the 400 page ------------------------------------------------------------------------------


# The 2 MB / 12,000-field case keeps its message: tests/reliability/test_bad_input.py
# (post_of_3_mb, post_of_13000_fields).


def test_unknown_host_on_a_page_says_so_not_too_large(db: None) -> None:
    response = Client().get(reverse("portfolio:home"), headers={"host": "evil.example"})

    assert response.status_code == 400
    page = response.content.decode()
    assert UNKNOWN_HOST in page
    assert "2 MB" not in page and TOO_BIG not in page


def test_unreadable_post_gets_the_generic_message(personas: Personas) -> None:
    operator = personas.client_for(personas.operator)

    # A multipart body without a boundary: Django cannot split it into fields.
    response = operator.post(
        reverse("portfolio:projects_sync"), b"ids=1", content_type="multipart/form-data"
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert UNREADABLE in page
    assert "2 MB" not in page and TOO_BIG not in page


# --- one line per expected 4xx -----------------------------------------------------------------


def _records_about(caplog: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if path in r.getMessage()]


def test_forbidden_action_is_logged_once_as_one_line(
    personas: Personas, caplog: pytest.LogCaptureFixture
) -> None:
    viewer = personas.client_for(personas.viewer)
    path = reverse("portfolio:projects_sync")

    with caplog.at_level(logging.INFO):
        response = viewer.post(path, {"ids": "1"})

    assert response.status_code == 403
    [record] = _records_about(caplog, path)
    assert record.exc_info is None and record.exc_text is None
    line = record.getMessage()
    assert "\n" not in line and "Traceback" not in caplog.text
    assert f"POST {path}" in line
    assert f"user {personas.viewer.pk}" in line
    assert "This needs the Operator role; you are Viewer." in line


def test_csrf_failure_is_logged_once_as_one_line(
    personas: Personas, caplog: pytest.LogCaptureFixture
) -> None:
    forger = Client(enforce_csrf_checks=True)
    forger.force_login(personas.viewer)
    path = reverse("switch_company")

    with caplog.at_level(logging.INFO):
        response = forger.post(path, {"company": personas.company.pk})

    assert response.status_code == 403
    [record] = _records_about(caplog, path)
    assert record.name == "django.security.csrf"
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert f"POST {path}" in record.getMessage()


def test_unknown_host_is_logged_once_as_one_line(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        Client().get(reverse("portfolio:home"), headers={"host": "evil.example"})

    [record] = [r for r in caplog.records if "evil.example" in r.getMessage()]
    assert record.name == "django.security.DisallowedHost"
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert f"GET {reverse('portfolio:home')}" in record.getMessage()


def test_a_django_request_line_is_written_by_one_console_handler(settings: Any) -> None:
    # Django's own default config gives the "django" logger a console handler (DEBUG only)
    # on top of the root one: every line came out twice when developing.
    settings.DEBUG = True
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "x", (), None)

    writers = []
    logger: logging.Logger | None = logging.getLogger("django.request")
    while logger is not None:
        writers += [
            h for h in logger.handlers if type(h) is logging.StreamHandler and h.filter(record)
        ]
        logger = logger.parent if logger.propagate else None

    assert len(writers) == 1


def test_the_filter_keeps_server_error_tracebacks_and_drops_4xx_ones() -> None:
    from staging.log_filters import ClientErrorsOneLine

    one_line = ClientErrorsOneLine()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        crash = sys.exc_info()
    server_error = _record("Internal Server Error: %s", ("/x",), crash, status_code=500)
    forbidden = _record("Forbidden (Permission denied): %s", ("/x",), crash, status_code=403)

    assert one_line.filter(server_error) and one_line.filter(forbidden)

    assert server_error.exc_info is crash
    assert server_error.getMessage() == "Internal Server Error: /x"
    assert forbidden.exc_info is None
    assert forbidden.getMessage() == "Forbidden (Permission denied): /x: boom"


def _record(msg: str, args: tuple[Any, ...], exc_info: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record
