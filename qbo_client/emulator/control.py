"""The control API under ``/__emulator__/`` (JSON, no authentication).

Tests and demos use it to reset and seed state, inject faults and latency, move the clock,
revoke tokens and read counters and the request log. Every endpoint is listed in
``docs/emulators/qbo.md``.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from qbo_client.emulator import errors
from qbo_client.emulator.clock import iso_millis
from qbo_client.emulator.seed import SEEDS, seed_entities
from qbo_client.emulator.state import ENTITY_TYPES
from qbo_client.emulator.wire import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from qbo_client.emulator.core import EmulatorCore

JsonDict = dict[str, Any]
PREFIX = "/__emulator__"


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlApi:
    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    def handle(self, request: HttpRequest) -> HttpResponse:
        action = request.path[len(PREFIX) :].strip("/")
        key = f"{request.method} {action}"
        routes = {
            "GET ": self._index,
            "POST reset": self._reset,
            "POST seed": self._seed,
            "GET state": self._state,
            "GET companies": self._companies,
            "POST companies": self._add_company,
            "GET counters": self._counters,
            "POST counters/reset": self._reset_counters,
            "DELETE counters": self._reset_counters,
            "GET faults": self._list_faults,
            "POST faults": self._add_faults,
            "DELETE faults": self._clear_faults,
            "GET chaos": self._get_chaos,
            "POST chaos": self._set_chaos,
            "DELETE chaos": self._clear_chaos,
            "GET latency": self._get_latency,
            "POST latency": self._set_latency,
            "GET clock": self._get_clock,
            "POST clock": self._advance_clock,
            "GET throttle": self._get_throttle,
            "POST throttle": self._set_throttle,
            "POST tokens": self._mint_tokens,
            "POST tokens/revoke-all": self._revoke_all,
            "GET requests": self._requests,
            "DELETE requests": self._clear_requests,
            "POST consent": self._set_consent,
        }
        handler = routes.get(key)
        if handler is None:
            return json_response(
                404, {"error": f"no control endpoint {key!r}", "endpoints": sorted(routes)}
            )
        try:
            payload = self._json(request)
            return json_response(200, handler(request, payload))
        except ControlError as exc:
            return json_response(exc.status, {"error": str(exc)})
        except (ValueError, KeyError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        except errors.QboFault as fault:
            return json_response(
                400, errors.service_fault_body(fault, iso_millis(self.core.clock.now()))
            )

    @staticmethod
    def _json(request: HttpRequest) -> JsonDict:
        if not request.body.strip():
            return {}
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ControlError(400, f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ControlError(400, "body must be a JSON object")
        return data

    @staticmethod
    def _realm(request: HttpRequest, payload: JsonDict) -> str | None:
        return payload.get("realm_id") or request.param("realm_id")

    # --- endpoints ---
    def _index(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return self.core.describe(request.base_url)

    def _reset(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        seed = payload.get("seed")
        if seed is not None and seed not in SEEDS:
            raise ControlError(400, f"seed must be one of {list(SEEDS)}")
        self.core.reset(seed=seed)
        company = self.core.company(None)
        return {
            "ok": True,
            "realm_id": company.realm_id,
            "counts": {t: len(company.entities[t]) for t in ENTITY_TYPES},
        }

    def _seed(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        core = self.core
        with core.lock:
            company = core.company(self._realm(request, payload))
            backup = company.snapshot()
            try:
                created = seed_entities(company, payload, core.clock.now())
            except BaseException:
                # All or nothing: restore the company as it was.
                core.companies[company.realm_id] = backup
                raise
            core.mark_dirty()
        return {"created": created}

    def _state(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        with self.core.lock:
            company = self.core.company(self._realm(request, payload))
            result: JsonDict = {"realm_id": company.realm_id, "company_name": company.company_name}
            for entity_type in ENTITY_TYPES:
                rows = sorted(company.entities[entity_type].values(), key=lambda e: int(e["Id"]))
                result[entity_type] = copy.deepcopy(rows)
            result["requestids"] = len(company.replay)
        return result

    def _companies(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        with self.core.lock:
            return {
                "companies": [
                    {
                        "realm_id": c.realm_id,
                        "company_name": c.company_name,
                        "counts": {t: len(c.entities[t]) for t in ENTITY_TYPES},
                    }
                    for c in self.core.companies.values()
                ]
            }

    def _add_company(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        realm_id = str(payload.get("realm_id") or "")
        if not realm_id.isdigit():
            raise ControlError(400, "realm_id (digits) is required")
        seed = str(payload.get("seed", "empty"))
        if seed not in SEEDS:
            raise ControlError(400, f"seed must be one of {list(SEEDS)}")
        name = str(payload.get("company_name") or f"Emulated Company {realm_id}")
        try:
            self.core.add_company(realm_id, name, seed)
        except ValueError as exc:
            raise ControlError(409, str(exc)) from None
        return {"realm_id": realm_id, "company_name": name}

    def _counters(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return self.core.counters_snapshot()

    def _reset_counters(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        self.core.counters.reset()
        self.core.throttle.reset()
        return {"ok": True}

    def _list_faults(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return {"faults": self.core.faults.rules()}

    def _add_faults(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        specs = payload.get("faults") if "faults" in payload else [payload]
        if not isinstance(specs, list) or not specs:
            raise ControlError(400, 'send one fault object or {"faults": [...]}')
        added = [self.core.faults.add(dict(spec)) for spec in specs]
        return {"faults": [{"id": r.id, "kind": r.kind, "remaining": r.remaining} for r in added]}

    def _clear_faults(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        self.core.faults.clear()
        return {"ok": True}

    def _get_chaos(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return self.core.faults.chaos()

    def _set_chaos(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        rates = payload.get("rates") or {}
        if not isinstance(rates, dict):
            raise ControlError(400, "rates must be an object of kind -> probability")
        self.core.faults.set_chaos(
            seed=payload.get("seed", 0),
            rates={str(k): float(v) for k, v in rates.items()},
            timeout_seconds=float(payload.get("timeout_seconds", 5.0)),
        )
        return self.core.faults.chaos()

    def _clear_chaos(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        self.core.faults.clear_chaos()
        return self.core.faults.chaos()

    def _get_latency(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return {"ms": self.core.latency_ms}

    def _set_latency(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        ms = float(payload.get("ms", 0))
        if ms < 0:
            raise ControlError(400, "ms must be >= 0")
        self.core.latency_ms = ms
        return {"ms": ms}

    def _clock_state(self) -> JsonDict:
        return {
            "now": iso_millis(self.core.clock.now()),
            "offset_seconds": self.core.clock.offset_seconds,
        }

    def _get_clock(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return self._clock_state()

    def _advance_clock(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        seconds = payload.get("advance_seconds", payload.get("seconds"))
        if seconds is None:
            raise ControlError(400, 'send {"advance_seconds": N}')
        if float(seconds) < 0:
            raise ControlError(400, "the clock only moves forward")
        self.core.clock.advance(float(seconds))
        self.core.mark_dirty()
        return self._clock_state()

    def _get_throttle(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        return dict(self.core.throttle.snapshot(), xml=self.core.throttle_xml)

    def _set_throttle(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        window = payload.get("window_seconds")
        self.core.throttle.configure(
            window_seconds=float(window) if window is not None else None,
            enabled=bool(payload["enabled"]) if "enabled" in payload else None,
        )
        if "xml" in payload:
            self.core.throttle_xml = bool(payload["xml"])
        if payload.get("reset_windows"):
            self.core.throttle.reset()
        return self._get_throttle(request, payload)

    def _mint_tokens(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        """Emulator shortcut: a fresh token pair without the browser redirect."""
        return self.core.mint_tokens(self._realm(request, payload))

    def _revoke_all(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        with self.core.lock:
            count = self.core.tokens.revoke_all(self._realm(request, payload))
            self.core.mark_dirty()
        return {"revoked_grants": count}

    def _requests(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        limit = int(request.param("limit") or payload.get("limit") or 100)
        path_filter = request.param("path")
        with self.core.log_lock:
            entries = list(self.core.request_log)
        if path_filter:
            entries = [e for e in entries if path_filter in e["path"]]
        return {"requests": entries[-limit:] if limit > 0 else []}

    def _clear_requests(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        with self.core.log_lock:
            self.core.request_log.clear()
        return {"ok": True}

    def _set_consent(self, request: HttpRequest, payload: JsonDict) -> JsonDict:
        self.core.consent_page = bool(payload.get("enabled", True))
        return {"consent_page": self.core.consent_page}
