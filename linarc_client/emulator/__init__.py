"""A local Linarc: a real HTTP server implementing the contract in ``docs/linarc-api.md``.

``python -m linarc_client.emulator --help`` runs it; :class:`LinarcEmulator` embeds it in
tests and benchmarks. See ``docs/emulators/linarc.md``.
"""

from __future__ import annotations

from linarc_client.emulator.data import DEMO_CLIENT_NAMES, HOSTILE_CASES, HOSTILE_IDS
from linarc_client.emulator.server import LinarcEmulator

__all__ = ["DEMO_CLIENT_NAMES", "HOSTILE_CASES", "HOSTILE_IDS", "LinarcEmulator"]
