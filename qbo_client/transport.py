"""requests plumbing shared by the OAuth and API sides.

Sources:
[python-quickbooks] python-quickbooks 0.9.12:
    https://github.com/ej2/python-quickbooks
[intuit-oauth] intuit-oauth 1.2.6:
    https://github.com/intuit/oauth-pythonclient
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from netguard import GuardedHTTPAdapter, guard_session


class TimeoutHTTPAdapter(HTTPAdapter):
    """Applies a default timeout to every request of the session it is mounted on.

    Neither python-quickbooks nor intuit-oauth ever passes ``timeout=`` ([python-quickbooks],
    [intuit-oauth]), so without this a stalled connection would hang a worker forever.
    """

    def __init__(self, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class GuardedTimeoutHTTPAdapter(TimeoutHTTPAdapter, GuardedHTTPAdapter):
    """The default timeout, and non-public hosts refused before any connect (netguard)."""


def mount_timeouts(
    session: requests.Session, timeout: float, *, allow_private_hosts: bool = True
) -> None:
    """Give every request of ``session`` a default timeout and, unless
    ``allow_private_hosts``, refuse non-public hosts (:class:`netguard.OutboundRefused`)."""
    if not allow_private_hosts:
        guard_session(session, GuardedTimeoutHTTPAdapter(timeout))
        return
    adapter = TimeoutHTTPAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
