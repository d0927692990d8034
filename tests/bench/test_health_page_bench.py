"""Smoke test of bench/health_page.py at a tiny size, so a change that breaks the benchmark
is caught by the suite. Structure and correctness only (200s, every kind of failure listed,
the same statement count at both sizes), never timings."""

from __future__ import annotations

import pytest

from bench import health_page


@pytest.mark.timeout(120)
def test_health_page_benchmark_reads_the_same_number_of_times_at_both_sizes(
    transactional_db: None,
) -> None:
    company, user, customers = health_page.health_setup()
    health_page.stage_rows(company, start=0, count=100, customers=customers)
    small = health_page.measure_size(company, user, rows=100, repeat=2)
    health_page.stage_rows(company, start=100, count=400, customers=customers)
    large = health_page.measure_size(company, user, rows=500, repeat=2)

    for result in (small, large):
        assert result["kinds_listed"] == sorted(health_page.KINDS)
        assert [t["status"] for t in result["timings"]] == [200, 200, 200]
        assert all(t["queries"] > 0 and t["p50_ms"] > 0 for t in result["timings"])
    assert [t["queries"] for t in small["timings"]] == [t["queries"] for t in large["timings"]]
    text = health_page.report([small, large], {"date": "smoke"}, database="test")
    assert "health page, HTMX poll" in text and "p50 500 ÷ 100" in text
