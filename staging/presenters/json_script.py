"""The Json Script drawer: a staged project's payloads pretty-printed, with credentials
redacted and bidi controls shown as their escapes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from staging.models import StagedProject
from staging.templatetags.bidi import escape_bidi_controls

REDACTED = "••• redacted •••"
_SECRET_KEYS = {
    "access_token",
    "refresh_token",
    "id_token",
    "authorization",
    "proxy_authorization",
    "api_key",
    "apikey",
    "x_api_key",
    "client_secret",
    "client_id_secret",
    "password",
    "secret",
    "cookie",
    "set_cookie",
    "bearer",
}
_NOT_SECRET = {"sync_token"}  # QBO's SyncToken is a version number, not a credential
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _is_secret_key(key: str) -> bool:
    normal = _CAMEL.sub("_", key).lower().replace("-", "_").replace(" ", "_")
    if normal in _NOT_SECRET:
        return False
    return normal in _SECRET_KEYS or normal.endswith(("_token", "_secret", "_password", "_api_key"))


def redact_secrets(value: Any) -> Any:
    """A copy of a JSON value with credentials replaced, by key name and by value shape."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret_key(str(k)) else redact_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str) and value[:7].lower() in ("bearer ", "basic "):
        return REDACTED
    return value


@dataclass(frozen=True)
class JsonDocument:
    slug: str
    title: str
    help: str
    text: str  # pretty-printed, redacted; empty when there is nothing to show


def _pretty(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    # Bidi controls shown as their escapes: the same JSON, and nothing reordered on screen.
    text = json.dumps(redact_secrets(value), indent=2, ensure_ascii=False, default=str)
    return escape_bidi_controls(text)


def project_json_documents(
    *, project: StagedProject, next_request: dict[str, Any]
) -> list[JsonDocument]:
    return [
        JsonDocument(
            "source",
            "Linarc source payload",
            "The project as last pulled from Linarc.",
            _pretty(project.source_payload),
        ),
        JsonDocument(
            "next-request",
            "Next QBO request (dry run)",
            "What the next Sync to QBO will send. Nothing is sent from here.",
            _pretty(next_request),
        ),
        JsonDocument(
            "last-request",
            "Last QBO request",
            "What the last sync sent to QuickBooks.",
            _pretty(project.last_request),
        ),
        JsonDocument(
            "last-response",
            "Last QBO response",
            "What QuickBooks answered.",
            _pretty(project.last_response),
        ),
    ]
