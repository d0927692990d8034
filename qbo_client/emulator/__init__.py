"""A local QuickBooks Online emulator (OAuth 2.0 + Accounting API v3 subset).

Framework-free: stdlib only, so it runs under tests, benchmarks and ``make run`` alike.
The protocol facts it reproduces come from Intuit's developer documentation and from the two
client libraries (python-quickbooks, intuit-oauth); each module cites its sources, and
``docs/emulators/qbo.md`` lists them with the CLI, the Python API and the control API.

    from qbo_client.emulator import QboEmulator

    with QboEmulator(seed="demo") as emulator:
        print(emulator.discovery_url, emulator.api_base_url)
"""

from __future__ import annotations

from qbo_client.emulator.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REALM_ID,
    QboEmulator,
)

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_REALM_ID", "QboEmulator"]
