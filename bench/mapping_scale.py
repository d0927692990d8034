"""Scenario 6: mapping at scale, 10,000 unmapped projects in PostgreSQL (issue #15).

    .venv/bin/python -m bench.mapping_scale [--rows 10000] [--customers 2000] [--repeat 3]

Each try has its own company (a mapping is permanent, so a mapped company cannot be mapped
again): ``--customers`` cached QBO customers and ``--rows`` unmapped projects of 1 client
in 10 projects, whose names are a customer's exactly (70 %), respelled (", Inc." or "&" for
"and": 10 %), a client whose other projects are mapped (10 %, with 1,000 mapped projects
beside), or unknown (10 %). Measured through Django's test client, as the browser asks:

* the confirmation of Select All → *Map selected…* (``GET projects/map/preview/``);
* the mapping itself (``POST projects/map/``), then the same rows' Select All → *Sync to
  QBO* as the baseline in the same run (the bulk action the Projects tab already has);
* the per-row service (``project_map_customer``) on 300 rows, times 10,000, as the cost
  of mapping the same rows one at a time;
* the Projects tab's first page with 50 unmapped rows (each with its suggestion) against the
  same page once they are mapped (no suggestion to compute).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import common
from bench.projects_tab import SYNC_URL, measure_request

MAP_PREVIEW_URL = "/portfolio/integration/erp/projects/map/preview/"
MAP_URL = "/portfolio/integration/erp/projects/map/"
WORDS = ("Harbor", "Cedar", "Summit", "Maple", "Granite", "Willow", "Aspen", "Falcon", "Iron")
KINDS = ("Holdings", "School District", "Medical Group", "Properties", "Partners", "Utilities")


def customer_name(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]} {WORDS[(i // 9) % len(WORDS)]} {KINDS[i % len(KINDS)]} {i}"


def client_for(row: int, customers: int) -> tuple[str, str]:
    """(the project's Linarc client name, the kind of evidence it should find)."""
    client = row // 10
    bucket = client % 10
    if bucket < 7:
        return customer_name(client % customers), "exact"
    if bucket == 7:
        return f"{customer_name(client % customers)}, Inc.", "close"
    if bucket == 8:
        return f"Sibling Client {client}", "sibling"
    return f"Quarry Lane Nobody {client}", "none"


def setup_company(n: int, *, rows: int, customers: int) -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    from integrations.models import Membership, QboCustomer, Role
    from staging.models import StagedProject

    company = common.company_create(f"Bench Mapping Co {n}")
    user = get_user_model().objects.create_user(
        username=f"bench-mapper-{company.pk}", password="bench-password-123"
    )
    Membership.objects.create(user=user, company=company, role=Role.ADMIN)
    cached = QboCustomer.objects.bulk_create(
        QboCustomer(
            company=company,
            qbo_id=str(100 + i),
            display_name=customer_name(i),
            search_name=customer_name(i).casefold(),
        )
        for i in range(customers)
    )
    batch: list[StagedProject] = []
    for row in range(rows):
        client, kind = client_for(row, customers)
        batch.append(
            StagedProject(
                company=company,
                linarc_id=str(200001 + row),
                number=f"P-{1001 + row}",
                name=f"Project {row}",
                client_name=client,
                status="needs_action",
                status_reason="Choose a QBO customer",
            )
        )
        if kind == "sibling" and row % 10 == 0:  # 10 mapped projects of each sibling client
            batch.extend(
                StagedProject(
                    company=company,
                    linarc_id=f"m{row}-{k}",
                    name=f"Mapped {row}-{k}",
                    client_name=client,
                    qbo_customer=cached[(row // 10 + k) % 3],
                    status="synced",
                )
                for k in range(10)
            )
    StagedProject.objects.bulk_create(batch, batch_size=2000)
    return company, user


def _client(user: Any) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def timed_request(
    client: Any, method: str, url: str, data: dict[str, str]
) -> tuple[float, int, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        response = getattr(client, method)(url, data, HTTP_HX_REQUEST="true")
        elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{method} {url}: {response.status_code}")
    return elapsed, len(captured.captured_queries), response


def one_try(n: int, *, rows: int, customers: int) -> dict[str, Any]:
    from integrations.models import QboCustomer
    from staging.models import StagedProject
    from staging.services.mapping import project_map_customer
    from staging.services.suggestions import client_key, client_suggestions

    company, user = setup_company(n, rows=rows, customers=customers)
    client = _client(user)
    chip = {"status": "needs_action", "select_all": "1"}
    unmapped = StagedProject.objects.filter(company=company, qbo_customer=None)

    tab_before = measure_request(client, "first page, 50 unmapped rows", {}, rows=rows, repeat=20)
    # What each kind of client finds, from the service the confirmation uses.
    names = {client_for(r, customers) for r in range(0, rows, 10)}
    found = client_suggestions(company_id=company.pk, client_names={c for c, _k in names})
    by_kind: dict[str, dict[str, int]] = {}
    for client_name, kind in names:
        got = found.get(client_key(client_name))
        tally = by_kind.setdefault(kind, {})
        label = got.kind if got else "none"
        tally[label] = tally.get(label, 0) + 1

    # Baseline 1: the per-row service on 300 rows (3 %), which the bulk mapping then skips.
    sample = list(unmapped.order_by("pk").values_list("pk", flat=True)[: min(300, rows // 10)])
    target = QboCustomer.objects.filter(company=company, is_job=False).first()
    assert target is not None
    started = time.perf_counter()
    for pk in sample:
        project_map_customer(company=company, project_id=pk, qbo_customer_id=target.pk, actor=user)
    per_row_ms = (time.perf_counter() - started) * 1000 / len(sample)

    preview_ms, preview_queries, preview = timed_request(client, "get", MAP_PREVIEW_URL, chip)
    plan_text = " ".join(preview.content.decode().split())
    to_map = unmapped.count()
    map_ms, map_queries, answer = timed_request(client, "post", MAP_URL, chip)
    mapped = to_map - unmapped.count()
    # The click maps exactly what the confirmation listed, and says so.
    if f"{mapped:,} projects will be mapped permanently" not in plan_text:
        raise RuntimeError(f"the confirmation did not list the {mapped:,} rows mapped")
    if f"Mapped {mapped:,} projects permanently" not in answer.content.decode():
        raise RuntimeError("the mapping's message is missing")
    tab_after = measure_request(client, "first page, mapped rows", {}, rows=rows, repeat=20)

    # Baseline 2: Select All → Sync to QBO of the rows just mapped (Needs Sync now).
    sync_ms, sync_queries, _sync = timed_request(
        client, "post", SYNC_URL, {"status": "needs_sync", "select_all": "1"}
    )
    common.redis_flush()  # nothing consumes the queued tasks
    return {
        "rows": rows,
        "customers": customers,
        "unmapped_before_map": to_map,
        "mapped": mapped,
        "evidence_by_client_kind": by_kind,
        "preview_ms": round(preview_ms, 1),
        "preview_queries": preview_queries,
        "map_ms": round(map_ms, 1),
        "map_queries": map_queries,
        "sync_ms": round(sync_ms, 1),
        "sync_queries": sync_queries,
        "per_row_ms": round(per_row_ms, 2),
        "tab_unmapped": tab_before.__dict__,
        "tab_mapped": tab_after.__dict__,
    }


def report(results: list[dict[str, Any]], info: dict[str, str]) -> str:
    def med(key: str) -> float:
        return common.median([r[key] for r in results])

    first = results[0]
    rows = first["rows"]
    per_row_total = med("per_row_ms") * rows
    tab_u = common.median([r["tab_unmapped"]["p95_ms"] for r in results])
    tab_m = common.median([r["tab_mapped"]["p95_ms"] for r in results])
    table = common.md_table(
        ["measure", "value (median of the tries)", "ratio"],
        [
            [
                f"Select All → Map selected…: the confirmation ({rows:,} rows)",
                f"{med('preview_ms'):,.0f} ms, {first['preview_queries']} SQL",
                f"{med('preview_ms') / med('sync_ms'):.2f}× Sync to QBO",
            ],
            [
                f"Map {first['mapped']:,} rows permanently (one request)",
                f"{med('map_ms'):,.0f} ms, {first['map_queries']} SQL",
                f"{med('map_ms') / med('sync_ms'):.2f}× Sync to QBO",
            ],
            [
                f"baseline: Select All → Sync to QBO of the same {first['mapped']:,} rows",
                f"{med('sync_ms'):,.0f} ms, {first['sync_queries']} SQL",
                "1.00×",
            ],
            [
                f"baseline: the per-row service, × {rows:,}",
                f"{med('per_row_ms'):.2f} ms a row → {per_row_total / 1000:,.1f} s",
                f"bulk is {per_row_total / med('map_ms'):.0f}× faster",
            ],
            [
                "Projects tab, first page: 50 unmapped rows with suggestions, p95",
                f"{tab_u:.1f} ms ({first['tab_unmapped']['queries']} SQL)",
                f"{tab_u / tab_m:.2f}× the mapped page",
            ],
            [
                "Projects tab, first page: the same rows mapped, p95",
                f"{tab_m:.1f} ms ({first['tab_mapped']['queries']} SQL)",
                "1.00×",
            ],
        ],
    )
    evidence = "; ".join(
        f"{kind}: {json.dumps(tally)}" for kind, tally in first["evidence_by_client_kind"].items()
    )
    return (
        "### 6. Mapping at scale: Map selected… on 10,000 rows\n\n"
        f"Run: {common.machine_line(info)}\n\n"
        f"{len(results)} tries, each its own company: {first['customers']:,} cached QBO "
        f"customers, {rows:,} unmapped projects (1 client per 10 projects; the per-row "
        "baseline maps 3 % of them first), Select All of the "
        "Needs Action chip through Django's test client. Baselines in the same run: Sync to "
        "QBO of the same rows (the bulk action the tab already had), and the per-row mapping "
        "service.\n\n"
        f"{table}\n\n"
        f"What each kind of Linarc client found (clients, first try): {evidence}.\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="bench_mapping")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    common.bench_setup(database=args.database, collectstatic=True)  # DEBUG off: hashed static names
    results = []
    try:
        for n in range(args.repeat):
            results.append(one_try(n, rows=args.rows, customers=args.customers))
            print(json.dumps(results[-1], indent=1, default=str))
        info = common.machine_info()
    finally:
        common.bench_teardown(args.database, keep=args.keep_db)
    common.save_json("mapping_scale", {"machine": info, "results": results})
    text = report(results, info)
    print(text)
    if not args.no_write:
        common.write_section("mapping_scale", text)


if __name__ == "__main__":
    main()
