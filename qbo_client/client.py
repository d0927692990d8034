"""The QBO Accounting API client for customers and sub-customers (jobs).

Built on python-quickbooks 0.9.12 (``QuickBooks`` + intuit-oauth ``AuthClient``,
https://github.com/ej2/python-quickbooks) and hardened where the library is not:

* a timeout adapter on ``qb.session``: the library never sets a timeout;
* a response hook that records every exchange, captures ``intuit_tid`` and turns every
  non-200 or non-JSON reply into a classified :class:`~qbo_client.errors.QboError` before
  the library sees it: the library drops the HTTP status and misreports 429s;
* typed errors, raised at once: the client never sleeps to retry. A transient error goes to
  the calling task, which retries with backoff (integrations/retry.py); a 429 pauses the
  realm in the limiter for every worker and raises :class:`ThrottledError` with how long;
* two instant retries that belong to the protocol rather than to patience: a request whose
  connection dropped is resent once at once, and a rejected access token is refreshed once
  (through the shared :class:`~qbo_client.tokens.TokenStore`) and the request replayed.
  Both are safe because every write carries a ``requestid``, so QBO replays a write it has
  already applied instead of applying it twice: https://blogs.intuit.com/2015/04/06/15346/;
* every request inside the per-realm rate limiter.

One client per task and realm; never share one across threads (the library's session and
``AuthClient`` are mutable).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from quickbooks import QuickBooks
from quickbooks.exceptions import QuickbooksException

from netguard import OutboundRefused
from qbo_client import oauth
from qbo_client.config import QboConfig, allow_insecure_loopback
from qbo_client.errors import (
    AuthError,
    ConnectionDroppedError,
    Fault,
    PermanentError,
    QboError,
    ReconnectRequired,
    RefusedHostError,
    ThrottledError,
    TransientError,
    classify,
    classify_response,
    fault_from_json,
    parse_body,
)
from qbo_client.names import escape_query_literal
from qbo_client.ratelimit import RateLimiter
from qbo_client.tokens import TokenSet, TokenStore
from qbo_client.transport import mount_timeouts

logger = logging.getLogger(__name__)

# /batch: at most 30 items; with a requestid, the id ≤ 36 characters and each bId ≤ 10.
# https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/batch
MAX_BATCH_ITEMS = 30
MAX_BATCH_REQUEST_ID_LENGTH = 36
MAX_BID_LENGTH = 10
MAX_REQUEST_ID_LENGTH = 50  # https://blogs.intuit.com/2015/04/06/15346/
MAX_PAGE_SIZE = 1000  # MAXRESULTS, see the queries link on query_customers_under_parent
_SENSITIVE_QUERY_PARAMS = frozenset({"access_token", "refresh_token", "code", "token"})
_SPARSE_RESERVED = frozenset({"Id", "SyncToken", "sparse"})


# --- plain values in and out ------------------------------------------------------------------


@dataclass(frozen=True)
class QboCustomerData:
    """A QBO Customer (a top-level customer or a job) as the sync needs it; ``raw`` is the
    entity exactly as QBO returned it."""

    id: str
    sync_token: str
    display_name: str
    parent_id: str | None
    is_job: bool
    active: bool
    fully_qualified_name: str
    level: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, entity: Mapping[str, Any]) -> QboCustomerData:
        parent = entity.get("ParentRef") or {}
        display_name = str(entity.get("DisplayName", ""))
        return cls(
            id=str(entity["Id"]),
            sync_token=str(entity.get("SyncToken", "0")),
            display_name=display_name,
            parent_id=str(parent["value"]) if parent.get("value") is not None else None,
            is_job=bool(entity.get("Job", False)),
            active=bool(entity.get("Active", True)),
            fully_qualified_name=str(entity.get("FullyQualifiedName", display_name)),
            level=int(entity.get("Level", 0)),
            raw=dict(entity),
        )


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP exchange with the Accounting API, for the "Json Script" view.

    Carries no Authorization header and no token; ``status`` is ``None`` when no response
    arrived (``error`` then names the failure, e.g. ``ReadTimeout``).
    """

    method: str
    url: str
    request_body: str | None
    status: int | None
    response_body: str | None
    intuit_tid: str | None
    duration_ms: int
    error: str | None = None


@dataclass(frozen=True)
class BatchItem:
    """One item of a ``/batch`` request (see MAX_BATCH_ITEMS). Build with the class methods."""

    bid: str
    operation: Literal["create", "update", "query"]
    customer: dict[str, Any] | None = None
    query: str | None = None

    @classmethod
    def create(cls, bid: str, body: Mapping[str, Any]) -> BatchItem:
        return cls(bid, "create", customer=dict(body))

    @classmethod
    def sparse_update(
        cls, bid: str, customer_id: str, sync_token: str, fields: Mapping[str, Any]
    ) -> BatchItem:
        return cls(bid, "update", customer=_sparse_body(customer_id, sync_token, fields))

    @classmethod
    def select(cls, bid: str, statement: str) -> BatchItem:
        return cls(bid, "query", query=statement)

    def to_json(self) -> dict[str, Any]:
        if self.operation == "query":
            return {"bId": self.bid, "Query": self.query}
        return {"bId": self.bid, "operation": self.operation, "Customer": self.customer}


@dataclass(frozen=True)
class BatchItemResult:
    """The outcome of one batch item: ``customer`` (create/update), ``customers`` (query) or
    a classified ``error``. ``raw`` is the item's response entry."""

    bid: str
    customer: QboCustomerData | None = None
    customers: list[QboCustomerData] = field(default_factory=list)
    error: QboError | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class _HttpFailure(Exception):
    """Raised from the response hook so python-quickbooks never parses a failed reply."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# --- the client --------------------------------------------------------------------------------


class QboClient:
    """Customer operations for one realm. See the module docstring for the guarantees."""

    def __init__(
        self,
        config: QboConfig,
        realm_id: str,
        token_store: TokenStore,
        limiter: RateLimiter,
        *,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.config = config
        self.realm_id = realm_id
        self._token_store = token_store
        self._limiter = limiter
        self._on_request = on_request
        self.last_intuit_tid: str | None = None

        tokens = token_store.current()
        api_base = config.resolved_api_base_url
        allow_insecure_loopback(api_base, oauth.discovery_url(config))
        auth_client = oauth.build_auth_client(
            config,
            access_token=tokens.access_token,  # a stored token: no refresh on construction
            refresh_token=tokens.refresh_token,
            realm_id=realm_id,
        )
        self._qb = QuickBooks(
            auth_client=auth_client,
            refresh_token=tokens.refresh_token,
            company_id=realm_id,
            minorversion=config.minorversion,
        )
        # api_url picks sandbox_api_url_v3 only for environment == "sandbox"; set both so the
        # configured base wins whatever the environment string (python-quickbooks).
        self._qb.api_url_v3 = api_base
        self._qb.sandbox_api_url_v3 = api_base
        session = self._qb.session
        mount_timeouts(
            session, config.timeout_seconds, allow_private_hosts=config.allow_private_hosts
        )
        session.hooks["response"].append(self._on_response)
        self._tokens = tokens

    # -- context management --

    def close(self) -> None:
        self._qb.session.close()
        self._qb.auth_client.close()

    def __enter__(self) -> QboClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads --

    def get_customer(self, customer_id: str) -> QboCustomerData:
        """``GET /customer/{Id}``; :class:`NotFoundError` for an unknown Id."""
        _check_id(customer_id)
        payload = self._request(
            lambda qb: qb.get_single_object("Customer", customer_id), is_read=True
        )
        return QboCustomerData.from_json(payload["Customer"])

    def query(self, statement: str) -> dict[str, Any]:
        """Run one query statement and return the ``QueryResponse`` object (may be ``{}``)."""
        # Bytes, not str: the library would hand a str body to http.client as Latin-1.
        body = statement.encode("utf-8")
        payload = self._request(lambda qb: qb.query(body))
        response = payload.get("QueryResponse") or {}
        return dict(response)

    def find_customers_by_display_name(
        self, name: str, include_inactive: bool = True
    ) -> list[QboCustomerData]:
        """Customers whose ``DisplayName`` equals ``name`` (inactive ones included by default:
        an inactive customer still holds its name)."""
        literal = escape_query_literal(name)
        # QBO's query language, not SQL; the literal is escaped (names.py).
        statement = f"SELECT * FROM Customer WHERE DisplayName = '{literal}'"  # noqa: S608
        if include_inactive:
            statement += " AND Active IN (true, false)"
        return _customers(self.query(statement))

    def query_customers_under_parent(
        self, parent_id: str, search: str | None = None, include_inactive: bool = True
    ) -> list[QboCustomerData]:
        """Direct children of ``parent_id`` (first 1000), optionally whose DisplayName
        contains ``search``.

        ``ParentRef`` as a query filter is not in Intuit's list of filterable properties
        (unverified); where it is refused, page :meth:`iter_all_customers` and filter
        locally instead. Queries, MAXRESULTS and LIKE:
        https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
        """
        _check_id(parent_id)
        statement = f"SELECT * FROM Customer WHERE ParentRef = '{parent_id}'"  # noqa: S608
        if search:
            # LIKE knows only the % wildcard and no way to escape it.
            literal = escape_query_literal(search.replace("%", ""))
            statement += f" AND DisplayName LIKE '%{literal}%'"
        if include_inactive:
            statement += " AND Active IN (true, false)"
        return _customers(self.query(statement + f" MAXRESULTS {MAX_PAGE_SIZE}"))

    def iter_all_customers(
        self, include_inactive: bool = True, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[list[QboCustomerData]]:
        """Every customer, a page at a time, ordered by Id (for the local cache refresh).
        Pages until one is shorter than ``page_size``."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        where = " WHERE Active IN (true, false)" if include_inactive else ""
        start = 1
        while True:
            page = _customers(
                self.query(
                    f"SELECT * FROM Customer{where} ORDERBY Id "  # noqa: S608
                    f"STARTPOSITION {start} MAXRESULTS {page_size}"
                )
            )
            if page:
                yield page
            if len(page) < page_size:
                return
            start += page_size

    # -- writes --

    def create_customer(self, body: Mapping[str, Any], request_id: str) -> QboCustomerData:
        """``POST /customer`` with ``requestid``. A sub-customer needs ``Job: true`` and
        ``ParentRef`` in ``body`` (the Customer entity, see :meth:`sparse_update_customer`).
        Reusing ``request_id`` after a lost response replays the first result instead of
        creating a duplicate."""
        _check_request_id(request_id, MAX_REQUEST_ID_LENGTH)
        if "Id" in body:
            raise ValueError("create_customer body must not carry an Id")
        data = json.dumps(dict(body))
        payload = self._request(
            lambda qb: qb.create_object("Customer", data, request_id=request_id),
            display_name=_display_name(body),
        )
        return QboCustomerData.from_json(payload["Customer"])

    def sparse_update_customer(
        self,
        customer_id: str,
        sync_token: str,
        fields: Mapping[str, Any],
        request_id: str,
    ) -> QboCustomerData:
        """Sparse update: only ``fields`` change. The body is built by hand; python-quickbooks
        objects would send ``""`` defaults that blank data. The Customer entity:
        https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
        """
        _check_id(customer_id)
        _check_request_id(request_id, MAX_REQUEST_ID_LENGTH)
        data = json.dumps(_sparse_body(customer_id, sync_token, fields))
        payload = self._request(
            lambda qb: qb.update_object("Customer", data, request_id=request_id),
            display_name=_display_name(fields),
        )
        return QboCustomerData.from_json(payload["Customer"])

    def batch(
        self, items: list[BatchItem], request_id: str | None = None, *, wait_for_slot: bool = True
    ) -> list[BatchItemResult]:
        """One ``POST /batch`` of at most 30 items; results come back in ``items`` order.

        ``wait_for_slot=False``: when the realm's batch window (40 per minute) is full, raise
        :class:`~qbo_client.ratelimit.BatchWindowFull` at once, before anything is sent, so
        the caller can send the items as single requests from the rest of the budget.

        Items cannot see each other (no parent and child in one batch). A dropped connection
        resends the request as a whole with the same ``requestid``; per-item faults are
        returned, not raised. ``request_id=None`` generates one per call, which still makes
        this call's own resend safe but not a later call's.
        """
        if not items:
            return []
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ITEMS} items")
        bids = [item.bid for item in items]
        if len(set(bids)) != len(bids) or any(not 1 <= len(b) <= MAX_BID_LENGTH for b in bids):
            raise ValueError(f"bIds must be unique and 1-{MAX_BID_LENGTH} characters")
        request_id = request_id or uuid.uuid4().hex
        _check_request_id(request_id, MAX_BATCH_REQUEST_ID_LENGTH)
        data = json.dumps({"BatchItemRequest": [item.to_json() for item in items]})

        # The library's batch helpers send random 36-char bIds and no requestid, so
        # post the body ourselves through the library's generic post(), which does pass
        # requestid and minorversion to the same /batch URL.
        def send(qb: QuickBooks) -> Any:
            url = f"{qb.api_url}/company/{qb.company_id}/batch"
            return qb.post(url, data, request_id=request_id)

        payload = self._request(send, batch=True, batch_wait=wait_for_slot)
        tid = self.last_intuit_tid
        by_bid = {
            str(entry.get("bId")): entry
            for entry in payload.get("BatchItemResponse", [])
            if isinstance(entry, Mapping)
        }
        return [_batch_result(item, by_bid.get(item.bid), tid) for item in items]

    # -- plumbing --

    def _request(
        self,
        send: Callable[[QuickBooks], Any],
        *,
        batch: bool = False,
        batch_wait: bool = True,
        is_read: bool = False,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """Send once, inside the realm's limiter, and raise a typed error for any failure.

        Two retries happen here, at once and at most once each, because they are part of
        talking to QBO rather than patience (that is the calling task's, with backoff):

        * a dropped connection (refused, reset, cut off mid-answer) resends the request once.
          Every request of this client may be sent twice: reads change nothing and every
          write carries a ``requestid``, which QBO answers with the first result;
        * a rejected access token is refreshed once and the request replayed; a second
          rejection means only a reconnect helps. OAuth 2.0 at Intuit:
          https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0

        ``send`` must send the very same request (same body, same requestid) each call.
        """
        self._refresh_if_expiring()
        refreshed = resent = False
        while True:
            sent = False
            try:
                with self._limiter.acquire(self.realm_id, batch=batch, batch_wait=batch_wait):
                    sent = True
                    # Once sent, a resend must stay this request (same requestid): never give
                    # it up for a full batch window, which would let the caller send its
                    # items again some other way while QBO may have applied them.
                    batch_wait = True
                    return self._send_once(send, is_read=is_read, display_name=display_name)
            except AuthError as exc:
                if refreshed:
                    # A freshly refreshed token was rejected too: only a reconnect helps.
                    raise ReconnectRequired(
                        "QuickBooks rejected a freshly refreshed token; reconnect QuickBooks",
                        code=exc.code,
                        intuit_tid=exc.intuit_tid,
                        status=exc.status,
                        detail=exc.detail,
                    ) from exc
                refreshed = True
                self._refresh()
            except ConnectionDroppedError as exc:
                if resent:
                    raise
                resent = True
                logger.info("QBO connection dropped (%s); resending once", exc.detail)
            except ThrottledError as exc:
                if sent:
                    # QBO said 429: pause the realm for every worker, and tell the caller how
                    # long. The limits:
                    # https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles
                    self._limiter.pause(self.realm_id, exc.retry_after)
                    if exc.retry_after is None:
                        exc.retry_after = self._limiter.default_pause_seconds
                raise

    def _send_once(
        self, send: Callable[[QuickBooks], Any], *, is_read: bool, display_name: str | None
    ) -> dict[str, Any]:
        started = time.monotonic()
        try:
            result = send(self._qb)
        except OutboundRefused as exc:
            # Nothing was sent: no exchange to record, and no retry can help.
            raise RefusedHostError(exc.reason) from exc
        except _HttpFailure as failure:
            response = failure.response
            raise classify_response(
                status=response.status_code,
                text=response.text,
                headers=response.headers,
                is_read=is_read,
                display_name=display_name,
            ) from None
        except requests.Timeout as exc:
            # Not resent here: QBO may still be working on it, and the wait was already
            # timeout_seconds long. The task tries again after its backoff (same requestid).
            self._record_no_response(exc, started)
            raise TransientError(
                "QuickBooks did not answer in time; will retry", detail=type(exc).__name__
            ) from exc
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            # Refused, reset, or cut off mid-response: _request resends once.
            self._record_no_response(exc, started)
            raise ConnectionDroppedError(
                "Could not connect to QuickBooks; will retry", detail=type(exc).__name__
            ) from exc
        except QuickbooksException as exc:
            # Only reachable for a 200 whose JSON carries a top-level Fault.
            code = str(exc.error_code) if exc.error_code else None
            raise classify(
                status=200,
                fault=Fault(code, str(exc.message), str(exc.detail or ""), None, None),
                intuit_tid=self.last_intuit_tid,
                is_read=is_read,
                display_name=display_name,
            ) from exc
        if not isinstance(result, dict):
            raise TransientError("Unexpected reply from QuickBooks", status=200)
        return result

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests response hook on ``qb.session``: runs before python-quickbooks looks at
        the reply."""
        tid = response.headers.get("intuit_tid")
        self.last_intuit_tid = tid
        text = response.text
        self._emit(
            RequestRecord(
                method=str(response.request.method),
                url=_safe_url(str(response.request.url)),
                request_body=_body_text(response.request.body),
                status=response.status_code,
                response_body=text,
                intuit_tid=tid,
                duration_ms=int(response.elapsed.total_seconds() * 1000),
            )
        )
        if response.status_code != 200 or not parse_body(text).is_json:
            raise _HttpFailure(response)

    def _record_no_response(self, exc: requests.RequestException, started: float) -> None:
        request = exc.request
        self.last_intuit_tid = None
        self._emit(
            RequestRecord(
                method=str(getattr(request, "method", "") or ""),
                url=_safe_url(str(getattr(request, "url", "") or "")),
                request_body=_body_text(getattr(request, "body", None)),
                status=None,
                response_body=None,
                intuit_tid=None,
                duration_ms=int((time.monotonic() - started) * 1000),
                error=type(exc).__name__,
            )
        )

    def _emit(self, record: RequestRecord) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(record)
        except Exception:
            # Recording is best effort: a broken recorder must not fail (or repeat) a write.
            logger.exception("on_request callback failed")

    def _refresh_if_expiring(self) -> None:
        if self._tokens.access_expires_within(
            self.config.refresh_margin_seconds, now=datetime.now(UTC)
        ):
            self._refresh()

    def _refresh(self) -> None:
        config = self.config

        def refresher(refresh_token: str) -> TokenSet:
            return oauth.refresh_tokens(config, refresh_token)

        tokens = self._token_store.refresh(self._tokens.access_token, refresher)
        self._use_tokens(tokens)

    def _use_tokens(self, tokens: TokenSet) -> None:
        # The library never refreshes on its own after construction; point its session
        # and AuthClient at the new tokens.
        self._tokens = tokens
        self._qb.session.token = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
        }
        self._qb.auth_client.access_token = tokens.access_token
        self._qb.auth_client.refresh_token = tokens.refresh_token
        self._qb.refresh_token = tokens.refresh_token


# --- helpers -----------------------------------------------------------------------------------


def _sparse_body(customer_id: str, sync_token: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    reserved = _SPARSE_RESERVED & set(fields)
    if reserved:
        raise ValueError(f"fields must not contain {sorted(reserved)}")
    return {"Id": str(customer_id), "SyncToken": str(sync_token), "sparse": True, **fields}


def _customers(query_response: Mapping[str, Any]) -> list[QboCustomerData]:
    # No matches: QueryResponse is {} with no Customer key.
    return [QboCustomerData.from_json(c) for c in query_response.get("Customer", [])]


def _display_name(body: Mapping[str, Any]) -> str | None:
    name = body.get("DisplayName")
    return str(name) if name is not None else None


def _batch_result(
    item: BatchItem, entry: Mapping[str, Any] | None, intuit_tid: str | None
) -> BatchItemResult:
    if entry is None:
        return BatchItemResult(
            item.bid,
            error=TransientError(
                "QuickBooks returned no result for this batch item; will retry",
                intuit_tid=intuit_tid,
            ),
        )
    raw = dict(entry)
    fault = fault_from_json(entry)
    if fault is not None:
        error = classify(
            status=None,
            fault=fault,
            intuit_tid=intuit_tid,
            display_name=_display_name(item.customer or {}),
        )
        return BatchItemResult(item.bid, error=error, raw=raw)
    try:
        if isinstance(entry.get("Customer"), Mapping):
            return BatchItemResult(
                item.bid, customer=QboCustomerData.from_json(entry["Customer"]), raw=raw
            )
        if "QueryResponse" in entry:
            return BatchItemResult(
                item.bid, customers=_customers(entry.get("QueryResponse") or {}), raw=raw
            )
    except (KeyError, TypeError, ValueError, AttributeError):
        pass  # a Customer without an Id, a Level that is no number: not a usable answer
    return BatchItemResult(
        item.bid,
        error=PermanentError("Unexpected batch item reply from QuickBooks", intuit_tid=intuit_tid),
        raw=raw,
    )


def _check_id(customer_id: str) -> None:
    # Ids go into URL paths; QBO Ids are decimal strings.
    if not str(customer_id).isdigit():
        raise ValueError(f"not a QBO Id: {customer_id!r}")


def _check_request_id(request_id: str, max_length: int) -> None:
    if not request_id or len(request_id) > max_length:
        raise ValueError(f"requestid must be 1-{max_length} characters")


def _body_text(body: object) -> str | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body)


def _safe_url(url: str) -> str:
    """The URL without anything token-like in its query (none is expected: tokens travel in
    the Authorization header, which is never recorded)."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _SENSITIVE_QUERY_PARAMS
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))
