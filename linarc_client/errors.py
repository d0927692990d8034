"""Typed Linarc errors, decided once at the HTTP boundary.

Every failure leaves :mod:`linarc_client` as one :class:`LinarcError` subclass, never as a
``requests`` exception. ``reason`` is a short sentence fit for a form error or a row's hover
text; ``transient`` tells a caller (a Celery task) whether trying again later can help.
None of them ever carries the API key.
"""

from __future__ import annotations


class LinarcError(Exception):
    """Base of every error raised by :mod:`linarc_client`.

    ``status`` is the HTTP status when there was a response; ``detail`` is the server's
    ``{"detail": ...}`` text (or an excerpt of the body), for logs and support, not users.
    """

    transient: bool = False

    def __init__(self, reason: str, *, status: int | None = None, detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason} (HTTP {self.status})" if self.status else self.reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r})"


class LinarcAuthError(LinarcError):
    """401/403: the API key is wrong, revoked or lacks access. Retrying will not help."""


class LinarcNotFound(LinarcError):
    """404: no such project (deleted in Linarc), or the base URL points at the wrong place."""


class LinarcTransientError(LinarcError):
    """429, 5xx, timeouts or connection failures, still failing after every retry.

    ``retry_after`` is the last ``Retry-After`` hint in seconds, if the server sent one;
    ``attempts`` is how many requests were made.
    """

    transient = True

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ):
        super().__init__(reason, status=status, detail=detail)
        self.retry_after = retry_after
        self.attempts = attempts


class LinarcRefusedHost(LinarcError):
    """The base URL's host is, or resolves to, a non-public address (loopback, private,
    link-local…) while the client was told to refuse those. Nothing was sent; retrying will
    not help. See :mod:`netguard`."""


class LinarcProtocolError(LinarcError):
    """A 2xx reply that does not follow the contract: not JSON, or not a page/project.

    Not retried: a proxy's HTML page or a changed API will answer the same way again.
    """
