"""The outbound guard: which addresses a request may go to, checked before any connect.

No test here sends a packet anywhere: ``socket.socket.connect`` and
``socket.create_connection`` fail the test if reached (or record and refuse, where a test
needs to see which address would have been used), and host names are resolved by a fake
``getaddrinfo``, so no DNS query leaves the machine either.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import netguard
from netguard import OutboundRefused, check_host, guard_session, same_destination

_real_getaddrinfo = socket.getaddrinfo
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700:4700::1111"


def _numeric_only(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """getaddrinfo for IP literals only (AI_NUMERICHOST: never a DNS query)."""
    return _real_getaddrinfo(str(host), port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)


class FakeDns:
    """Answers host names from a table, one answer list per lookup (for rebinding), and
    IP literals numerically; counts the name lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(host)
        if name not in self.answers:
            return _numeric_only(name, port)
        self.lookups.append(name)
        queue = self.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        infos = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port or 0, 0, 0) if family == socket.AF_INET6 else (address, port)
            infos.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return infos


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to open a connection."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """IP literals only: a name lookup fails the test."""

    def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _numeric_only(host, port)
        except socket.gaierror:
            pytest.fail(f"a DNS lookup was attempted for {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[list[str]]]], FakeDns]:
    def install(answers: dict[str, list[list[str]]]) -> FakeDns:
        dns = FakeDns(answers)
        monkeypatch.setattr(socket, "getaddrinfo", dns)
        return dns

    return install


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as guarded:
        guard_session(guarded)
        yield guarded


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8766/api/v1/projects/", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.5/", "10.0.0.5 is a private address"),
        ("http://172.16.3.4/", "172.16.3.4 is a private address"),
        ("http://192.168.1.1:8080/", "192.168.1.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://0.0.0.0:8766/", "0.0.0.0 is an unspecified address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
        ("http://100.64.0.1/", "100.64.0.1 is a non-public address"),
        ("http://[::1]:8766/", "::1 is a loopback address"),
        ("http://[::]/", ":: is an unspecified address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://[fc00::5]/", "fc00::5 is a private address"),
        ("http://[ff02::1]/", "ff02::1 is a multicast address"),
        ("http://[::ffff:10.0.0.5]/", "::ffff:10.0.0.5 is a private address (IPv4 10.0.0.5)"),
        ("http://[::ffff:7f00:1]/", "::ffff:7f00:1 is a loopback address (IPv4 127.0.0.1)"),
        ("http://[64:ff9b::a9fe:a9fe]/", "is a link-local address (IPv4 169.254.169.254)"),
        ("http://[2002:a00:5::1]/", "2002:a00:5::1 is a private address (IPv4 10.0.0.5)"),
        # Forms inet_aton() (and so the system resolver) reads as IPv4 addresses.
        ("http://2130706433/", "2130706433 is 127.0.0.1, a loopback address"),
        ("http://0x7f.1/", "0x7f.1 is 127.0.0.1, a loopback address"),
        ("http://0177.0.0.1/", "0177.0.0.1 is 127.0.0.1, a loopback address"),
        ("http://127.1:8766/", "127.1 is 127.0.0.1, a loopback address"),
        ("http://0xa9.254.169.254/", "is 169.254.169.254, a link-local address"),
        ("https://10.1.2.3/v3/company/1/customer/1", "10.1.2.3 is a private address"),
    ],
)
def test_non_public_literals_are_refused_before_any_connect(
    session: requests.Session, no_connect: None, no_dns: None, url: str, shown: str
) -> None:
    with pytest.raises(OutboundRefused) as refused:
        session.get(url, timeout=1)
    assert shown in refused.value.reason
    assert refused.value.reason.startswith("Refused: ")
    assert refused.value.reason.endswith("outbound requests may only go to public hosts")


def test_a_name_resolving_to_a_private_address_is_refused(
    session: requests.Session, no_connect: None, fake_dns: Callable[..., FakeDns]
) -> None:
    fake_dns({"api.example.test": [["10.0.0.5"]]})
    with pytest.raises(OutboundRefused) as refused:
        session.get("https://api.example.test/api/v1/projects/", timeout=1)
    assert refused.value.reason == (
        "Refused: api.example.test resolves to 10.0.0.5, a private address; "
        "outbound requests may only go to public hosts"
    )
    assert refused.value.host == "api.example.test"
    assert refused.value.address == "10.0.0.5"


def test_one_private_answer_among_public_ones_is_enough_to_refuse(
    session: requests.Session, no_connect: None, fake_dns: Callable[..., FakeDns]
) -> None:
    fake_dns({"api.example.test": [[PUBLIC_V4, PUBLIC_V6, "::ffff:192.168.0.9"]]})
    with pytest.raises(
        OutboundRefused, match=r"resolves to ::ffff:.*, a private address \(IPv4 192\.168\.0\.9\)"
    ):
        session.get("http://api.example.test/", timeout=1)


def test_dns_rebinding_between_the_check_and_the_connect_is_refused(
    session: requests.Session, no_connect: None, fake_dns: Callable[..., FakeDns]
) -> None:
    # Public for the check before the request, loopback for the connect that follows.
    dns = fake_dns({"rebind.example.test": [[PUBLIC_V4], ["127.0.0.1"]]})
    with pytest.raises(OutboundRefused, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        session.get("http://rebind.example.test/", timeout=1)
    assert dns.lookups == ["rebind.example.test", "rebind.example.test"]


def test_the_connection_goes_to_the_address_that_was_checked(
    session: requests.Session, monkeypatch: pytest.MonkeyPatch, fake_dns: Callable[..., FakeDns]
) -> None:
    # Two answers for the check, then a third (rebound) one that must never be asked for:
    # the connect uses the checked address, it does not resolve the name once more.
    dns = fake_dns({"api.example.test": [[PUBLIC_V4], [PUBLIC_V4], ["10.0.0.5"]]})
    attempts: list[Any] = []

    def record_and_refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(111, "refused by the test; nothing was sent")

    monkeypatch.setattr(socket.socket, "connect", record_and_refuse)
    with pytest.raises(requests.ConnectionError):
        session.get("http://api.example.test:8080/", timeout=1)
    assert attempts and {address[:2] for address in attempts} == {(PUBLIC_V4, 8080)}
    assert dns.lookups == ["api.example.test", "api.example.test"]


def test_a_redirect_to_a_private_address_is_refused(
    session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "public" server (127.0.0.1, let through for this test only) that redirects to the
    # cloud metadata address: the second hop is checked like the first.
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    real_kind = netguard._kind
    monkeypatch.setattr(
        netguard, "_kind", lambda a: None if str(a) == "127.0.0.1" else real_kind(a)
    )
    try:
        with pytest.raises(OutboundRefused, match=r"169\.254\.169\.254 is a link-local"):
            session.get(f"http://127.0.0.1:{server.server_port}/", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_still_verifies_the_certificate_for_the_host_name(
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
    fake_dns: Callable[..., FakeDns],
    tmp_path: Path,
) -> None:
    # The guard connects to the checked address, not the name: TLS must still send the name
    # (SNI) and check the certificate against it. 127.0.0.1 stands in for a public address.
    cert_path, key_path = _self_signed(tmp_path, "api.example.test")

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake_dns({"api.example.test": [["127.0.0.1"]], "other.example.test": [["127.0.0.1"]]})
    real_kind = netguard._kind
    monkeypatch.setattr(
        netguard, "_kind", lambda a: None if str(a) == "127.0.0.1" else real_kind(a)
    )
    try:
        port = server.server_port
        answer = session.get(f"https://api.example.test:{port}/", timeout=5, verify=cert_path)
        assert answer.json() == {"ok": True}
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://other.example.test:{port}/", timeout=5, verify=cert_path)
    finally:
        server.shutdown()
        server.server_close()


def test_check_host_returns_the_public_addresses(fake_dns: Callable[..., FakeDns]) -> None:
    fake_dns({"api.example.test": [[PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]]})
    assert check_host("api.example.test", 443) == [PUBLIC_V4, PUBLIC_V6]
    assert check_host("[2606:4700:4700::1111]") == [PUBLIC_V6]
    assert check_host("1572395042") == [PUBLIC_V4]  # the decimal form of 93.184.216.34


def test_an_unknown_name_is_a_connection_error_not_a_refusal(
    session: requests.Session, no_connect: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unknown(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(requests.ConnectionError):
        session.get("http://nowhere.example.test/", timeout=1)


@pytest.mark.parametrize(
    ("saved", "typed", "same"),
    [
        ("https://api.linarc.com", "https://api.linarc.com/", True),
        ("https://api.linarc.com/", "https://API.Linarc.com:443", True),
        ("http://127.0.0.1:8766", " http://127.0.0.1:8766/ ", True),
        ("https://api.linarc.com/v2", "https://api.linarc.com/v2/", True),
        ("https://api.linarc.com", "https://someone@api.linarc.com/", True),
        ("https://api.linarc.com", "http://api.linarc.com", False),
        ("https://api.linarc.com", "https://api.linarc.com:8443", False),
        ("https://api.linarc.com", "https://api.linarc.com/v2", False),
        ("https://api.linarc.com", "https://api.linarc.com.evil.example", False),
        ("https://api.linarc.com", "https://api.linarc.com@evil.example", False),
        # urlsplit() reads the host here as api.linarc.com, requests as evil.example.
        ("https://api.linarc.com", "https://evil.example\\@api.linarc.com", False),
        ("http://127.0.0.1:8766", "http://2130706433:8766", False),
        ("https://api.linarc.com", "not a url", False),
        ("", "https://api.linarc.com", False),
    ],
)
def test_same_destination_compares_scheme_host_port_and_path(
    saved: str, typed: str, same: bool
) -> None:
    assert same_destination(saved, typed) is same
    assert same_destination(typed, saved) is same
