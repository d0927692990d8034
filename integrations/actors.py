"""Who did it: the person behind a change, for Change History and the audit fields.

Services take the request's user as it comes (``request.user``: a ``User``, or an
``AnonymousUser`` that no view lets through but the type allows) or ``None`` for the
workers, the beat schedule and management commands ("the system").
"""

from __future__ import annotations

from typing import TypeAlias

from django.contrib.auth.models import AnonymousUser, User

Actor: TypeAlias = User | AnonymousUser | None


def actor_user(actor: Actor) -> User | None:
    """The user to store as a foreign key: None for the system and for anonymous users."""
    if isinstance(actor, User) and actor.is_authenticated:
        return actor
    return None


def actor_pk(actor: Actor) -> int | None:
    """The user's id, for raw SQL and log lines (None: the system)."""
    user = actor_user(actor)
    return user.pk if user is not None else None
