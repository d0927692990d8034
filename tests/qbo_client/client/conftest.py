from __future__ import annotations

from tests.qbo_client.client_fixtures import *  # noqa: F403
