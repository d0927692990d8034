"""Auth failures, retries with backoff, and protocol errors, against the live emulator."""

from __future__ import annotations

import logging
import socket

import pytest

from linarc_client import (
    LinarcAuthError,
    LinarcClient,
    LinarcError,
    LinarcNotFound,
    LinarcProtocolError,
    LinarcTransientError,
    ProjectPage,
)
from tests.linarc_client.conftest import API_KEY

LIST_ROUTE = "GET /api/v1/projects"


def _requests_made(emulator) -> int:
    return sum(emulator.counters()["requests"].values())


def test_wrong_api_key_raises_auth_error_without_retrying(linarc_emulator, sleeps):
    client = LinarcClient(linarc_emulator.base_url, "wrong-key", sleep=sleeps)

    with pytest.raises(LinarcAuthError) as caught:
        client.list_page(1)

    assert caught.value.reason == "Linarc rejected the API key"
    assert caught.value.status == 401
    assert caught.value.detail == "Invalid API key."
    assert not caught.value.transient
    assert _requests_made(linarc_emulator) == 1
    assert sleeps.calls == []


def test_check_connection_reports_a_rejected_key(linarc_emulator):
    with pytest.raises(LinarcAuthError, match="Linarc rejected the API key"):
        LinarcClient(linarc_emulator.base_url, "").check_connection()


def test_403_is_an_auth_error(linarc_emulator, linarc_client):
    linarc_emulator.inject_fault("403")

    with pytest.raises(LinarcAuthError) as caught:
        linarc_client.get_project("100001")

    assert caught.value.status == 403


def test_429_waits_as_long_as_retry_after_then_succeeds(linarc_emulator, linarc_client, sleeps):
    linarc_emulator.inject_fault("429", count=2, retry_after=7)

    page = linarc_client.list_page(1, page_size=10)

    assert len(page.records) + len(page.invalid) == 10
    assert sleeps.calls == [7.0, 7.0]
    assert linarc_emulator.counters()["requests"] == {LIST_ROUTE: 3}
    assert linarc_emulator.counters()["faults_served"] == {"429": 2}


def test_a_long_retry_after_is_capped(linarc_emulator, sleeps):
    linarc_emulator.inject_fault("429", retry_after=3600)
    client = LinarcClient(linarc_emulator.base_url, API_KEY, sleep=sleeps, max_backoff=20)

    client.list_page(1)

    assert sleeps.calls == [20.0]


def test_5xx_is_retried_with_exponential_backoff_then_succeeds(
    linarc_emulator, linarc_client, sleeps
):
    linarc_emulator.inject_fault("500")
    linarc_emulator.inject_fault("502")
    linarc_emulator.inject_fault("503")

    record = linarc_client.get_project("100001")

    assert record.linarc_id == "100001"
    # backoff_base 0.5 doubles each time; "equal jitter" keeps each wait in [b/2, b].
    first, second, third = sleeps.calls
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert 1.0 <= third <= 2.0


def test_5xx_until_retries_run_out_raises_transient_error(linarc_emulator, sleeps):
    linarc_emulator.inject_fault("503", count=10)
    client = LinarcClient(linarc_emulator.base_url, API_KEY, max_retries=3, sleep=sleeps)

    with pytest.raises(LinarcTransientError) as caught:
        list(client.iter_pages())

    error = caught.value
    assert error.transient
    assert error.status == 503
    assert error.attempts == 4
    assert error.reason == "Linarc had a server error (503) (gave up after 4 attempts)"
    assert error.detail == "Service temporarily unavailable."
    assert len(sleeps.calls) == 3
    assert _requests_made(linarc_emulator) == 4


def test_429_until_retries_run_out_keeps_the_retry_after_hint(linarc_emulator, sleeps):
    linarc_emulator.inject_fault("429", count=3, retry_after=2)
    client = LinarcClient(linarc_emulator.base_url, API_KEY, max_retries=2, sleep=sleeps)

    with pytest.raises(LinarcTransientError) as caught:
        client.list_page(1)

    assert caught.value.retry_after == 2.0
    assert sleeps.calls == [2.0, 2.0]


def test_a_timeout_is_retried(linarc_emulator, sleeps):
    linarc_emulator.inject_fault("timeout", seconds=3)
    client = LinarcClient(linarc_emulator.base_url, API_KEY, timeout=0.3, sleep=sleeps)

    page = client.list_page(1, page_size=5)

    assert page.count == 60
    assert len(sleeps.calls) == 1
    assert linarc_emulator.counters()["faults_served"] == {"timeout": 1}


def test_repeated_timeouts_raise_transient_error(linarc_emulator, sleeps):
    linarc_emulator.inject_fault("timeout", count=2, seconds=3)
    client = LinarcClient(
        linarc_emulator.base_url, API_KEY, timeout=0.3, max_retries=1, sleep=sleeps
    )

    with pytest.raises(LinarcTransientError, match=r"did not answer within 0\.3s"):
        client.get_project("100001")


def test_connection_refused_is_retried_then_transient(sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = LinarcClient(f"http://127.0.0.1:{port}", API_KEY, max_retries=2, sleep=sleeps)

    with pytest.raises(LinarcTransientError) as caught:
        client.check_connection()

    assert caught.value.reason.startswith("Could not connect to Linarc")
    assert len(sleeps.calls) == 2


def test_a_page_that_is_not_json_raises_protocol_error_without_retrying(
    linarc_emulator, linarc_client, sleeps
):
    linarc_emulator.inject_fault("not_json")

    with pytest.raises(LinarcProtocolError) as caught:
        list(linarc_client.iter_pages())

    assert caught.value.reason == (
        "Linarc returned a project list page that is not JSON (text/html; charset=utf-8)"
    )
    assert "<!DOCTYPE html>" in (caught.value.detail or "")
    assert not caught.value.transient
    assert sleeps.calls == []
    assert _requests_made(linarc_emulator) == 1


def test_a_wrong_base_url_path_raises_not_found(linarc_emulator):
    client = LinarcClient(linarc_emulator.base_url + "/wrong-prefix", API_KEY)

    with pytest.raises(LinarcNotFound, match="Linarc has no project list"):
        client.check_connection()


def test_an_invalid_base_url_raises_a_clear_error():
    with pytest.raises(LinarcError, match=r"The Linarc base URL 'linarc\.example' is not valid"):
        LinarcClient("linarc.example", API_KEY).check_connection()


def test_faults_can_target_one_route(linarc_emulator, linarc_client, sleeps):
    linarc_emulator.inject_fault("500", route="detail")

    linarc_client.list_page(1)
    assert sleeps.calls == []
    linarc_client.get_project("100001")
    assert len(sleeps.calls) == 1


def test_the_api_key_never_reaches_logs_errors_or_reprs(linarc_emulator, caplog, sleeps):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    linarc_emulator.inject_fault("500", count=2)
    client = LinarcClient(linarc_emulator.base_url, API_KEY, max_retries=1, sleep=sleeps)

    with pytest.raises(LinarcTransientError) as transient:
        client.list_page(1)
    bad_client = LinarcClient(linarc_emulator.base_url, API_KEY + "-revoked", sleep=sleeps)
    with pytest.raises(LinarcAuthError) as auth:
        bad_client.list_page(1)

    assert "retry 1 of 1" in caplog.text  # the retry was logged...
    texts = [caplog.text, repr(client), repr(bad_client)]
    texts += [str(transient.value), repr(transient.value), str(transient.value.detail)]
    texts += [str(auth.value), repr(auth.value), str(auth.value.detail)]
    assert all(API_KEY not in text for text in texts)  # ...without the key


@pytest.mark.parametrize("bad_key", ["key with\nnewline", "clé-🔑", "two words"])
def test_an_unsendable_api_key_is_an_auth_error_that_does_not_quote_it(linarc_emulator, bad_key):
    client = LinarcClient(linarc_emulator.base_url, bad_key)

    with pytest.raises(LinarcAuthError) as caught:
        client.check_connection()

    assert "cannot be sent" in caught.value.reason
    assert bad_key not in str(caught.value)
    assert linarc_emulator.counters()["requests"] == {}


def test_an_empty_page_that_promises_more_stops_paging(linarc_emulator):
    class LoopingLinarc(LinarcClient):
        def list_page(self, page, **filters):
            return ProjectPage(records=[], invalid=[], next_page=page + 1, count=10)

    pages = LoopingLinarc(linarc_emulator.base_url, API_KEY).iter_pages()

    with pytest.raises(LinarcProtocolError, match="empty page that claims more pages"):
        list(pages)
