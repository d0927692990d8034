"""Typed readers for environment settings that fail loudly, naming the variable.

Settings are read once, in settings.py; a bad value stops start-up with a message that says
which variable is wrong and what it should look like (healthchecks' habit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvReader:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def get_str(self, name: str, default: str | None = None) -> str:
        value = self.environ.get(name)
        if value is None or value == "":
            if default is None:
                raise ImproperlyConfigured(f"Environment variable {name} is required but not set.")
            return default
        return value

    def optional(self, name: str) -> str | None:
        value = self.environ.get(name, "")
        return value or None

    def get_bool(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(
            f"Environment variable {name}={raw!r} is not a boolean; use 1/0, true/false, yes/no."
        )

    def get_int(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfigured(
                f"Environment variable {name}={raw!r} is not an integer."
            ) from None
        if minimum is not None and value < minimum:
            raise ImproperlyConfigured(
                f"Environment variable {name}={value} must be at least {minimum}."
            )
        return value

    def get_list(self, name: str, default: list[str]) -> list[str]:
        raw = self.environ.get(name)
        if raw is None:
            return default
        return [item.strip() for item in raw.split(",") if item.strip()]

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get_str(name, default)
        if value not in choices:
            raise ImproperlyConfigured(
                f"Environment variable {name}={value!r} must be one of: {', '.join(choices)}."
            )
        return value

    def url(self, name: str, default: str | None = None, *, schemes: tuple[str, ...]) -> str:
        value = self.get_str(name, default)
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            raise ImproperlyConfigured(
                f"Environment variable {name}={value!r} must be a URL starting with "
                f"{' or '.join(s + '://' for s in schemes)}."
            )
        return value

    def fernet_key(self, name: str, default: str | None) -> str:
        import base64
        import binascii

        value = self.get_str(name, default)
        try:
            decoded = base64.urlsafe_b64decode(value.encode())
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"Environment variable {name} must be a Fernet key (32 url-safe base64-encoded "
                "bytes). Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            )
        return value
