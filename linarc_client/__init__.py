"""Framework-free client for the Linarc project API, and a local emulator of it.

Nothing here imports Django: plain values in, dataclasses or typed errors out. The wire
contract (paths, field names, auth header) lives in :mod:`linarc_client.contract` alone.
"""

from __future__ import annotations

from linarc_client.client import LinarcClient
from linarc_client.errors import (
    LinarcAuthError,
    LinarcError,
    LinarcNotFound,
    LinarcProtocolError,
    LinarcRefusedHost,
    LinarcTransientError,
)
from linarc_client.records import InvalidRecord, ProjectPage, ProjectRecord, parse_project

__all__ = [
    "InvalidRecord",
    "LinarcAuthError",
    "LinarcClient",
    "LinarcError",
    "LinarcNotFound",
    "LinarcProtocolError",
    "LinarcRefusedHost",
    "LinarcTransientError",
    "ProjectPage",
    "ProjectRecord",
    "parse_project",
]
