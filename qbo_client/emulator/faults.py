"""Fault injection: scripted rules for the next N matching requests, and seeded chaos.

A rule matches on any of ``method``, ``path`` (substring), ``entity``, ``operation`` and
``realm_id``; unspecified criteria match everything. Kinds:

* ``"500"``, ``"502"``, ``"503"``, ``"504"``: that status with an HTML body (proxies do this,
  [errors]); nothing is executed.
* ``"429"`` / ``"429_xml"``: a throttling fault (code 3001) as lower-case JSON or as XML.
* ``"401"``: the gateway's 3200 authentication fault, as if the token had just expired.
* ``"fault"``: a service fault with the given ``status``, ``code``, ``message``, ``detail``.
* ``"timeout"``: wait ``seconds`` then close the connection without an answer
  (``then="close"``, the default) or answer normally (``then="answer"``); with
  ``commit=true`` (implied by ``then="answer"``) the request is executed before the wait.
* ``"lost_response"``: execute (commit) the request, then drop the connection unanswered;
  a retry with the same ``requestid`` is replayed from the stored response ([requestid]).
* ``"latency"``: wait ``ms`` milliseconds, then handle the request normally.

Sources:
[errors] Intuit, error codes:
    https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
[requestid] Intuit developer blog, Request ID:
    https://blogs.intuit.com/2015/04/06/15346/
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

JsonDict = dict[str, Any]

KINDS = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "429",
        "429_xml",
        "401",
        "fault",
        "timeout",
        "lost_response",
        "latency",
    }
)
_ALIASES = {
    "429-xml": "429_xml",
    "429xml": "429_xml",
    "xml429": "429_xml",
    "lost-response": "lost_response",
    "lost": "lost_response",
}
CHAOS_KINDS = frozenset({"500", "502", "503", "504", "429", "429_xml", "timeout", "lost_response"})


@dataclass(frozen=True)
class RequestInfo:
    """What a fault rule can match on."""

    method: str
    path: str
    realm_id: str | None
    entity: str | None
    operation: str
    is_write: bool


@dataclass
class FaultRule:
    id: int
    kind: str
    remaining: int
    method: str | None = None
    path: str | None = None
    entity: str | None = None
    operation: str | None = None
    realm_id: str | None = None
    seconds: float = 30.0
    ms: float = 0.0
    then: str = "close"
    commit: bool = False
    status: int = 400
    code: str = "6000"
    message: str = "A business validation error has occurred while processing your request"
    detail: str = "Business Validation Error: injected fault"
    element: str = ""
    fired: int = 0

    def matches(self, info: RequestInfo) -> bool:
        if self.method and self.method.upper() != info.method.upper():
            return False
        if self.path and self.path not in info.path:
            return False
        if self.entity and (info.entity or "").lower() != self.entity.lower():
            return False
        if self.operation and self.operation.lower() != info.operation.lower():
            return False
        return not (self.realm_id and self.realm_id != info.realm_id)


def normalise_kind(kind: Any) -> str:
    text = str(kind).strip().lower()
    text = _ALIASES.get(text, text)
    if text not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")
    return text


class FaultInjector:
    """Thread-safe store of fault rules plus the optional chaos mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._chaos_rng: random.Random | None = None
        self._chaos_rates: dict[str, float] = {}
        self._chaos_seed: Any = None
        self.chaos_timeout_seconds = 5.0

    def add(self, spec: JsonDict) -> FaultRule:
        kind = normalise_kind(spec.get("kind", ""))
        count = int(spec.get("count", 1))
        if count < 1:
            raise ValueError("count must be at least 1")
        then = str(spec.get("then", "close")).lower()
        if then not in ("close", "answer"):
            raise ValueError("then must be 'close' or 'answer'")
        rule = FaultRule(
            id=next(self._ids),
            kind=kind,
            remaining=count,
            method=spec.get("method"),
            path=spec.get("path"),
            entity=spec.get("entity"),
            operation=spec.get("operation"),
            realm_id=spec.get("realm_id"),
            seconds=float(spec.get("seconds", 30.0)),
            ms=float(spec.get("ms", 0.0)),
            then=then,
            commit=bool(spec.get("commit", then == "answer")),
            status=int(spec.get("status", 400)),
            code=str(spec.get("code", "6000")),
            message=str(spec.get("message", FaultRule.message)),
            detail=str(spec.get("detail", FaultRule.detail)),
            element=str(spec.get("element", "")),
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[JsonDict]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def take(self, info: RequestInfo) -> FaultRule | None:
        """The first matching rule (consumed once), else a chaos draw for API writes."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.matches(info):
                    rule.remaining -= 1
                    rule.fired += 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
            if self._chaos_rng is not None and info.is_write and info.realm_id is not None:
                draw = self._chaos_rng.random()
                for kind, rate in self._chaos_rates.items():
                    if draw < rate:
                        return FaultRule(
                            id=0, kind=kind, remaining=0, seconds=self.chaos_timeout_seconds
                        )
                    draw -= rate
        return None

    def set_chaos(self, *, seed: Any, rates: dict[str, float], timeout_seconds: float) -> None:
        clean_rates: dict[str, float] = {}
        for kind, rate in rates.items():
            normalised = normalise_kind(kind)
            if normalised not in CHAOS_KINDS:
                raise ValueError(f"{kind!r} cannot be used in chaos mode")
            value = float(rate)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rate for {kind!r} must be between 0 and 1")
            clean_rates[normalised] = value
        if sum(clean_rates.values()) > 1.0:
            raise ValueError("chaos rates add up to more than 1")
        with self._lock:
            # Rates applied in sorted order so the same seed gives the same sequence.
            self._chaos_rates = dict(sorted(clean_rates.items()))
            self._chaos_seed = seed
            self._chaos_rng = random.Random(seed) if clean_rates else None
            self.chaos_timeout_seconds = float(timeout_seconds)

    def clear_chaos(self) -> None:
        with self._lock:
            self._chaos_rng = None
            self._chaos_rates = {}
            self._chaos_seed = None

    def chaos(self) -> JsonDict:
        with self._lock:
            return {
                "enabled": self._chaos_rng is not None,
                "seed": self._chaos_seed,
                "rates": dict(self._chaos_rates),
                "timeout_seconds": self.chaos_timeout_seconds,
            }
