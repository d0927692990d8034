"""Creating a top-level customer in QuickBooks for a client it does not have yet.

Duplicate-safe twice over: the name is looked up in QuickBooks first (inactive customers
included: they still hold their name), and an existing customer is returned for mapping
instead of a second create; the create carries a ``requestid`` derived from the company and
the name, so a retry after a lost answer gets QuickBooks' first answer back instead of a
second customer (https://developer.intuit.com/app/developer/qbo/docs/learn/rest-api-features#idempotency).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from integrations.errors import Refused
from integrations.models import Company, QboCustomer
from integrations.services.qbo import qbo_client_for
from integrations.services.qbo_connection import qbo_customers_upsert
from qbo_client.errors import QboError
from qbo_client.names import normalize_for_compare

# QBO's DisplayName holds at most 500 characters, CompanyName 100; the name goes in both
# (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer).
MAX_NAME_LENGTH = 100
_REQUEST_IDS = uuid.UUID("8f6f1d52-6d0e-4e0b-9a51-3c1b6c6a2f10")


class CustomerNotCreated(Refused):
    """QuickBooks refused the new customer, or the name cannot be used."""


@dataclass(frozen=True)
class CustomerCreated:
    customer: QboCustomer
    existed: bool  # QuickBooks already had a customer of that name: nothing was created


def customer_request_id(*, company: Company, name: str) -> str:
    """The same for the same company and name (as QBO compares names): 32 characters."""
    key = f"{company.pk}:customer:{normalize_for_compare(name)}"
    return uuid.uuid5(_REQUEST_IDS, key).hex


def qbo_customer_create(*, company: Company, display_name: str) -> CustomerCreated:
    """The customer named ``display_name``: found in QuickBooks, or created there; either
    way written to the company's customer cache."""
    name = " ".join(display_name.split())
    if not name:
        raise CustomerNotCreated("The Linarc client has no name to create a customer with.")
    if len(name) > MAX_NAME_LENGTH:
        raise CustomerNotCreated(
            f"“{name[:40]}…” is longer than QuickBooks allows ({MAX_NAME_LENGTH} characters)."
        )
    try:
        with qbo_client_for(company=company) as client:
            found = client.find_customers_by_display_name(name)
            if found:
                qbo_customers_upsert(company=company, customers=found)
                return CustomerCreated(_cached(company, found[0].id), existed=True)
            created = client.create_customer(
                {"DisplayName": name, "CompanyName": name},
                customer_request_id(company=company, name=name),
            )
    except QboError as exc:
        raise CustomerNotCreated(f"QuickBooks did not create “{name}”: {exc.reason}") from exc
    qbo_customers_upsert(company=company, customers=[created])
    return CustomerCreated(_cached(company, created.id), existed=False)


def _cached(company: Company, qbo_id: str) -> QboCustomer:
    return QboCustomer.objects.get(company=company, qbo_id=qbo_id)
