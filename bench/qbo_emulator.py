"""``python -m bench.qbo_emulator``: the QBO emulator with its query cost made independent of
the realm's size, for the sync benchmark. Same options as ``python -m qbo_client.emulator``.

Why: profiling the sync benchmark showed the stock emulator answering the sync's name
lookup (``SELECT * FROM Customer WHERE DisplayName IN (…30 names…)``) in time linear in
the number of customers in the realm, with its one state lock held: 21 ms with the demo
seed, 90 ms at 1,000 customers, 370 ms at 3,000, 850 ms at 6,000 (bench/README.md). Two
causes in ``qbo_client/emulator``:

* ``accounting.run_query`` deep-copies **every** entity of the type before filtering;
* ``query._compare`` re-normalises every ``IN`` literal for every entity.

QBO itself answers such a lookup in roughly constant time, so the stock emulator would
make the benchmark measure the emulator. The two replacements below give the same answers
(filter first, then copy only the page; normalise each literal once per query) and are
applied only in this process. They are the fix proposed for the emulator's owner.
"""

from __future__ import annotations

import copy
import sys
from functools import lru_cache
from typing import Any

from qbo_client.emulator import accounting, query
from qbo_client.emulator.__main__ import main as emulator_main

_stock_compare = query._compare


def _run_query(company: Any, view: Any, statement: str) -> dict[str, Any]:
    parsed = query.parse(statement)
    if parsed.entity in query.KNOWN_EMPTY_ENTITIES:
        return {"totalCount": 0} if parsed.count else {}

    def fields_for(name: str) -> frozenset[str] | None:
        if name in accounting.NAME_ENTITY_SPECS:
            return accounting.NAME_ENTITY_SPECS[name].fields
        return accounting._COMPANY_INFO_FIELDS if name == "CompanyInfo" else None

    query.validate(parsed, fields_for)
    if parsed.entity == "CompanyInfo":
        return query.execute(parsed, [accounting.company_info(company)], has_active=False)
    # Filter the live entities, then copy only what is returned (the stock code copies all).
    result = query.execute(parsed, list(view.values(parsed.entity)), has_active=True)
    if parsed.entity in result:
        result[parsed.entity] = copy.deepcopy(result[parsed.entity])
    return result


@lru_cache(maxsize=4096)
def _literal_keys(prop: str, values: tuple[Any, ...]) -> frozenset[Any]:
    return frozenset(query._literal_key(prop, literal) for literal in values)


def _compare(entity: dict[str, Any], condition: Any) -> bool:
    if condition.op != "IN":
        return bool(_stock_compare(entity, condition))
    value = query._prop_value(entity, condition.prop)
    if value is None:
        return False
    return query._sort_key(condition.prop, value) in _literal_keys(condition.prop, condition.values)


def patch() -> None:
    accounting.run_query = _run_query
    query._compare = _compare


if __name__ == "__main__":
    patch()
    sys.exit(emulator_main())
