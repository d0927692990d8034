"""How patiently a task retries QBO's transient errors: the one retry policy.

The QBO client raises typed errors and does not wait (qbo_client/client.py); the task that
called it decides when to try again, and asks this policy how often and after how long: the
sync (staging/sync/outcomes.py, per row, counted in ``StagedProject.sync_tries``), the
webhook processing and the customer-list refresh (integrations/tasks.py, per task, counted in
Celery's ``request.retries``).

The delays come from Celery's own backoff helper, the one behind a task's
``retry_backoff``/``retry_backoff_max``/``retry_jitter`` options
(https://docs.celeryq.dev/en/stable/userguide/tasks.html#Task.retry_backoff), so a policy
reads the same as those options. Celery's jitter is "full" (anything from 0 to the ceiling);
we keep the lower half fixed ("equal jitter",
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/) so a retry after a
5xx never comes at once, and many rows failing together still spread out.

A ``ThrottledError`` (429, or no slot in the realm's budget) is not a try: nothing was wrong
with the request, and the caller waits its ``retry_after`` instead
(https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles).
"""

from __future__ import annotations

from dataclasses import dataclass

from celery.utils.time import get_exponential_backoff_interval

from qbo_client.errors import TransientError


@dataclass(frozen=True)
class RetryPolicy:
    """``max_tries`` tries in all; after the n-th failed try, wait ``delay_for(n)`` seconds:
    between half of and the whole of ``backoff_factor * 2**(n-1)``, at most ``backoff_max``."""

    max_tries: int
    backoff_factor: int
    backoff_max: int

    def __post_init__(self) -> None:
        if self.max_tries < 1 or self.backoff_factor < 1 or self.backoff_max < 1:
            raise ValueError("a retry policy needs at least one try and positive delays")

    def ceiling_for(self, try_number: int) -> int:
        """The longest wait after the ``try_number``-th failed try (1 for the first)."""
        return get_exponential_backoff_interval(
            factor=self.backoff_factor,
            retries=max(0, try_number - 1),
            maximum=self.backoff_max,
            full_jitter=False,
        )

    def delay_for(self, try_number: int) -> float:
        """Seconds to wait after the ``try_number``-th failed try, jittered."""
        ceiling = self.ceiling_for(try_number)
        jittered = get_exponential_backoff_interval(
            factor=self.backoff_factor,
            retries=max(0, try_number - 1),
            maximum=self.backoff_max,
            full_jitter=True,
        )
        return ceiling / 2 + jittered / 2

    def gives_up_after(self, try_number: int) -> bool:
        """True when the ``try_number``-th failed try was the last one allowed."""
        return try_number >= self.max_tries

    @property
    def patience_seconds(self) -> tuple[float, float]:
        """The shortest and longest total wait before the last try gives up."""
        longest = sum(self.ceiling_for(n) for n in range(1, self.max_tries))
        return longest / 2, float(longest)


# QBO's transient errors (5xx, timeouts, dropped connections, odd replies from a proxy):
# 7 tries, waiting about 2, 4, 8, 16, 32 and 64 s between them (1-2 minutes in all), then the
# row is Failed with the reason and one click retries it. This is the patience the sync had
# when the client also retried each request itself for a few seconds.
QBO_RETRY = RetryPolicy(max_tries=7, backoff_factor=2, backoff_max=120)


def retry_countdown(exc: TransientError, try_number: int, policy: RetryPolicy = QBO_RETRY) -> float:
    """Seconds a task waits after its ``try_number``-th try failed with ``exc``: the policy's
    delay, or QBO's ``Retry-After`` when that asks for longer.

    Tasks other than the sync count a throttle as a try like any transient error (Celery
    counts every ``Task.retry`` in ``request.retries``); they make a handful of requests, so
    the policy's minutes of patience cover QBO's one-minute throttle windows.
    """
    return max(policy.delay_for(try_number), exc.retry_after or 0.0)
