"""The demo seed holds the Linarc emulator's demo clients without moving any earlier Id."""

from __future__ import annotations

from typing import Any

import pytest

from linarc_client.emulator.data import DEMO_CLIENT_NAMES, OTHER_CLIENT_NAMES
from qbo_client.emulator.rules import name_key
from qbo_client.emulator.seed import (
    DEMO_CLIENTS,
    DEMO_LINARC_CLIENTS,
    DEMO_LINARC_CLIENTS_MISSING,
    DEMO_LINARC_CLIENTS_RESPELLED,
    seed_company,
)
from qbo_client.emulator.state import Company

LEFT_OUT = {"Oakmont Church of the Valley", "Copper Canyon Foods", "Prairie Wind Energy"}


@pytest.fixture(scope="module")
def demo() -> Company:
    company = Company("9130000000000001", "Demo")
    seed_company(company, "demo")
    return company


def _by_name(company: Company) -> dict[str, dict[str, Any]]:
    return {
        entity["DisplayName"]: entity
        for entity_type in ("Customer", "Vendor", "Employee")
        for entity in company.values(entity_type)
    }


def test_earlier_entities_keep_their_ids(demo: Company) -> None:
    # The Ids these had before the Linarc demo clients were added (#15): saved states, the
    # docs and people's demo notes refer to them.
    by_name = _by_name(demo)
    assert by_name["Cascade County Schools"]["Id"] == "1"
    assert by_name["Larkspur Community Hospital"]["Id"] == "60"
    assert by_name["Benton Street Lofts"]["Id"] == "62"
    assert by_name["CCS-2417 Maple Ridge Gym Addition"]["Id"] == "63"
    assert by_name["OMD-0042 Warehouse Conversion"]["Id"] == "69"
    assert by_name["Summit Concrete Supply"]["Id"] == "70"
    assert by_name["Northwest Lumber Co."]["Id"] == "75"
    assert by_name["Maria Alvarez"]["Id"] == "76"
    assert by_name["Tom Becker"]["Id"] == "79"
    # The Linarc demo clients come after all of them.
    linarc_ids = [by_name[name]["Id"] for name in DEMO_LINARC_CLIENTS]
    linarc_ids += [by_name[qbo]["Id"] for _, qbo in DEMO_LINARC_CLIENTS_RESPELLED]
    assert [int(i) for i in linarc_ids] == list(range(80, 80 + len(linarc_ids)))


def test_linarc_demo_clients_are_customers_except_three(demo: Company) -> None:
    customers = {c["DisplayName"]: c for c in demo.values("Customer")}
    respelled = dict(DEMO_LINARC_CLIENTS_RESPELLED)
    assert set(DEMO_LINARC_CLIENTS_MISSING) == LEFT_OUT
    assert set(respelled) <= set(DEMO_CLIENT_NAMES)
    exact = [name for name in DEMO_CLIENT_NAMES if name not in respelled and name not in LEFT_OUT]
    assert len(exact) == 32 and len(respelled) == 5
    for name in exact:
        assert name in customers, name
        customer = customers[name]
        assert customer["Active"] is True and customer["Job"] is False
        assert customer["BillAddr"]["City"] and customer["PrimaryEmailAddr"]["Address"]
    for linarc_name, qbo_name in respelled.items():
        assert linarc_name not in customers
        assert qbo_name in customers and qbo_name != linarc_name
        assert name_key(qbo_name) != name_key(linarc_name)
    for name in LEFT_OUT:
        assert name not in customers


def test_other_linarc_clients_are_absent(demo: Company) -> None:
    keys = {name_key(name) for name in _by_name(demo)}
    for name in (*OTHER_CLIENT_NAMES, *LEFT_OUT):
        assert name_key(name) not in keys, name


def test_demo_names_are_unique_across_entity_types(demo: Company) -> None:
    names = [
        entity["DisplayName"]
        for entity_type in ("Customer", "Vendor", "Employee")
        for entity in demo.values(entity_type)
    ]
    assert len({name_key(name) for name in names}) == len(names)
    assert len(names) == len(DEMO_CLIENTS) + 2 + 7 + 6 + 4 + 35
