"""What a staged project becomes in QBO: the sub-customer body, built without calling QBO.

The same function serves the sync (what is sent) and the Json Script dry run (what the next
sync will send), so the preview can never drift from the real request.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from integrations.models import SyncRules
from qbo_client.names import escape_query_literal, sanitize_display_name
from staging.models import StagedProject

# Fields QBO receives; a Linarc change to any of them makes a Synced row Needs Sync.
SYNCED_SOURCE_FIELDS = (
    "name",
    "number",
    "project_status",
    "start_date",
    "end_date",
    "client_name",
    "address",
)
DISPLAY_NAME_MAX = 100  # Customer.DisplayName max length, per the same reference
NOTES_LIMIT = 2000  # Customer.Notes max length, per Intuit's Customer entity reference
_ADDRESS_LIMITS = {
    "Line1": 500,
    "Line2": 500,
    "City": 255,
    "CountrySubDivisionCode": 255,
    "PostalCode": 30,
    "Country": 255,
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def project_display_name(*, project: StagedProject, template: str) -> str:
    """The QBO DisplayName from the company's naming rule, sanitised for QBO's rules.

    Raises ValueError when nothing usable is left (e.g. an empty project name)."""
    values = _Blank(
        name=project.name or "", number=project.number or "", client=project.client_name or ""
    )
    suffix = project.qbo_name_suffix
    if not suffix:
        return sanitize_display_name(template.format_map(values))
    return (
        sanitize_display_name(template.format_map(values), DISPLAY_NAME_MAX - len(suffix)) + suffix
    )


def project_name_suffix(*, project: StagedProject) -> str:
    """What tells this project's job apart when another project's job holds its name: its
    Linarc number in brackets (" (P-1042)")."""
    return f" ({sanitize_display_name(project.number or project.linarc_id, 40)})"


def _notes(project: StagedProject) -> str:
    parts = [f"Linarc project {project.number or project.linarc_id}"]
    if project.project_status:
        parts.append(f"Status: {project.project_status}")
    if project.start_date or project.end_date:
        start = project.start_date.isoformat() if project.start_date else "?"
        end = project.end_date.isoformat() if project.end_date else "?"
        parts.append(f"Dates: {start} to {end}")
    return " | ".join(parts)[:NOTES_LIMIT]


def _ship_addr(address: dict[str, Any]) -> dict[str, str] | None:
    mapping = {
        "Line1": address.get("line1"),
        "Line2": address.get("line2"),
        "City": address.get("city"),
        "CountrySubDivisionCode": address.get("state"),
        "PostalCode": address.get("postal_code"),
        "Country": address.get("country"),
    }
    result = {k: str(v)[: _ADDRESS_LIMITS[k]] for k, v in mapping.items() if v}
    return result or None


def project_job_fields(*, project: StagedProject, rules: SyncRules) -> dict[str, Any]:
    """The writable fields of the sub-customer (shared by create and sparse update)."""
    assert project.qbo_customer is not None, "a job needs its parent customer"
    fields: dict[str, Any] = {
        "DisplayName": project_display_name(project=project, template=rules.display_name_template),
        "Job": True,
        "ParentRef": {"value": project.qbo_customer.qbo_id},
        "BillWithParent": True,
        "Notes": _notes(project),
    }
    ship_addr = _ship_addr(project.address or {})
    if ship_addr:
        fields["ShipAddr"] = ship_addr
    return fields


def fields_hash(fields: dict[str, Any]) -> str:
    """Hash of what was sent: a Synced row with a different hash has changes to push."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def project_qbo_request_preview(*, project: StagedProject) -> dict[str, Any]:
    """The request the next sync will send, for the Json Script view (no QBO call)."""
    if project.qbo_customer is None:
        return {"note": "No QBO customer selected: nothing will be sent until one is mapped."}
    rules, _ = SyncRules.objects.get_or_create(company_id=project.company_id)
    try:
        fields = project_job_fields(project=project, rules=rules)
    except ValueError as exc:
        return {"note": f"This project cannot be sent: {exc}."}
    if project.qbo_record_id:
        body = {
            "Id": project.qbo_record_id,
            "SyncToken": project.qbo_sync_token,
            "sparse": True,
            **fields,
        }
        return {"operation": "update", "method": "POST", "path": "customer", "body": body}
    return {
        "operation": "create",
        "method": "POST",
        "path": "customer",
        "lookup_first": (
            "SELECT * FROM Customer WHERE DisplayName IN "  # noqa: S608 (QBO query, escaped)
            f"('{escape_query_literal(fields['DisplayName'])}') AND Active IN (true, false)"
        ),
        "body": fields,
        **(
            {}
            if project.qbo_name_suffix
            else {
                # sync/push.py: decided against QBO at sync time, so shown as the alternative.
                "name_if_another_project_has_it": project_display_name(
                    project=_with_suffix(project), template=rules.display_name_template
                )
            }
        ),
    }


def _with_suffix(project: StagedProject) -> StagedProject:
    twin = copy.copy(project)
    twin.qbo_name_suffix = project_name_suffix(project=project)
    return twin
