"""The product's refusals: one hierarchy that views catch by its base.

A service raises a :class:`Refused` when it will not do what was asked, and its message is
written for the person who asked (it is shown as it is: in the row, the form or a flash
message). Nothing has been written when it is raised. ``status`` is the HTTP status a view
answers with: 422 for a choice that cannot be accepted, 409 (:class:`Conflict`) when the
request collides with the current state (a permanent mapping exists, an import already
runs, a row is being synced).

Failures of QBO or Linarc themselves are the clients' typed errors (``qbo_client.errors``,
``linarc_client.errors``) and are not refusals: the sync and the imports turn them into a
row's or a run's status.
"""

from __future__ import annotations


class Refused(Exception):
    """The product will not do this; ``str(exc)`` says why, for the user."""

    status = 422


class Conflict(Refused):
    """Refused because of the current state: someone or something got there first."""

    status = 409
