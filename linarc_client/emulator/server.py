"""The Linarc emulator's HTTP server: the API contract plus a control API for tests.

A real ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, so the client under test
goes through exactly the code path it uses against Linarc (sockets, headers, timeouts).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from linarc_client import contract as c
from linarc_client.emulator.data import HOSTILE_IDS, malformed_records
from linarc_client.emulator.store import EmulatorInputError, EmulatorState, Fault, parse_since

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/__emulator__/"
DEFAULT_API_KEY = "demo-linarc-key"
DEFAULT_PAGE_SIZE = 100

_PROJECT_PREFIX = c.PROJECT_PATH.split("{", 1)[0]
_ROUTE_LIST = f"GET {c.PROJECTS_PATH}"
_ROUTE_DETAIL = f"GET {c.PROJECT_PATH}"
_PAGE_HEAD = (
    "{" + json.dumps(c.PAGE_COUNT) + ":%d," + json.dumps(c.PAGE_NEXT) + ":%s,"
).encode() + (json.dumps(c.PAGE_RESULTS) + ":[").encode()
_PROXY_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Service temporarily unavailable</h1><p>upstream connect error</p></body></html>"
)
_FAULT_DETAILS = {
    401: "Invalid API key.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    429: "Request was throttled.",
    500: "A server error occurred.",
    502: "Bad gateway.",
    503: "Service temporarily unavailable.",
    504: "Gateway timeout.",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients at once in benchmarks; the default backlog of 5 drops connections.
    request_queue_size = 128
    state: EmulatorState
    api_key: str
    stopping: threading.Event
    verbose: bool

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts, Ctrl-C) is normal here, not worth a traceback.
        logger.debug("Connection from %s ended with an error", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a Session reuses one connection
    # Without TCP_NODELAY, headers and body in two writes meet delayed ACKs on keep-alive
    # connections and every response costs ~40 ms.
    disable_nagle_algorithm = True
    server_version = "LinarcEmulator/1.0"

    # --- plumbing ----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode(), headers=headers)

    def _detail(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {c.ERROR_DETAIL: detail}, headers)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise EmulatorInputError("The request body is not JSON") from None

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path.startswith(CONTROL_PREFIX):
                self._control(url.path[len(CONTROL_PREFIX) :].strip("/"))
            else:
                self._api(url.path.rstrip("/") or "/", url.query)
        except EmulatorInputError as exc:
            self._detail(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            # A bug or an odd control request must answer 500, not leave the client hanging.
            logger.exception("Linarc emulator failed on %s %s", self.command, self.path)
            self._detail(500, f"Emulator error: {type(exc).__name__}: {exc}")

    do_GET = _dispatch
    do_POST = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch
    do_PUT = _dispatch

    # --- the Linarc API ----------------------------------------------------------------------

    def _api(self, path: str, query: str) -> None:
        state = self.server.state
        if path == c.PROJECTS_PATH:
            route, linarc_id = "list", None
        elif path.startswith(_PROJECT_PREFIX) and len(path) > len(_PROJECT_PREFIX):
            route, linarc_id = "detail", unquote(path[len(_PROJECT_PREFIX) :])
        else:
            self._detail(404, "Not found.")
            return
        if self.command != "GET":
            self._detail(405, f'Method "{self.command}" not allowed.')
            return
        state.count_request(_ROUTE_LIST if route == "list" else _ROUTE_DETAIL)
        if state.latency_ms > 0 and self.server.stopping.wait(state.latency_ms / 1000):
            return
        fault = state.take_fault(route)
        if fault is not None and self._serve_fault(fault):
            return
        if not self._authorized():
            return
        malformed = fault is not None and fault.fault == "malformed"
        if linarc_id is None:
            self._list(query, malformed=malformed)
        else:
            self._project(linarc_id, malformed=malformed)

    def _authorized(self) -> bool:
        header = self.headers.get(c.AUTH_HEADER, "")
        scheme, _, key = header.partition(" ")
        if not header:
            self._detail(401, "Authentication credentials were not provided.")
            return False
        # Constant-time compare, as a real service would: no timing hints about the key.
        if scheme != c.AUTH_SCHEME or not hmac.compare_digest(
            key.strip().encode(), self.server.api_key.encode()
        ):
            self._detail(401, "Invalid API key.")
            return False
        return True

    def _serve_fault(self, fault: Fault) -> bool:
        """Answer with the fault; ``False`` for ``malformed``, which shapes a normal answer."""
        if fault.fault == "malformed":
            return False
        if fault.fault == "timeout":
            # Hold the request past the client's timeout, then drop it without an answer.
            self.server.stopping.wait(fault.seconds)
            self.close_connection = True
            return True
        if fault.fault == "not_json":
            # What a proxy or load balancer answers when the service behind it is down.
            self._send(200, _PROXY_ERROR_PAGE, content_type="text/html; charset=utf-8")
            return True
        status = int(fault.fault)
        headers = {c.RETRY_AFTER_HEADER: f"{fault.retry_after:g}"} if status == 429 else None
        self._detail(status, _FAULT_DETAILS.get(status, HTTPStatus(status).phrase), headers)
        return True

    def _list(self, query: str, *, malformed: bool) -> None:
        params = {
            key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()
        }
        page = _int_param(params, c.PARAM_PAGE, c.FIRST_PAGE)
        if page < c.FIRST_PAGE:
            raise EmulatorInputError("Invalid page.")
        page_size = _int_param(params, c.PARAM_PAGE_SIZE, DEFAULT_PAGE_SIZE)
        if not 1 <= page_size <= c.MAX_PAGE_SIZE:
            raise EmulatorInputError(
                f"{c.PARAM_PAGE_SIZE} must be between 1 and {c.MAX_PAGE_SIZE}."
            )
        since_text = params.get(c.PARAM_UPDATED_SINCE, "").strip()
        listing = self.server.state.listing(
            page=page,
            page_size=page_size,
            updated_since=parse_since(since_text) if since_text else None,
            status=params.get(c.PARAM_STATUS, ""),
            search=params.get(c.PARAM_SEARCH, ""),
        )
        next_url = "null"
        if listing.has_next:
            host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
            next_query = urlencode({**params, c.PARAM_PAGE: page + 1})
            next_url = json.dumps(f"http://{host}{c.PROJECTS_PATH}?{next_query}")
        blobs = listing.blobs
        if malformed and blobs:
            first_id = str(json.loads(blobs[0]).get(c.FIELD_ID))
            junk = [_encode(record) for record in malformed_records(first_id)]
            blobs = junk + blobs[len(junk) :]
        body = _PAGE_HEAD % (listing.count, next_url.encode()) + b",".join(blobs) + b"]}"
        self._send(200, body)

    def _project(self, linarc_id: str, *, malformed: bool) -> None:
        blob = self.server.state.project_json(linarc_id)
        if blob is None:
            self._detail(404, "Not found.")
            return
        if malformed:
            blob = _encode(malformed_records(linarc_id)[-1])
        self._send(200, blob)

    # --- the control API ---------------------------------------------------------------------

    def _control(self, path: str) -> None:
        state = self.server.state
        method = self.command
        if path == "reset" and method == "POST":
            body = self._body()
            seed, hostile = body.get("seed"), body.get("hostile")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
                raise EmulatorInputError("seed must be a whole number or text")
            if hostile is not None and not isinstance(hostile, bool):
                raise EmulatorInputError("hostile must be true or false")
            state.reset(projects=_optional_int(body, "projects"), seed=seed, hostile=hostile)
            if "latency_ms" in body:
                state.latency_ms = float(body["latency_ms"])
            self._json(200, _info(state))
        elif path in ("", "info") and method == "GET":
            self._json(200, _info(state))
        elif path == "projects" and method == "POST":
            body = self._body()
            raws = body if isinstance(body, list) else body.get("projects", [body])
            self._json(201, {"projects": state.add_projects(raws)})
        elif path.startswith("projects/"):
            linarc_id = unquote(path[len("projects/") :])
            if method == "PATCH":
                self._json(200, state.update_project(linarc_id, self._body()))
            elif method == "DELETE":
                state.delete_project(linarc_id)
                self._send(204, b"")
            elif method == "GET":
                project = state.project(linarc_id)
                if project is None:
                    raise EmulatorInputError(f"No project {linarc_id!r}", 404)
                self._json(200, project)
            else:
                self._detail(405, f'Method "{method}" not allowed.')
        elif path == "faults" and method == "POST":
            body = self._body()
            specs = body if isinstance(body, list) else body.get("faults", [body])
            state.add_faults(specs)
            self._json(201, {"faults": state.faults()})
        elif path == "faults" and method == "DELETE":
            state.clear_faults()
            self._send(204, b"")
        elif path == "faults" and method == "GET":
            self._json(200, {"faults": state.faults()})
        elif path == "latency" and method == "POST":
            body = self._body()
            try:
                state.latency_ms = max(0.0, float(body.get("ms", body.get("latency_ms", 0))))
            except (TypeError, ValueError):
                raise EmulatorInputError("'ms' must be a number") from None
            self._json(200, {"latency_ms": state.latency_ms})
        elif path == "counters" and method == "GET":
            self._json(200, state.counters())
        elif path == "counters" and method == "DELETE":
            state.reset_counters()
            self._send(204, b"")
        elif path == "clock" and method == "POST":
            body = self._body()
            advance = body.get("advance_seconds")
            state.set_clock(
                now=body.get("now"),
                advance_seconds=float(advance) if advance is not None else None,
            )
            self._json(200, {"now": state.now_text()})
        else:
            self._detail(404, f"No control endpoint {method} {CONTROL_PREFIX}{path}")


def _info(state: EmulatorState) -> dict[str, Any]:
    return {
        "projects": state.projects,
        "seed": state.seed,
        "hostile": state.hostile,
        "hostile_ids": {
            case: linarc_id
            for case, linarc_id in HOSTILE_IDS.items()
            if state.project_json(linarc_id) is not None
        },
        "latency_ms": state.latency_ms,
        "faults": state.faults(),
        "now": state.now_text(),
    }


def _encode(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise EmulatorInputError(f"{name} must be a whole number.") from None


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EmulatorInputError(f"{name} must be a whole number") from None


class LinarcEmulator:
    """A local Linarc, as a real HTTP server on a background thread.

    >>> with LinarcEmulator(projects=100, seed=1) as emulator:
    ...     client = LinarcClient(emulator.base_url, emulator.api_key)

    The methods below change state in-process, exactly as the control API does over HTTP.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        projects: int = 250,
        seed: int | str = 7,
        hostile: bool = True,
        latency_ms: float = 0,
        *,
        state_file: str | os.PathLike[str] | None = None,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.verbose = verbose
        self.state = EmulatorState(
            projects=projects,
            seed=seed,
            hostile=hostile,
            latency_ms=latency_ms,
            state_file=state_file,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------------

    def _bind(self) -> _Server:
        if self._server is None:
            # An IPv6 literal host needs an AF_INET6 socket.
            server_class = _Server6 if ":" in self.host else _Server
            server = server_class((self.host, self.port), _Handler)
            server.state = self.state
            server.api_key = self.api_key
            server.stopping = self._stopping
            server.verbose = self.verbose
            self.port = server.server_address[1]
            self._server = server
        return self._server

    def start(self) -> LinarcEmulator:
        """Serve on a background daemon thread; returns once the socket is listening."""
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"linarc-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until :meth:`stop` (from a signal handler, say)."""
        self._bind().serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving, release held requests (timeouts, latency) and close the socket."""
        self._stopping.set()
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
            self._server.server_close()
            self._server = None
        self._thread = None
        self._stopping = threading.Event()

    def __enter__(self) -> LinarcEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("The emulator is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    # --- in-process control (same as the HTTP control API) ----------------------------------

    def reset(
        self,
        *,
        projects: int | None = None,
        seed: int | str | None = None,
        hostile: bool | None = None,
    ) -> None:
        self.state.reset(projects=projects, seed=seed, hostile=hostile)

    def add_projects(self, *projects: dict[str, Any]) -> list[dict[str, Any]]:
        return self.state.add_projects(projects)

    def update_project(self, linarc_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.state.update_project(linarc_id, patch)

    def delete_project(self, linarc_id: str) -> None:
        self.state.delete_project(linarc_id)

    def project(self, linarc_id: str) -> dict[str, Any] | None:
        """The stored raw record, or ``None`` when deleted or unknown."""
        return self.state.project(linarc_id)

    def inject_fault(
        self,
        fault: str,
        *,
        count: int = 1,
        route: str = "any",
        retry_after: float = 1.0,
        seconds: float = 30.0,
    ) -> None:
        self.state.add_faults(
            [
                {
                    "fault": fault,
                    "count": count,
                    "route": route,
                    "retry_after": retry_after,
                    "seconds": seconds,
                }
            ]
        )

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def set_latency(self, ms: float) -> None:
        self.state.latency_ms = max(0.0, ms)

    def counters(self) -> dict[str, dict[str, int]]:
        return self.state.counters()
