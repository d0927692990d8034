"""A text field encrypted at rest with Fernet (AES-128-CBC + HMAC).

Secrets (QBO tokens, the Linarc API key) never reach the database in plaintext; the key
comes from FIELD_ENCRYPTION_KEY. Values are decrypted only when the model is loaded.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models


@cache
def _fernet(key: str) -> Fernet:
    return Fernet(key.encode())


def encrypt(value: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # A rotated or wrong FIELD_ENCRYPTION_KEY: say so instead of returning garbage.
        raise ValueError(
            "An encrypted secret could not be decrypted: FIELD_ENCRYPTION_KEY has changed."
        ) from exc


class EncryptedTextField(models.TextField):
    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
