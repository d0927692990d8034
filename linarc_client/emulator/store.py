"""The emulator's in-memory state: projects, queued faults, latency, counters and clock.

Projects are kept compactly for 100,000-row benchmarks: per position, the record's JSON bytes
as served (a page is a join of 500 of them, no encoding per request) plus the few values the
filters need. Positions are append-only (a delete leaves a hole), so ``id → position`` never
needs rebuilding; filtered views are cached until the next change.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linarc_client import contract as c
from linarc_client.emulator.data import (
    FIRST_PROJECT_ID,
    GeneratedProject,
    iter_generated,
)

_NO_TIME = float("-inf")
_MAX_CACHED_VIEWS = 64

FAULT_KINDS = frozenset(
    {"401", "403", "404", "429", "500", "502", "503", "504", "not_json", "malformed", "timeout"}
)
FAULT_ROUTES = frozenset({"any", "list", "detail"})


class EmulatorInputError(ValueError):
    """A control-API request the emulator cannot apply (answered with 400 / 404 / 409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Fault:
    """One queued fault: the next ``remaining`` requests on ``route`` get it."""

    fault: str
    remaining: int = 1
    route: str = "any"
    retry_after: float = 1.0  # 429: the Retry-After header, in seconds
    seconds: float = 30.0  # timeout: how long to hold the request before dropping it

    @classmethod
    def from_json(cls, spec: object) -> Fault:
        if not isinstance(spec, dict):
            raise EmulatorInputError("A fault is an object like {'fault': '500', 'count': 2}")
        kind = str(spec.get("fault", spec.get("kind", "")))
        if kind not in FAULT_KINDS:
            raise EmulatorInputError(f"Unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        route = str(spec.get("route", "any"))
        if route not in FAULT_ROUTES:
            raise EmulatorInputError(f"Unknown route {route!r}; one of {sorted(FAULT_ROUTES)}")
        try:
            count = int(spec.get("count", 1))
            retry_after = float(spec.get("retry_after", 1))
            seconds = float(spec.get("seconds", 30))
        except (TypeError, ValueError):
            raise EmulatorInputError("count, retry_after and seconds must be numbers") from None
        if count < 1:
            raise EmulatorInputError("count must be 1 or more")
        return cls(kind, count, route, retry_after, seconds)


@dataclass(frozen=True)
class Listing:
    """One page of a (filtered) listing, ready to encode."""

    count: int
    blobs: list[bytes]
    has_next: bool


class EmulatorState:
    """Everything the emulator knows. Thread-safe: the HTTP server answers concurrently."""

    def __init__(
        self,
        *,
        projects: int,
        seed: int | str,
        hostile: bool,
        latency_ms: float = 0,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.projects = projects
        self.seed = seed
        self.hostile = hostile
        self.latency_ms = latency_ms
        self.state_file = Path(state_file) if state_file else None
        self._faults: list[Fault] = []
        self._requests: Counter[str] = Counter()
        self._faults_served: Counter[str] = Counter()
        self._clock_offset = 0.0
        self._clear()
        if self.state_file and self.state_file.exists():
            self._load_state(self.state_file)
        else:
            self._load_generated()
            self._save()

    # --- loading -----------------------------------------------------------------------------

    def _clear(self) -> None:
        self._ids: list[str] = []
        self._blobs: list[bytes | None] = []
        self._statuses: list[str] = []  # casefolded, "" when not text
        self._updated: list[float] = []  # epoch seconds, -inf when unknown
        self._search: list[str] = []  # casefolded "number name client"
        self._position: dict[str, int] = {}
        self._holes = 0
        self._next_id = FIRST_PROJECT_ID
        self._views: dict[tuple[float | None, str, str], Sequence[int]] = {}

    def _load_generated(self) -> None:
        self._clear()
        for project in iter_generated(self.projects, self.seed, hostile=self.hostile):
            self._append_generated(project)
        self._next_id = FIRST_PROJECT_ID + self.projects

    def _append_generated(self, project: GeneratedProject) -> None:
        self._position[project.linarc_id] = len(self._ids)
        self._ids.append(project.linarc_id)
        self._blobs.append(project.json)
        self._statuses.append(project.status.casefold())
        self._updated.append(project.updated_at)
        self._search.append(_search_text(project.number, project.name, project.client_name))

    def _load_state(self, path: Path) -> None:
        try:
            state = json.loads(path.read_bytes())
            self.seed = state.get("seed", self.seed)
            self.hostile = bool(state.get("hostile", self.hostile))
            self._clear()
            for raw in state["projects"]:
                self._append(raw)
            self._next_id = max(int(state.get("next_id", 0)), self._next_id)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmulatorInputError(
                f"Cannot load the state file {path} ({type(exc).__name__}: {exc}); "
                "delete it to start from generated data"
            ) from exc
        self.projects = len(self._ids)

    # --- persistence -------------------------------------------------------------------------

    def _save(self) -> None:
        """Write the state file atomically (a crash mid-write keeps the old one)."""
        if self.state_file is None:
            return
        live = b",".join(blob for blob in self._blobs if blob is not None)
        head = json.dumps({"version": 1, "seed": self.seed, "hostile": self.hostile})
        body = head[:-1].encode() + b',"next_id":%d,"projects":[' % self._next_id + live + b"]}"
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".linarc-state-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.replace(tmp, self.state_file)

    # --- projects ------------------------------------------------------------------------------

    def _append(self, raw: dict[str, Any]) -> None:
        linarc_id = str(raw[c.FIELD_ID])
        self._position[linarc_id] = len(self._ids)
        self._ids.append(linarc_id)
        self._blobs.append(_encode(raw))
        self._statuses.append(_status_key(raw))
        self._updated.append(_epoch(raw.get(c.FIELD_UPDATED_AT)))
        self._search.append(
            _search_text(
                raw.get(c.FIELD_NUMBER), raw.get(c.FIELD_NAME), raw.get(c.FIELD_CLIENT_NAME)
            )
        )
        if linarc_id.isdigit():
            self._next_id = max(self._next_id, int(linarc_id) + 1)

    def _changed(self) -> None:
        self._views.clear()
        self._save()

    def reset(
        self,
        *,
        projects: int | None = None,
        seed: int | str | None = None,
        hostile: bool | None = None,
    ) -> None:
        """Regenerate the projects and forget faults, counters and clock changes."""
        with self._lock:
            if projects is not None:
                if projects < 0:
                    raise EmulatorInputError("projects must be 0 or more")
                self.projects = projects
            if seed is not None:
                self.seed = seed
            if hostile is not None:
                self.hostile = hostile
            self._load_generated()
            self._faults.clear()
            self._requests.clear()
            self._faults_served.clear()
            self._clock_offset = 0.0
            self._changed()

    def add_projects(self, raws: Iterable[object]) -> list[dict[str, Any]]:
        """Add projects as given (wrong types included: that is what tests need). A missing
        id is assigned; a missing ``updated_at`` is now."""
        added: list[dict[str, Any]] = []
        with self._lock:
            for raw in raws:
                if not isinstance(raw, dict):
                    raise EmulatorInputError("Each project must be a JSON object")
                project = dict(raw)
                if project.get(c.FIELD_ID) is None:
                    project[c.FIELD_ID] = str(self._next_id)
                linarc_id = str(project[c.FIELD_ID])
                if self._live_position(linarc_id) is not None:
                    raise EmulatorInputError(f"Project {linarc_id!r} already exists", 409)
                project.setdefault(c.FIELD_UPDATED_AT, self.now_text())
                self._append(project)
                added.append(project)
            self.projects = len(self._ids) - self._holes
            self._changed()
        return added

    def update_project(self, linarc_id: str, patch: object) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7396: ``null`` removes a key) and bump
        ``updated_at`` to now, unless the patch sets it."""
        if not isinstance(patch, dict):
            raise EmulatorInputError("The patch must be a JSON object")
        if c.FIELD_ID in patch and str(patch[c.FIELD_ID]) != linarc_id:
            raise EmulatorInputError("A project's id cannot change")
        with self._lock:
            position = self._require(linarc_id)
            blob = self._blobs[position]
            assert blob is not None  # _require only returns live positions
            project: dict[str, Any] = _merge_patch(json.loads(blob), patch)
            if c.FIELD_UPDATED_AT not in patch:
                previous = self._updated[position]
                # Strictly later than before, even if edited twice within one millisecond.
                moment = max(self.now(), previous + 0.001)
                project[c.FIELD_UPDATED_AT] = c.format_datetime(
                    datetime.fromtimestamp(round(moment, 3), UTC)
                )
            self._blobs[position] = _encode(project)
            self._statuses[position] = _status_key(project)
            self._updated[position] = _epoch(project.get(c.FIELD_UPDATED_AT))
            self._search[position] = _search_text(
                project.get(c.FIELD_NUMBER),
                project.get(c.FIELD_NAME),
                project.get(c.FIELD_CLIENT_NAME),
            )
            self._changed()
            return project

    def delete_project(self, linarc_id: str) -> None:
        with self._lock:
            position = self._require(linarc_id)
            self._blobs[position] = None
            del self._position[linarc_id]
            self._holes += 1
            self.projects -= 1
            self._changed()

    def project_json(self, linarc_id: str) -> bytes | None:
        with self._lock:
            position = self._live_position(linarc_id)
            return None if position is None else self._blobs[position]

    def project(self, linarc_id: str) -> dict[str, Any] | None:
        blob = self.project_json(linarc_id)
        return None if blob is None else json.loads(blob)

    def _live_position(self, linarc_id: str) -> int | None:
        position = self._position.get(linarc_id)
        if position is None or self._blobs[position] is None:
            return None
        return position

    def _require(self, linarc_id: str) -> int:
        position = self._live_position(linarc_id)
        if position is None:
            raise EmulatorInputError(f"No project {linarc_id!r}", 404)
        return position

    # --- listing -------------------------------------------------------------------------------

    def listing(
        self,
        *,
        page: int,
        page_size: int,
        updated_since: float | None = None,
        status: str = "",
        search: str = "",
    ) -> Listing:
        """One page, in creation order (ids ascending for generated data)."""
        with self._lock:
            view = self._view(updated_since, status.strip().casefold(), search.strip().casefold())
            start = (page - 1) * page_size
            positions = view[start : start + page_size]
            blobs = [self._blobs[position] for position in positions]
        return Listing(
            count=len(view),
            blobs=[blob for blob in blobs if blob is not None],
            has_next=start + page_size < len(view),
        )

    def _view(self, updated_since: float | None, status: str, search: str) -> Sequence[int]:
        """Positions of the live projects matching the filters; cached until a change, so
        paging through 200 pages of a filtered 100,000 scans once, not 200 times."""
        key = (updated_since, status, search)
        view = self._views.get(key)
        if view is not None:
            return view
        if updated_since is None and not status and not search and not self._holes:
            view = range(len(self._ids))
        else:
            blobs = self._blobs
            positions: Iterable[int] = (p for p in range(len(self._ids)) if blobs[p] is not None)
            if updated_since is not None:
                updated = self._updated
                positions = (p for p in positions if updated[p] >= updated_since)
            if status:
                statuses = self._statuses
                positions = (p for p in positions if statuses[p] == status)
            if search:
                texts = self._search
                positions = (p for p in positions if search in texts[p])
            view = list(positions)
        if len(self._views) >= _MAX_CACHED_VIEWS:
            self._views.clear()
        self._views[key] = view
        return view

    # --- faults, latency, counters, clock -----------------------------------------------------

    def add_faults(self, specs: Iterable[object]) -> list[Fault]:
        faults = [Fault.from_json(spec) for spec in specs]
        with self._lock:
            self._faults.extend(faults)
        return faults

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, route: str) -> Fault | None:
        """The first queued fault for ``route``, consumed once."""
        with self._lock:
            for fault in self._faults:
                if fault.route in ("any", route):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self._faults_served[fault.fault] += 1
                    return fault
        return None

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def count_request(self, route: str) -> None:
        with self._lock:
            self._requests[route] += 1

    def counters(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"requests": dict(self._requests), "faults_served": dict(self._faults_served)}

    def reset_counters(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults_served.clear()

    def now(self) -> float:
        """The emulator's clock (epoch seconds): real time plus any offset set by tests."""
        return time.time() + self._clock_offset

    def now_text(self) -> str:
        return c.format_datetime(datetime.fromtimestamp(round(self.now(), 3), UTC))

    def set_clock(self, *, now: str | None = None, advance_seconds: float | None = None) -> None:
        with self._lock:
            if now is not None:
                moment = _epoch(now)
                if moment == _NO_TIME:
                    raise EmulatorInputError(f"'now' {now!r} is not an ISO datetime")
                self._clock_offset = moment - time.time()
            if advance_seconds is not None:
                self._clock_offset += advance_seconds


def _encode(project: dict[str, Any]) -> bytes:
    return json.dumps(project, ensure_ascii=False, separators=(",", ":")).encode()


def _status_key(project: dict[str, Any]) -> str:
    status = project.get(c.FIELD_STATUS)
    return status.strip().casefold() if isinstance(status, str) else ""


def _search_text(number: object, name: object, client_name: object) -> str:
    parts = (value for value in (number, name, client_name) if isinstance(value, str | int))
    return "\n".join(str(part) for part in parts).casefold()


def _epoch(value: object) -> float:
    """An ISO datetime as epoch seconds (naive = UTC); -inf when absent or unreadable."""
    if not isinstance(value, str):
        return _NO_TIME
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return _NO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_since(value: str) -> float:
    """``updated_since`` as epoch seconds; :class:`EmulatorInputError` if unreadable."""
    moment = _epoch(value)
    if moment == _NO_TIME:
        raise EmulatorInputError(f"updated_since {value!r} is not an ISO 8601 datetime")
    return moment


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result
