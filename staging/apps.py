from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from staging.triggers import sqlite_triggers_after_migrate


class StagingConfig(AppConfig):
    name = "staging"
    verbose_name = "Staging"

    def ready(self) -> None:
        # Every migrate re-creates a SQLite trigger that a table rebuild dropped.
        post_migrate.connect(sqlite_triggers_after_migrate, sender=self)
        # Staging's part of what integrations announces (integrations/signals.py). Imported
        # here: the receivers need the models, which are loaded only now.
        from staging import receivers

        receivers.connect()
