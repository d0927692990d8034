"""The company's Linarc connection as a :class:`linarc_client.LinarcClient`.

Django code reaches Linarc only through here. Imports run in Celery workers with the
client's normal timeout and retries. Two reads happen inside a web request, by design and
with a short timeout and no retries so a page never hangs on Linarc: *Test connection* on the
sync rules form, and browsing Linarc's project list in the *Import Selected* picker.

Two rules keep the stored API key and the server's network safe. The key is only ever sent
to the base URL it was saved with: another URL needs the key typed again. And every client
gets ``allow_private_hosts`` from the ``OUTBOUND_ALLOW_PRIVATE_HOSTS`` setting, so in
production a base URL on the server's own network is refused before any connect.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from integrations.errors import Conflict
from integrations.models import Company, LinarcConnection
from linarc_client import LinarcClient, LinarcError, ProjectPage
from netguard import same_destination

# Inside a request: answer within a few seconds, or say Linarc is not reachable.
INTERACTIVE_TIMEOUT_SECONDS = 5.0
PICKER_PAGE_SIZE = 25
KEY_FOR_ANOTHER_URL = (
    "The base URL changed: enter the API key again so it is only sent to the host it was saved for."
)


class LinarcNotConfigured(Conflict):
    """The company has no Linarc connection (or no API key) yet."""

    def __init__(self) -> None:
        super().__init__(
            "Linarc is not connected yet: a Company Administrator can enter the base URL "
            "and API key under ERP Integration → Sync rules."
        )


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


def linarc_stored_key_usable(*, stored_base_url: str, base_url: str) -> bool:
    """Whether the stored API key may be sent to ``base_url``: only when it is the URL the key
    was saved with (same scheme, host, port and path; a trailing slash or the letter case
    of the host do not matter). Otherwise anyone who may edit the form could send the key to
    a server of their choosing and read it there."""
    return same_destination(stored_base_url, base_url)


def _client(
    base_url: str, api_key: str, *, timeout: float, max_retries: int, backoff_base: float = 0.5
) -> LinarcClient:
    return LinarcClient(
        base_url,
        api_key,
        timeout=timeout,
        max_retries=max_retries,
        backoff_base=backoff_base,
        allow_private_hosts=settings.OUTBOUND_ALLOW_PRIVATE_HOSTS,
    )


def linarc_connection_get(*, company: Company) -> LinarcConnection:
    connection = LinarcConnection.objects.filter(company=company).first()
    if connection is None or not connection.base_url or not connection.api_key:
        raise LinarcNotConfigured()
    return connection


def linarc_client_for(
    *, company: Company, timeout: float | None = None, max_retries: int | None = None
) -> LinarcClient:
    """A client for the company's stored connection (raises :class:`LinarcNotConfigured`).

    Defaults come from the optional settings ``LINARC_TIMEOUT_SECONDS``,
    ``LINARC_MAX_RETRIES`` and ``LINARC_BACKOFF_SECONDS`` (tests shorten the backoff).
    """
    connection = linarc_connection_get(company=company)
    return _client(
        connection.base_url,
        connection.api_key,
        timeout=timeout if timeout is not None else getattr(settings, "LINARC_TIMEOUT_SECONDS", 10),
        max_retries=(
            max_retries if max_retries is not None else getattr(settings, "LINARC_MAX_RETRIES", 4)
        ),
        backoff_base=getattr(settings, "LINARC_BACKOFF_SECONDS", 0.5),
    )


def linarc_connection_test(*, company: Company, base_url: str, api_key: str) -> ConnectionCheck:
    """Run ``check_connection`` against the values typed in the form.

    A blank ``api_key`` means "the stored one" (the form never shows the stored key back),
    but only for the base URL it was saved with: nothing is sent to another URL.
    """
    if not api_key:
        stored = LinarcConnection.objects.filter(company=company).first()
        if (
            stored is not None
            and stored.api_key
            and not linarc_stored_key_usable(stored_base_url=stored.base_url, base_url=base_url)
        ):
            return ConnectionCheck(False, KEY_FOR_ANOTHER_URL)
        api_key = stored.api_key if stored else ""
    if not api_key:
        return ConnectionCheck(False, "Enter the API key to test the connection.")
    client = _client(base_url, api_key, timeout=INTERACTIVE_TIMEOUT_SECONDS, max_retries=0)
    try:
        client.check_connection()
    except LinarcError as exc:
        return ConnectionCheck(False, f"Connection failed: {exc.reason}.")
    finally:
        client.close()
    return ConnectionCheck(True, "Connected: Linarc accepted the API key.")


def linarc_projects_browse(
    *, company: Company, page: int = 1, search: str = "", page_size: int = PICKER_PAGE_SIZE
) -> ProjectPage:
    """One page of Linarc's project list for the *Import Selected* picker.

    Raises :class:`LinarcNotConfigured` or a :class:`linarc_client.LinarcError` whose
    ``reason`` the view shows as is.
    """
    with linarc_client_for(
        company=company, timeout=INTERACTIVE_TIMEOUT_SECONDS, max_retries=0
    ) as client:
        return client.list_page(max(1, page), page_size=page_size, search=search or None)
