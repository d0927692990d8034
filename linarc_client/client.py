"""The Linarc API client: plain values in, dataclasses or typed errors out.

Framework-free on purpose (no Django): the staging services build one per connection and
call it from Celery tasks, never from a web request.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

from linarc_client import contract as c
from linarc_client.errors import (
    LinarcAuthError,
    LinarcError,
    LinarcNotFound,
    LinarcProtocolError,
    LinarcRefusedHost,
    LinarcTransientError,
)
from linarc_client.records import (
    InvalidRecord,
    ProjectPage,
    ProjectRecord,
    parse_page,
    parse_project,
)
from netguard import OutboundRefused, guard_session

logger = logging.getLogger(__name__)

_USER_AGENT = "linarc-qbo-staging/0.1 (+linarc_client)"
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_DETAIL_LENGTH = 300
# A "\ud83d" escape of half a surrogate pair is valid JSON but decodes to a str no UTF-8 can
# encode: hashing or storing the record would fail its whole page. Searched for in the raw
# bytes (cheap), so the decoded page is walked only when one may be there.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class LinarcClient:
    """A client for one Linarc connection (one base URL and API key).

    Every request has a timeout. 429 (honouring ``Retry-After``), 5xx, timeouts and
    connection errors are retried up to ``max_retries`` times with exponential backoff and
    jitter; ``sleep`` is injectable so tests can assert the waits without waiting. Each wait
    is capped at ``max_backoff`` seconds, a long ``Retry-After`` included, so a worker is
    never parked for an hour; if Linarc still refuses after the last retry, the
    :class:`LinarcTransientError` carries ``retry_after`` for the caller to schedule by.
    Not thread-safe (one ``requests.Session``); use one client per thread or task.

    ``allow_private_hosts=False`` refuses every request (redirects included) whose host is,
    or resolves to, a loopback, private, link-local or other non-public address, before any
    connection is made, with :class:`LinarcRefusedHost` (see :mod:`netguard`). Production
    turns it off, so a base URL typed in a form cannot probe the server's own network; the
    default allows them, for the local emulator.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff: float = 30.0,
        allow_private_hosts: bool = True,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url.strip().rstrip("/")
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._max_backoff = max_backoff
        self._sleep = sleep
        api_key = api_key.strip()
        # http.client refuses control characters and anything outside Latin-1 in a header,
        # with an error that quotes the value: catch it here, without the key in the message.
        self._api_key_unsendable = not all(" " < char <= "~" for char in api_key)
        self._session = requests.Session()
        if not allow_private_hosts:
            guard_session(self._session)
        self._session.headers.update(
            {
                c.AUTH_HEADER: c.auth_header_value(api_key),
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            }
        )

    def __repr__(self) -> str:
        # Deliberately without the API key: reprs end up in logs and error reports.
        return f"LinarcClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> LinarcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- public API ------------------------------------------------------------------------

    def iter_pages(
        self,
        *,
        updated_since: datetime | None = None,
        status: str | None = None,
        search: str | None = None,
        page_size: int = c.MAX_PAGE_SIZE,
    ) -> Iterator[ProjectPage]:
        """Yield every page of projects matching the filters, one request at a time.

        Only the current page is held in memory, so a 100,000-project import stays flat.
        Pages are numbered; a project created or deleted while paging may shift the window
        by one (the staging upsert is idempotent, so a repeat is harmless).
        """
        page: int | None = c.FIRST_PAGE
        while page is not None:
            project_page = self.list_page(
                page,
                page_size=page_size,
                search=search,
                status=status,
                updated_since=updated_since,
            )
            yield project_page
            if project_page.next_page is not None and not (
                project_page.records or project_page.invalid
            ):
                # An empty page that promises more would loop forever.
                raise LinarcProtocolError("Linarc returned an empty page that claims more pages")
            page = project_page.next_page

    def list_page(
        self,
        page: int,
        *,
        page_size: int = 50,
        search: str | None = None,
        status: str | None = None,
        updated_since: datetime | None = None,
    ) -> ProjectPage:
        """One page (1-based), e.g. for a picker with paging and search."""
        if page < c.FIRST_PAGE:
            raise ValueError(f"page must be {c.FIRST_PAGE} or more")
        if not 1 <= page_size <= c.MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {c.MAX_PAGE_SIZE}")
        params: dict[str, str | int] = {c.PARAM_PAGE: page, c.PARAM_PAGE_SIZE: page_size}
        if updated_since is not None:
            params[c.PARAM_UPDATED_SINCE] = c.format_datetime(updated_since)
        if status:
            params[c.PARAM_STATUS] = status
        if search and search.strip():
            params[c.PARAM_SEARCH] = search.strip()
        payload = self._get_json(c.PROJECTS_PATH, params, what="project list")
        return parse_page(payload, page=page)

    def get_project(self, linarc_id: str) -> ProjectRecord:
        """One project by id. :class:`LinarcNotFound` when Linarc has no such project
        (for instance, deleted); :class:`LinarcProtocolError` when it cannot be staged."""
        path = c.PROJECT_PATH.format(linarc_id=quote(str(linarc_id), safe=""))
        payload = self._get_json(path, None, what=f"project {linarc_id!r}")
        parsed = parse_project(payload)
        if isinstance(parsed, InvalidRecord):
            raise LinarcProtocolError(
                f"Linarc's project {linarc_id!r} cannot be read: {parsed.reason}",
                detail=parsed.raw_excerpt,
            )
        return parsed

    def check_connection(self) -> None:
        """Make one cheap authenticated request; raise a :class:`LinarcError` on failure.

        For the connection form's *Test connection* button: the error's ``reason`` is what
        to show.
        """
        self.list_page(c.FIRST_PAGE, page_size=1)

    # --- transport -------------------------------------------------------------------------

    def _get_json(self, path: str, params: dict[str, str | int] | None, *, what: str) -> Any:
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(url, params, what=what)
            if not isinstance(outcome, LinarcTransientError):
                return outcome  # the decoded body
            failure = outcome
            if attempt > self._max_retries:
                failure.attempts = attempt
                if attempt > 1:
                    failure.reason += f" (gave up after {attempt} attempts)"
                raise failure
            delay = self._delay(attempt, failure.retry_after)
            # Path only: the key lives in a header and must never reach a log line.
            logger.warning(
                "Linarc GET %s failed: %s; retry %d of %d in %.2fs",
                path,
                failure,
                attempt,
                self._max_retries,
                delay,
            )
            self._sleep(delay)

    def _attempt(
        self, url: str, params: dict[str, str | int] | None, *, what: str
    ) -> Any | LinarcTransientError:
        """One request: the decoded body, a transient failure to retry, or a raised error."""
        if self._api_key_unsendable:
            raise LinarcAuthError(
                "The Linarc API key contains spaces or characters that cannot be sent; "
                "paste it again"
            )
        try:
            response = self._session.get(url, params=params, timeout=self._timeout)
        except OutboundRefused as exc:
            raise LinarcRefusedHost(exc.reason) from exc
        except requests.exceptions.SSLError as exc:
            raise LinarcError("Linarc's TLS certificate could not be verified") from exc
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ) as exc:
            raise LinarcError(f"The Linarc base URL {self.base_url!r} is not valid") from exc
        except requests.exceptions.Timeout:
            return LinarcTransientError(f"Linarc did not answer within {self._timeout:g}s")
        except requests.exceptions.ConnectionError:
            return LinarcTransientError("Could not connect to Linarc")

        status = response.status_code
        if 200 <= status < 300:
            return _decode_json(response, what=what)
        detail = _error_detail(response)
        if status in (401, 403):
            raise LinarcAuthError("Linarc rejected the API key", status=status, detail=detail)
        if status == 404:
            raise LinarcNotFound(f"Linarc has no {what}", status=status, detail=detail)
        if status == 429:
            return LinarcTransientError(
                "Linarc is rate-limiting requests",
                status=status,
                detail=detail,
                retry_after=_retry_after(response),
            )
        if status in _TRANSIENT_STATUSES or status >= 500:
            return LinarcTransientError(
                f"Linarc had a server error ({status})", status=status, detail=detail
            )
        raise LinarcError(
            f"Linarc refused the request for the {what}" + (f": {detail}" if detail else ""),
            status=status,
            detail=detail,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``.

        The server's ``Retry-After`` wins when given (it knows its own window). Otherwise
        exponential backoff with "equal jitter": half fixed, half random, so many workers
        that failed together do not retry together.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._max_backoff)
        backoff = min(self._backoff_base * 2.0 ** (attempt - 1), self._max_backoff)
        return backoff / 2 + random.uniform(0, backoff / 2)


def _decode_json(response: requests.Response, *, what: str) -> Any:
    content = response.content
    try:
        try:
            # Bytes, not .text: json detects UTF-8/16/32 itself, requests would guess a charset.
            payload = json.loads(content)
        except UnicodeDecodeError:
            # JSON must be UTF-8 (RFC 8259); a stray Latin-1 "é" becomes U+FFFD rather than
            # failing the page and every good record on it.
            payload = json.loads(content.decode("utf-8", "replace"))
    except ValueError:
        content_type = response.headers.get("Content-Type", "no content type")
        raise LinarcProtocolError(
            f"Linarc returned a {what} page that is not JSON ({content_type})",
            status=response.status_code,
            detail=content[:_DETAIL_LENGTH].decode("utf-8", "replace"),
        ) from None
    return json_without_lone_surrogates(content, payload)


def json_without_lone_surrogates(content: bytes, payload: Any) -> Any:
    """``payload`` (parsed from ``content``) with every lone surrogate replaced by U+FFFD
    (escaped pairs decode to one character and are kept). Also used for QBO webhooks."""
    if not _SURROGATE_ESCAPE.search(content):
        return payload
    return _without_lone_surrogates(payload)


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    return value


def _error_detail(response: requests.Response) -> str | None:
    """The ``detail`` of an error body, or an excerpt of whatever came instead."""
    try:
        body = json.loads(response.content)
    except ValueError:
        text = response.content[:_DETAIL_LENGTH].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(body, dict) and c.ERROR_DETAIL in body:
        return str(body[c.ERROR_DETAIL])[:_DETAIL_LENGTH]
    return json.dumps(body)[:_DETAIL_LENGTH]


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds. The contract promises delta-seconds; an HTTP date (the
    other form RFC 9110 allows) is accepted too, as proxies in front of an API may send one."""
    value = response.headers.get(c.RETRY_AFTER_HEADER, "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
