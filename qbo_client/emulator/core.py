"""The emulator's request handling, independent of the socket server.

``EmulatorCore.handle`` takes an :class:`HttpRequest` and returns an :class:`HttpResponse`;
it routes to the OAuth endpoints, the Accounting API (``/v3/company/{realmId}/…``) and the
control API (``/__emulator__/…``). All entity and token state sits behind ``self.lock``.

API request pipeline (the order matters and mirrors the real service's layers):
gateway authentication (401/403) → throttling (429) → injected latency → injected faults →
``requestid`` replay → business logic → store the response for replay.

Sources:
[errors] Intuit, error codes:
    https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
[limits] Intuit, limits and throttles:
    https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
[requestid] Intuit developer blog, Request ID:
    https://blogs.intuit.com/2015/04/06/15346/
[oauth] Intuit, OAuth 2.0:
    https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qbo_client.emulator import accounting, errors, oauth
from qbo_client.emulator.clock import Clock, iso_millis
from qbo_client.emulator.control import ControlApi
from qbo_client.emulator.faults import FaultInjector, FaultRule, RequestInfo
from qbo_client.emulator.rules import SPECS_BY_PATH, EntitySpec
from qbo_client.emulator.seed import seed_company
from qbo_client.emulator.state import Company, StateFile, StoredResponse
from qbo_client.emulator.throttle import Throttler
from qbo_client.emulator.wire import (
    HttpRequest,
    HttpResponse,
    html_response,
    json_response,
    new_intuit_tid,
    xml_response,
)

JsonDict = dict[str, Any]

DEFAULT_REALM_ID = "9130357712345678"
DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
DEFAULT_COMPANY_NAME = "Emulated Construction Co."

_API_PATH = re.compile(r"/v3/company/([^/]+)/(.+)")
_QUERY_ENTITY = re.compile(r"\bfrom\s+([A-Za-z_]+)", re.IGNORECASE)
_LOGGED_BODY_LIMIT = 20_000


@dataclass
class EmulatorConfig:
    realm_id: str = DEFAULT_REALM_ID
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    company_name: str = DEFAULT_COMPANY_NAME
    seed: str = "empty"
    state_file: str | None = None
    latency_ms: float = 0.0
    throttle_window_seconds: float = 60.0
    throttle_enabled: bool = True
    throttle_xml: bool = False
    consent_page: bool = False
    refresh_grace_seconds: float = oauth.DEFAULT_REFRESH_GRACE_SECONDS
    request_log_size: int = 1000
    verbose: bool = False


@dataclass
class ApiRoute:
    """What an Accounting API request is, decided before any fault or throttle applies."""

    key: str  # for counters, e.g. "POST customer", "GET customer/{id}"
    operation: str  # create | update | delete | read | query | batch | cdc | unsupported
    entity: str | None = None
    spec: EntitySpec | None = None
    entity_id: str | None = None
    body: Any = None
    body_error: str | None = None

    @property
    def is_write(self) -> bool:
        return self.operation in ("create", "update", "delete", "batch")

    @property
    def is_batch(self) -> bool:
        return self.operation == "batch"


@dataclass
class Counters:
    """Request statistics for ``GET /__emulator__/counters``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    total: int = 0
    by_area: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    faults_injected: Counter[str] = field(default_factory=Counter)
    sent_429: int = 0
    replays: int = 0
    dropped: int = 0

    def record(self, area: str, route: str, response: HttpResponse) -> None:
        with self.lock:
            self.by_area[area] += 1
            if area == "control":
                return  # tests read counters; their own control calls would be noise
            self.total += 1
            self.by_route[route] += 1
            if response.drop:
                self.dropped += 1
            else:
                self.by_status[str(response.status)] += 1
                if response.status == 429:
                    self.sent_429 += 1
            if "throttled" in response.meta:
                self.throttled[str(response.meta["throttled"])] += 1
            if "fault" in response.meta:
                self.faults_injected[str(response.meta["fault"])] += 1
            if response.meta.get("replayed"):
                self.replays += 1

    def reset(self) -> None:
        with self.lock:
            self.total = 0
            self.sent_429 = 0
            self.replays = 0
            self.dropped = 0
            for counter in (
                self.by_area,
                self.by_route,
                self.by_status,
                self.throttled,
                self.faults_injected,
            ):
                counter.clear()

    def snapshot(self) -> JsonDict:
        with self.lock:
            return {
                "total_requests": self.total,
                "api_requests": self.by_area["api"],
                "oauth_requests": self.by_area["oauth"],
                "control_requests": self.by_area["control"],
                "by_area": dict(self.by_area),
                "routes": dict(self.by_route),
                "statuses": dict(self.by_status),
                "sent_429": self.sent_429,
                "throttled": sum(self.throttled.values()),
                "throttled_by_limit": dict(self.throttled),
                "faults_injected": dict(self.faults_injected),
                "replays": self.replays,
                "dropped_connections": self.dropped,
            }


class EmulatorCore:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.lock = threading.RLock()
        self.companies: dict[str, Company] = {}
        self.tokens = oauth.TokenStore(config.refresh_grace_seconds)
        self.throttle = Throttler(config.throttle_window_seconds, enabled=config.throttle_enabled)
        self.faults = FaultInjector()
        self.latency_ms = float(config.latency_ms)
        self.throttle_xml = config.throttle_xml
        self.consent_page = config.consent_page
        self.counters = Counters()
        self.request_log: deque[JsonDict] = deque(maxlen=config.request_log_size)
        self._log_seq = itertools.count(1)
        self.log_lock = threading.Lock()
        self.state_file = StateFile(config.state_file) if config.state_file else None
        self._dirty = False
        self.control = ControlApi(self)
        loaded = self.state_file.load() if self.state_file else None
        if loaded is not None:
            self._load(loaded)
        else:
            self.reset(seed=config.seed, keep_config=True)

    # --- state management ---
    def reset(self, *, seed: str | None = None, keep_config: bool = False) -> None:
        """Fresh companies, tokens, faults, counters, log and clock (like a new server)."""
        with self.lock:
            self.companies.clear()
            self.add_company(
                self.config.realm_id, self.config.company_name, seed or self.config.seed
            )
            self.tokens.clear()
            self.clock.reset()
            self._dirty = True
        self.faults.clear()
        self.faults.clear_chaos()
        self.throttle.reset()
        self.counters.reset()
        with self.log_lock:
            self.request_log.clear()
        if not keep_config:
            self.latency_ms = float(self.config.latency_ms)
            self.throttle_xml = self.config.throttle_xml
            self.consent_page = self.config.consent_page
            self.tokens.refresh_grace_seconds = self.config.refresh_grace_seconds
            self.throttle.configure(
                window_seconds=self.config.throttle_window_seconds,
                enabled=self.config.throttle_enabled,
            )

    def add_company(self, realm_id: str, company_name: str, seed: str) -> Company:
        with self.lock:
            if realm_id in self.companies:
                raise ValueError(f"realm {realm_id} already exists")
            company = Company(realm_id, company_name)
            seed_company(company, seed)
            self.companies[realm_id] = company
            self._dirty = True
            return company

    def company(self, realm_id: str | None) -> Company:
        realm = realm_id or self.config.realm_id
        company = self.companies.get(realm)
        if company is None:
            raise KeyError(f"unknown realm {realm}")
        return company

    def mint_tokens(self, realm_id: str | None = None) -> JsonDict:
        """A fresh grant and token pair for a realm, skipping the browser redirect."""
        with self.lock:
            realm = self.company(realm_id).realm_id
            body = self.tokens.mint(
                client_id=self.config.client_id, realm_id=realm, now=self.clock.time()
            )
            self._dirty = True
        return dict(body, realm_id=realm)

    def counters_snapshot(self) -> JsonDict:
        snapshot = self.counters.snapshot()
        throttle = self.throttle.snapshot()
        snapshot["max_in_flight"] = throttle["max_in_flight"]
        snapshot["in_flight"] = throttle["in_flight"]
        return snapshot

    def mark_dirty(self) -> None:
        self._dirty = True

    def save_if_dirty(self) -> bool:
        if self.state_file is None or not self._dirty:
            return False
        with self.lock:
            # Serialise under the lock so the snapshot is consistent; write outside it.
            text = StateFile.serialise(
                {
                    "companies": [c.to_json() for c in self.companies.values()],
                    "tokens": self.tokens.to_json(),
                    "clock_offset_seconds": self.clock.offset_seconds,
                }
            )
            self._dirty = False
        self.state_file.write(text)
        return True

    def _load(self, data: JsonDict) -> None:
        with self.lock:
            self.companies = {
                c["realm_id"]: Company.from_json(c) for c in data.get("companies", [])
            }
            if self.config.realm_id not in self.companies:
                self.add_company(self.config.realm_id, self.config.company_name, self.config.seed)
            self.tokens.load(data.get("tokens", {}))
            self.clock.reset(float(data.get("clock_offset_seconds", 0.0)))

    # --- entry point ---
    def handle(self, request: HttpRequest) -> HttpResponse:
        request.intuit_tid = new_intuit_tid()
        started = time.monotonic()
        path = request.path
        route = f"{request.method} {path}"
        try:
            if path.startswith("/__emulator__"):
                area = "control"
                response = self.control.handle(request)
            elif path in oauth.OAUTH_PATHS:
                area = "oauth"
                route = f"{request.method} {_oauth_route(path)}"
                response = self._oauth(request)
            elif path.startswith("/v3/"):
                area = "api"
                response, route = self._api(request)
            elif path == "/" and request.method == "GET":
                area = "other"
                response = json_response(200, self.describe(request.base_url))
            else:
                area = "other"
                response = json_response(404, {"error": "not_found", "path": path})
        except Exception as exc:  # a bug in the emulator must still produce an answer
            area = "error"
            print(
                f"qbo emulator: unhandled error for {request.method} {path}: {exc!r}",
                file=sys.stderr,
            )
            response = self._system_fault(exc)
        response.headers.setdefault("intuit_tid", request.intuit_tid)
        self.counters.record(area, route, response)
        if area in ("api", "oauth"):
            self._log(request, route, response, time.monotonic() - started)
        return response

    def describe(self, base_url: str) -> JsonDict:
        return {
            "service": "QuickBooks Online emulator",
            "base_url": base_url,
            "discovery_url": f"{base_url}{oauth.DISCOVERY_PATHS[0]}",
            "api_base_url": f"{base_url}/v3",
            "control_url": f"{base_url}/__emulator__/",
            "realm_id": self.config.realm_id,
            "realms": sorted(self.companies),
            "client_id": self.config.client_id,
        }

    # --- OAuth ---
    def _oauth(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        operation = _oauth_route(path)
        if path == oauth.TOKEN_PATH:
            operation = oauth.form_params(request).get("grant_type") or "token"
        info = RequestInfo(request.method, path, None, None, operation, is_write=False)
        rule = self.faults.take(info)
        handler: Callable[[], HttpResponse] = lambda: self._oauth_endpoint(request)  # noqa: E731
        if rule is not None:
            return self._apply_fault(rule, handler, request)
        return handler()

    def _oauth_endpoint(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path in oauth.DISCOVERY_PATHS:
            return json_response(200, oauth.discovery_document(request.base_url))
        if path == oauth.JWKS_PATH:
            return json_response(200, {"keys": []})
        if path == oauth.AUTHORIZE_PATH and request.method in ("GET", "POST"):
            return self._authorize(request)
        if path == oauth.TOKEN_PATH and request.method == "POST":
            return self._token(request)
        if path == oauth.REVOKE_PATH and request.method == "POST":
            return self._revoke(request)
        if path == oauth.USERINFO_PATH and request.method == "GET":
            return self._userinfo(request)
        return json_response(405, {"error": "method_not_allowed"})

    def _authorize(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            params = {k: v[0] for k, v in request.query.items()}
        else:
            params = oauth.form_params(request)
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        state = params.get("state")
        if client_id != self.config.client_id:
            return oauth.error_page(400, "invalid_client", f"Unknown client_id {client_id!r}.")
        if not redirect_uri.startswith(("http://", "https://")):
            return oauth.error_page(400, "invalid_request", "redirect_uri is missing or invalid.")
        extra = {"state": state} if state is not None else {}
        if params.get("response_type") != "code":
            return oauth.redirect_with(
                redirect_uri, {"error": "unsupported_response_type", **extra}
            )
        scopes = params.get("scope", "").split()
        if not scopes or any(s not in oauth.KNOWN_SCOPES for s in scopes):
            return oauth.redirect_with(redirect_uri, {"error": "invalid_scope", **extra})
        # Emulator extension: realm_id picks which company the user "connects".
        realm_id = params.get("realm_id") or self.config.realm_id
        with self.lock:
            company = self.companies.get(realm_id)
            if company is None:
                return oauth.error_page(400, "invalid_request", f"Unknown realm {realm_id}.")
            if request.method == "GET" and self.consent_page:
                shown = {k: v for k, v in params.items() if k != "decision"}
                shown.setdefault("realm_id", realm_id)
                return oauth.consent_page(shown, company.company_name, realm_id)
            if request.method == "POST" and params.get("decision") == "deny":
                return oauth.redirect_with(redirect_uri, {"error": "access_denied", **extra})
            code = self.tokens.issue_code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                realm_id=realm_id,
                scope=" ".join(scopes),
                now=self.clock.time(),
            )
        # The callback brings code, state and realmId ([oauth]).
        return oauth.redirect_with(redirect_uri, {"code": code, **extra, "realmId": realm_id})

    def _client_ok(self, request: HttpRequest) -> bool:
        credentials = oauth.parse_basic_auth(request.header("Authorization"))
        return credentials == (self.config.client_id, self.config.client_secret)

    def _token(self, request: HttpRequest) -> HttpResponse:
        if not self._client_ok(request):
            return json_response(401, {"error": "invalid_client"})
        form = oauth.form_params(request)
        grant_type = form.get("grant_type")
        hard_expiry = (
            request.header("x-include-refresh-token-hard-expires-in") or ""
        ).lower() == "true"
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            with self.lock:
                now = self.clock.time()
                if grant_type == "authorization_code":
                    if not form.get("code"):
                        raise oauth.OAuthError(400, "invalid_request", "code is required")
                    body = self.tokens.exchange_code(
                        client_id=self.config.client_id,
                        code=form["code"],
                        redirect_uri=form.get("redirect_uri", ""),
                        now=now,
                        hard_expiry=hard_expiry,
                    )
                elif grant_type == "refresh_token":
                    if not form.get("refresh_token"):
                        raise oauth.OAuthError(400, "invalid_request", "refresh_token is required")
                    body = self.tokens.refresh(
                        client_id=self.config.client_id,
                        token=form["refresh_token"],
                        now=now,
                        hard_expiry=hard_expiry,
                    )
                else:
                    raise oauth.OAuthError(400, "unsupported_grant_type")
                self._dirty = True
        except oauth.OAuthError as error:
            return json_response(error.status, error.body(), headers)
        return json_response(200, body, headers)

    def _revoke(self, request: HttpRequest) -> HttpResponse:
        if not self._client_ok(request):
            return json_response(401, {"error": "invalid_client"})
        token = oauth.json_body(request).get("token") or oauth.form_params(request).get("token")
        if not token:
            return json_response(400, {"error": "invalid_request"})
        with self.lock:
            # Unknown tokens also get 200, as RFC 7009 §2.2 asks.
            self.tokens.revoke(client_id=self.config.client_id, token=str(token))
            self._dirty = True
        return HttpResponse(status=200, body=b"", content_type="application/json")

    def _userinfo(self, request: HttpRequest) -> HttpResponse:
        token = oauth.bearer_token(request.header("Authorization"))
        with self.lock:
            grant, reason = self.tokens.check_access(token, self.clock.time())
        if grant is None:
            return json_response(401, {"error": "invalid_token", "error_description": reason})
        return json_response(
            200,
            {
                "sub": f"emulator-user-{grant.realm_id}",
                "email": "admin@example.com",
                "emailVerified": True,
                "givenName": "Emulator",
                "familyName": "Admin",
            },
        )

    # --- Accounting API ---
    def _api(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        match = _API_PATH.fullmatch(request.path)
        if match is None:
            fault = errors.unsupported_operation(f"Operation {request.path} is not supported.")
            return self._fault_response(fault, status=404), f"{request.method} (unknown)"
        realm_id, rest = match.groups()
        route = _classify(request, rest)
        epoch_ms = int(self.clock.time() * 1000)

        # 1. Gateway authentication ([errors]): lower-case fault, 401 / 403.
        token = oauth.bearer_token(request.header("Authorization"))
        with self.lock:
            grant, reason = self.tokens.check_access(token, self.clock.time())
            known_realm = realm_id in self.companies
        if grant is None:
            return json_response(
                401, errors.authentication_failed_body(reason, epoch_ms)
            ), route.key
        if grant.realm_id != realm_id or not known_realm:
            body = errors.authorization_failed_body(
                f"The access token is not authorized for company {realm_id}.", epoch_ms
            )
            return json_response(403, body), route.key

        # 2. Throttling ([limits]).
        verdict = self.throttle.acquire(realm_id, is_batch=route.is_batch)
        if verdict is not None:
            response = self._throttled(xml=self.throttle_xml)
            response.meta["throttled"] = verdict
            return response, route.key
        try:
            # 3. Latency, then 4. injected faults, then 5. the request itself.
            if self.latency_ms > 0:
                time.sleep(self.latency_ms / 1000.0)
            info = RequestInfo(
                request.method,
                request.path,
                realm_id,
                route.entity,
                route.operation,
                route.is_write,
            )
            rule = self.faults.take(info)

            def handler() -> HttpResponse:
                return self._execute(request, realm_id, route)

            response = handler() if rule is None else self._apply_fault(rule, handler, request)
        except BaseException:
            self.throttle.release(realm_id)
            raise
        # The server releases the in-flight slot once the response is on the wire.
        response.after_send = functools.partial(self.throttle.release, realm_id)
        return response, route.key

    def _execute(self, request: HttpRequest, realm_id: str, route: ApiRoute) -> HttpResponse:
        request_id = request.param("requestid") if route.is_write else None
        with self.lock:
            company = self.companies[realm_id]
            now = self.clock.now()
            if request_id and request_id in company.replay:
                # Same requestid in the same realm: the first response, unchanged ([requestid]).
                stored = company.replay[request_id]
                response = HttpResponse(
                    stored.status, stored.body.encode("utf-8"), stored.content_type
                )
                response.meta["replayed"] = True
                return response
            cacheable = bool(request_id)
            try:
                if request_id and len(request_id) > accounting.MAX_REQUEST_ID_LENGTH:
                    cacheable = False
                    # Wording from Intuit's Java SDK #180 ([requestid]: at most 50).
                    raise errors.business_validation(
                        "You cannot enter more than 50 characters in the request_id field. "
                        f"You tried entering {request_id[:10]}..., which is "
                        f"{len(request_id)} characters."
                    )
                payload = self._dispatch(company, route, request, now)
                status = 200
            except errors.QboFault as fault:
                payload = errors.service_fault_body(fault, iso_millis(now))
                status = fault.status
            payload.setdefault("time", iso_millis(now))
            response = json_response(status, payload)
            if cacheable and request_id:
                company.remember(
                    request_id,
                    StoredResponse(status, response.body.decode("utf-8"), response.content_type),
                )
            if route.is_write:
                self._dirty = True
        return response

    def _dispatch(
        self, company: Company, route: ApiRoute, request: HttpRequest, now: Any
    ) -> JsonDict:
        if route.body_error == "is not UTF-8":
            # A non-UTF-8 body is an "Unsupported Operation" ([errors]).
            raise errors.unsupported_operation("The request body is not valid UTF-8.")
        if route.body_error is not None:
            raise errors.invalid_property("body", route.body_error)
        if route.operation in ("create", "update", "delete"):
            assert route.spec is not None
            operation = "delete" if route.operation == "delete" else None
            entity = accounting.save_entity(
                company, route.spec, route.body, now, operation=operation
            )
            return {route.spec.name: entity}
        if route.operation == "read" and route.spec is not None and route.entity_id:
            return {route.spec.name: accounting.read_entity(company, route.spec, route.entity_id)}
        if route.operation == "read" and route.entity == "CompanyInfo":
            if route.entity_id != company.realm_id:
                raise errors.object_not_found()
            return {"CompanyInfo": accounting.company_info(company)}
        if route.operation == "query":
            return {"QueryResponse": accounting.run_query(company, company, str(route.body or ""))}
        if route.operation == "batch":
            items = accounting.run_batch(
                company, route.body, now, request_id=request.param("requestid")
            )
            return {"BatchItemResponse": items}
        if route.operation == "cdc":
            return {
                "CDCResponse": accounting.run_cdc(
                    company, company, request.param("entities"), request.param("changedSince"), now
                )
            }
        raise errors.unsupported_operation(
            f"Operation {request.method} {request.path} is not supported."
        )

    # --- faults and throttling ---
    def _apply_fault(
        self, rule: FaultRule, handler: Callable[[], HttpResponse], request: HttpRequest
    ) -> HttpResponse:
        kind = rule.kind
        response: HttpResponse
        if kind == "latency":
            time.sleep(rule.ms / 1000.0)
            response = handler()
        elif kind in ("500", "502", "503", "504"):
            response = html_response(int(kind), errors.html_error_page(int(kind)))
        elif kind in ("429", "429_xml"):
            response = self._throttled(xml=kind == "429_xml")
        elif kind == "401":
            body = errors.authentication_failed_body("Token expired", int(self.clock.time() * 1000))
            response = json_response(401, body)
        elif kind == "fault":
            fault = errors.QboFault(
                rule.code, rule.message, rule.detail, element=rule.element, status=rule.status
            )
            response = self._fault_response(fault, status=rule.status)
        elif kind == "timeout":
            executed = handler() if rule.commit or rule.then == "answer" else None
            time.sleep(rule.seconds)
            if rule.then == "answer" and executed is not None:
                response = executed
            else:
                response = executed or HttpResponse(status=504)
                response.drop = True
        else:  # lost_response: commit, then never answer
            response = handler()
            response.drop = True
        response.meta["fault"] = kind
        return response

    def _throttled(self, *, xml: bool) -> HttpResponse:
        now = self.clock.now()
        if xml:
            return xml_response(429, errors.throttle_xml_body(iso_millis(now)))
        return json_response(429, errors.throttle_json_body(int(now.timestamp() * 1000)))

    def _fault_response(self, fault: errors.QboFault, *, status: int | None = None) -> HttpResponse:
        body = errors.service_fault_body(fault, iso_millis(self.clock.now()))
        return json_response(status or fault.status, body)

    def _system_fault(self, exc: Exception) -> HttpResponse:
        fault = errors.QboFault(
            "10000",
            "An application error has occurred while processing your request",
            f"System Failure Error: {type(exc).__name__}: {exc}",
            status=500,
            fault_type="SystemFault",
        )
        return self._fault_response(fault)

    # --- request log ---
    def _log(
        self, request: HttpRequest, route: str, response: HttpResponse, seconds: float
    ) -> None:
        try:
            body_text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            body_text = repr(request.body)
        entry = {
            "at": iso_millis(self.clock.now()),
            "method": request.method,
            "path": request.path,
            "route": route,
            "query": {k: v[0] if len(v) == 1 else v for k, v in request.query.items()},
            "requestid": request.param("requestid"),
            "body": body_text[:_LOGGED_BODY_LIMIT],
            "status": response.status,
            "intuit_tid": response.headers.get("intuit_tid", request.intuit_tid),
            "replayed": bool(response.meta.get("replayed")),
            "fault": response.meta.get("fault"),
            "throttled": response.meta.get("throttled"),
            "dropped": response.drop,
            "duration_ms": round(seconds * 1000, 2),
        }
        with self.log_lock:
            entry["seq"] = next(self._log_seq)
            self.request_log.append(entry)


def _oauth_route(path: str) -> str:
    if path in oauth.DISCOVERY_PATHS:
        return "discovery"
    return {
        oauth.AUTHORIZE_PATH: "authorize",
        oauth.TOKEN_PATH: "token",
        oauth.REVOKE_PATH: "revoke",
        oauth.USERINFO_PATH: "userinfo",
        oauth.JWKS_PATH: "jwks",
    }.get(path, path)


def _classify(request: HttpRequest, rest: str) -> ApiRoute:
    parts = rest.split("/")
    method = request.method
    if len(parts) == 1 and parts[0] in SPECS_BY_PATH and method == "POST":
        spec = SPECS_BY_PATH[parts[0]]
        route = ApiRoute(f"POST {parts[0]}", "create", entity=spec.name, spec=spec)
        _parse_json_body(request, route)
        if request.param("operation") == "delete":
            route.operation = "delete"
        elif isinstance(route.body, dict) and route.body.get("Id") not in (None, ""):
            route.operation = "update"
        return route
    if len(parts) == 2 and parts[0] in SPECS_BY_PATH and method == "GET" and parts[1]:
        spec = SPECS_BY_PATH[parts[0]]
        return ApiRoute(
            f"GET {parts[0]}/{{id}}", "read", entity=spec.name, spec=spec, entity_id=parts[1]
        )
    if len(parts) == 2 and parts[0] == "companyinfo" and method == "GET":
        return ApiRoute("GET companyinfo/{id}", "read", entity="CompanyInfo", entity_id=parts[1])
    if rest == "query" and method in ("GET", "POST"):
        if method == "GET":
            statement = request.param("query") or ""
        else:
            try:
                statement = request.body.decode("utf-8")
            except UnicodeDecodeError:
                statement = ""
        found = _QUERY_ENTITY.search(statement)
        return ApiRoute(
            f"{method} query", "query", entity=found.group(1) if found else None, body=statement
        )
    if rest == "batch" and method == "POST":
        route = ApiRoute("POST batch", "batch")
        _parse_json_body(request, route)
        return route
    if rest == "cdc" and method == "GET":
        return ApiRoute("GET cdc", "cdc")
    return ApiRoute(f"{method} (unsupported)", "unsupported")


def _parse_json_body(request: HttpRequest, route: ApiRoute) -> None:
    try:
        route.body = json.loads(request.body.decode("utf-8") or "null")
    except UnicodeDecodeError:
        route.body_error = "is not UTF-8"
    except json.JSONDecodeError as exc:
        route.body_error = f"is not valid JSON ({exc.msg} at line {exc.lineno})"
