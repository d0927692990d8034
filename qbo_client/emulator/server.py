"""The HTTP server (ThreadingHTTPServer) and the :class:`QboEmulator` Python API.

The handler is a thin adapter: it reads the request, asks :class:`EmulatorCore` for a
response and writes it, or closes the socket without a byte when the response is marked
``drop`` (the ``lost_response`` and ``timeout`` faults). HTTP/1.1 keep-alive is supported
because requests' sessions (python-quickbooks, intuit-oauth) reuse connections.

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from qbo_client.emulator import oauth
from qbo_client.emulator.core import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_COMPANY_NAME,
    DEFAULT_REALM_ID,
    EmulatorConfig,
    EmulatorCore,
)
from qbo_client.emulator.wire import HttpRequest, HttpResponse, new_intuit_tid

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REALM_ID",
    "EmulatorServer",
    "QboEmulator",
]

_MAX_BODY = 10 * 1024 * 1024
_AUTOSAVE_SECONDS = 1.0


class EmulatorServer(ThreadingHTTPServer):
    """Threaded server that tracks open connections so ``stop()`` can close idle keep-alives."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops simultaneous connects (the client retries
    # the SYN a second later), which would hide real concurrency from the throttle.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], core: EmulatorCore) -> None:
        self.core = core
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffer the whole response and send it in one write with Nagle off: headers and body
    # in separate small segments meet the client's delayed ACK and cost ~40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "QBOEmulator/1.0"
    sys_version = ""
    server: EmulatorServer

    def send_response(self, code: int, message: str | None = None) -> None:
        self._intuit_tid_sent = False
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "intuit_tid":
            self._intuit_tid_sent = True
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        # Every response carries intuit_tid ([customer]), even http.server's own errors
        # (malformed request line, unreadable body).
        if not getattr(self, "_intuit_tid_sent", True):
            self.send_header("intuit_tid", new_intuit_tid())
        super().end_headers()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.send_error(400, "Bad request body")
            return
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = HttpRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=dict(self.headers.items()),
            body=body,
            host=host,
        )
        response = self.server.core.handle(request)
        try:
            if response.drop:
                self._drop()
            else:
                self._write(response)
                self.wfile.flush()
        finally:
            # A request stays "in flight" (for the concurrency limit) until it is answered.
            if response.after_send is not None:
                response.after_send()

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _drop(self) -> None:
        """Close without answering: the client sees a connection error (lost response)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.core.config.verbose:
            sys.stderr.write(f"qbo-emulator {self.address_string()} {format % args}\n")


class QboEmulator:
    """A running (or ready to run) QBO emulator.

    >>> with QboEmulator(seed="demo") as emulator:        # doctest: +SKIP
    ...     auth = AuthClient(..., environment=emulator.discovery_url)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        realm_id: str = DEFAULT_REALM_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        company_name: str = DEFAULT_COMPANY_NAME,
        seed: str = "empty",
        state_file: str | None = None,
        latency_ms: float = 0.0,
        throttle_window_seconds: float = 60.0,
        throttle_enabled: bool = True,
        throttle_xml: bool = False,
        consent_page: bool = False,
        refresh_grace_seconds: float = oauth.DEFAULT_REFRESH_GRACE_SECONDS,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.core = EmulatorCore(
            EmulatorConfig(
                realm_id=realm_id,
                client_id=client_id,
                client_secret=client_secret,
                company_name=company_name,
                seed=seed,
                state_file=state_file,
                latency_ms=latency_ms,
                throttle_window_seconds=throttle_window_seconds,
                throttle_enabled=throttle_enabled,
                throttle_xml=throttle_xml,
                consent_page=consent_page,
                refresh_grace_seconds=refresh_grace_seconds,
                verbose=verbose,
            )
        )
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._autosave_stop = threading.Event()
        self._autosave_thread: threading.Thread | None = None

    # --- lifecycle ---
    def start(self) -> QboEmulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = EmulatorServer((self.host, self._requested_port), self.core)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"qbo-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if self.core.state_file is not None:
            self.core.save_if_dirty()
            self._autosave_stop.clear()
            self._autosave_thread = threading.Thread(
                target=self._autosave, name="qbo-emulator-autosave", daemon=True
            )
            self._autosave_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and save state (with ``state_file``)."""
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._autosave_stop.set()
        if self._autosave_thread is not None:
            self._autosave_thread.join(timeout=5)
        self.core.save_if_dirty()
        self._server = None
        self._thread = None
        self._autosave_thread = None

    def serve_forever(self) -> None:
        """Start and block until :meth:`stop` is called from another thread or a signal."""
        self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def _autosave(self) -> None:
        while not self._autosave_stop.wait(_AUTOSAVE_SECONDS):
            try:
                self.core.save_if_dirty()
            except OSError as exc:
                print(f"qbo emulator: could not save state: {exc}", file=sys.stderr)

    def __enter__(self) -> QboEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses ---
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}{oauth.DISCOVERY_PATHS[0]}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/v3"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/__emulator__"

    @property
    def realm_id(self) -> str:
        return self.core.config.realm_id

    @property
    def client_id(self) -> str:
        return self.core.config.client_id

    @property
    def client_secret(self) -> str:
        return self.core.config.client_secret

    # --- in-process conveniences (same effect as the control API) ---
    def reset(self, seed: str | None = None) -> None:
        self.core.reset(seed=seed)

    def mint_tokens(self, realm_id: str | None = None) -> dict[str, Any]:
        """A fresh access/refresh token pair for a realm, without the OAuth redirect."""
        return self.core.mint_tokens(realm_id)

    def advance_clock(self, seconds: float) -> None:
        self.core.clock.advance(seconds)

    def inject_fault(self, kind: str, *, count: int = 1, **criteria: Any) -> int:
        """Same fields as ``POST /__emulator__/faults``; returns the rule id."""
        return self.core.faults.add({"kind": kind, "count": count, **criteria}).id

    def counters(self) -> dict[str, Any]:
        return self.core.counters_snapshot()

    def entities(
        self, entity_type: str = "Customer", realm_id: str | None = None
    ) -> list[dict[str, Any]]:
        """All entities of a type (inactive included), sorted by Id."""
        with self.core.lock:
            company = self.core.company(realm_id)
            return sorted(
                (dict(e) for e in company.entities[entity_type].values()),
                key=lambda e: int(e["Id"]),
            )
