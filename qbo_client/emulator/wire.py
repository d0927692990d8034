"""Plain request/response values passed between the HTTP server and the endpoint code.

Keeping the endpoints free of ``http.server`` makes them easy to read and lets the server
module stay a thin adapter (parse the socket, write bytes, or drop the connection).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    host: str
    # Filled in by the core before routing, so every endpoint logs the same id.
    intuit_tid: str = ""

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        # http.server gives an email.message.Message (case-insensitive .get); plain dicts in
        # unit tests are matched case-insensitively by hand.
        value = self.headers.get(name)
        if value is None:
            lowered = name.lower()
            for key, candidate in self.headers.items():
                if key.lower() == lowered:
                    return candidate
        return value

    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    # True: commit nothing more, close the socket without writing a byte (lost response).
    drop: bool = False
    # Bookkeeping for counters and the request log (never sent).
    meta: dict[str, Any] = field(default_factory=dict)
    # Called by the server once the response is written or dropped.
    after_send: Callable[[], None] | None = None


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode("utf-8"),
        headers=dict(headers or {}),
    )


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        status=status,
        body=html.encode("utf-8"),
        content_type="text/html;charset=UTF-8",
        headers=dict(headers or {}),
    )


def xml_response(status: int, xml: str) -> HttpResponse:
    return HttpResponse(status=status, body=xml.encode("utf-8"), content_type="application/xml")


def new_intuit_tid() -> str:
    """An id shaped like production's ``intuit_tid`` header, e.g. ``1-67d45a2b-3f2e…``."""
    return f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"
