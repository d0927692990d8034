"""In-memory companies (one per realm) and their JSON persistence.

Everything here is mutated only while holding ``EmulatorState.lock`` (one lock around all
state mutations), so ThreadingHTTPServer's concurrent handlers never see half a write.

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[batch] Intuit, batch:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/batch
[requestid] Intuit developer blog, Request ID:
    https://blogs.intuit.com/2015/04/06/15346/
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from qbo_client.emulator.rules import NAME_ENTITY_SPECS, name_key

JsonDict = dict[str, Any]

ENTITY_TYPES = tuple(NAME_ENTITY_SPECS)
# How many requestid responses a realm remembers. Intuit does not document the retention
# ([requestid], unverified); this is generous for any test or benchmark run.
REPLAY_CACHE_SIZE = 20_000
STATE_FILE_VERSION = 1


@dataclass
class StoredResponse:
    """A response kept for ``requestid`` replay: status and body come back unchanged
    ([requestid])."""

    status: int
    body: str
    content_type: str

    def to_json(self) -> JsonDict:
        return {"status": self.status, "body": self.body, "content_type": self.content_type}

    @classmethod
    def from_json(cls, data: JsonDict) -> StoredResponse:
        return cls(int(data["status"]), str(data["body"]), str(data["content_type"]))


class EntityView(Protocol):
    """Read access to a company's entities (the live company or a batch snapshot)."""

    def get(self, entity_type: str, entity_id: str) -> JsonDict | None: ...

    def values(self, entity_type: str) -> Iterable[JsonDict]: ...


class Company:
    """One QBO company (realm): its name-list entities, id sequences and replay cache."""

    def __init__(self, realm_id: str, company_name: str) -> None:
        self.realm_id = realm_id
        self.company_name = company_name
        self.entities: dict[str, dict[str, JsonDict]] = {t: {} for t in ENTITY_TYPES}
        # Customers, vendors and employees share one name list, so they draw Ids from one
        # sequence (as in QBO sample companies) and share the DisplayName namespace ([customer]).
        self.next_id = 1
        self.next_address_id = 1
        self.replay: OrderedDict[str, StoredResponse] = OrderedDict()
        self._names: dict[str, tuple[str, str]] = {}

    # --- reads (EntityView) ---
    def get(self, entity_type: str, entity_id: str) -> JsonDict | None:
        return self.entities.get(entity_type, {}).get(entity_id)

    def values(self, entity_type: str) -> Iterable[JsonDict]:
        return self.entities.get(entity_type, {}).values()

    # --- writes ---
    def allocate_id(self) -> str:
        value = self.next_id
        self.next_id += 1
        return str(value)

    def allocate_address_id(self) -> str:
        value = self.next_address_id
        self.next_address_id += 1
        return str(value)

    def put(self, entity_type: str, entity: JsonDict) -> None:
        entity_id = entity["Id"]
        previous = self.entities[entity_type].get(entity_id)
        if previous is not None:
            self._names.pop(name_key(previous.get("DisplayName", "")), None)
        self.entities[entity_type][entity_id] = entity
        self._names[name_key(entity.get("DisplayName", ""))] = (entity_type, entity_id)

    def name_holder(self, display_name: str) -> tuple[str, str] | None:
        """Who holds this DisplayName (any type, inactive included), if anyone."""
        return self._names.get(name_key(display_name))

    def remember(self, request_id: str, response: StoredResponse) -> None:
        self.replay[request_id] = response
        self.replay.move_to_end(request_id)
        while len(self.replay) > REPLAY_CACHE_SIZE:
            self.replay.popitem(last=False)

    def children_of(self, parent_id: str) -> Iterator[JsonDict]:
        for customer in self.entities["Customer"].values():
            if customer.get("ParentRef", {}).get("value") == parent_id:
                yield customer

    # --- persistence ---
    def to_json(self) -> JsonDict:
        return {
            "realm_id": self.realm_id,
            "company_name": self.company_name,
            "next_id": self.next_id,
            "next_address_id": self.next_address_id,
            "entities": {t: list(v.values()) for t, v in self.entities.items()},
            "replay": {k: v.to_json() for k, v in self.replay.items()},
        }

    @classmethod
    def from_json(cls, data: JsonDict) -> Company:
        company = cls(str(data["realm_id"]), str(data.get("company_name", "")))
        company.next_id = int(data.get("next_id", 1))
        company.next_address_id = int(data.get("next_address_id", 1))
        for entity_type, items in data.get("entities", {}).items():
            if entity_type in company.entities:
                for entity in items:
                    company.put(entity_type, entity)
        for request_id, stored in data.get("replay", {}).items():
            company.replay[request_id] = StoredResponse.from_json(stored)
        return company

    def snapshot(self) -> Company:
        """A deep copy, used to make control-API seeding all-or-nothing."""
        return copy.deepcopy(self)


class BatchView:
    """The company as it was when a batch started: batch items are blind to each other ([batch]).

    Writes inside the batch record each entity's pre-image here before changing it, so reads
    (queries, ParentRef lookups) see the old state while the live company moves on.
    """

    def __init__(self, company: Company) -> None:
        self.company = company
        self.preimages: dict[tuple[str, str], JsonDict | None] = {}

    def record(self, entity_type: str, entity_id: str) -> None:
        key = (entity_type, entity_id)
        if key not in self.preimages:
            current = self.company.get(entity_type, entity_id)
            self.preimages[key] = copy.deepcopy(current) if current is not None else None

    def get(self, entity_type: str, entity_id: str) -> JsonDict | None:
        key = (entity_type, entity_id)
        if key in self.preimages:
            return self.preimages[key]
        return self.company.get(entity_type, entity_id)

    def values(self, entity_type: str) -> Iterable[JsonDict]:
        for entity_id, entity in self.company.entities.get(entity_type, {}).items():
            key = (entity_type, entity_id)
            if key in self.preimages:
                before = self.preimages[key]
                if before is not None:
                    yield before
            else:
                yield entity


class StateFile:
    """Atomic JSON persistence for ``--state FILE`` (write to a temp file, then rename)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._write_lock = threading.Lock()

    def load(self) -> JsonDict | None:
        if not os.path.exists(self.path):
            return None
        with open(self.path, encoding="utf-8") as handle:
            data: JsonDict = json.load(handle)
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"{self.path}: unsupported state file version {data.get('version')}")
        return data

    @staticmethod
    def serialise(data: JsonDict) -> str:
        return json.dumps(dict(data, version=STATE_FILE_VERSION))

    def write(self, text: str) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        with self._write_lock:
            fd, temp_path = tempfile.mkstemp(prefix=".qbo-emulator-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temp_path, self.path)
            except BaseException:
                if os.path.exists(temp_path):
                    os.unlink(temp_path)
                raise
