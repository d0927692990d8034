"""Guards for outbound HTTP: where a request may go, checked before any connection is made.

Framework-free (no Django), shared by :mod:`linarc_client` and :mod:`qbo_client`.

* :func:`guard_session` mounts :class:`GuardedHTTPAdapter` on a ``requests.Session``. The
  adapter refuses every request whose host is, or resolves to, a loopback, private,
  link-local, multicast, reserved, unspecified or otherwise non-public address, and raises
  :class:`OutboundRefused` before any socket is opened. IPv4-mapped, NAT64 and 6to4 IPv6
  addresses are judged by the IPv4 address inside them, and numeric hosts in the shorthand
  forms ``inet_aton()`` accepts (``2130706433``, ``0x7f.1``, ``127.1``) by the address they
  stand for.
* The check runs twice: once on the URL before the request is handed to urllib3 (this also
  covers redirects and requests sent through a proxy), and once more when urllib3 opens a
  new connection. The second check resolves the name, checks every address, and then
  connects to those checked addresses only, never resolving the name again, so a DNS answer
  that changes between the check and the connect (DNS rebinding) cannot slip through.
* :func:`same_destination` tells whether two base URLs send requests to the same place, so a
  stored secret is only sent where it was saved for.

The addresses refused are the ones OWASP lists for server-side request forgery:
https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html
and the ranges come from Python's ``ipaddress`` module (the IANA special-purpose registries,
https://www.iana.org/assignments/iana-ipv4-special-registry/).
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family

__all__ = [
    "GuardedHTTPAdapter",
    "OutboundRefused",
    "check_host",
    "check_url",
    "guard_session",
    "same_destination",
]

IPAddress = IPv4Address | IPv6Address

_PUBLIC_ONLY = "outbound requests may only go to public hosts"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 6052's well-known NAT64 prefix: 64:ff9b::a00:5 reaches 10.0.0.5 through a NAT64 gateway.
_NAT64 = IPv6Network("64:ff9b::/96")
# Hosts that inet_aton() (and so getaddrinfo()) reads as an IPv4 address: one to four parts,
# each decimal, octal (leading 0) or hexadecimal (0x…).
_INET_ATON_FORM = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.I)


class OutboundRefused(Exception):
    """A request was refused because its host is not a public address.

    Deliberately not an ``OSError``: urllib3 would retry that, and requests would turn it
    into a ``ConnectionError`` that callers treat as transient. ``reason`` is a sentence fit
    for a form or a row (no final full stop, like the clients' other reasons).
    """

    def __init__(self, reason: str, *, host: str, address: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host = host
        self.address = address


# --- judging one address -----------------------------------------------------------------------


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address carries and is routed by, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _kind(address: IPAddress) -> str | None:
    """Why ``address`` is not public ("a private address"…), or ``None`` when it is.

    The named kinds come first so the message says the most telling one (169.254.0.0/16 is
    both private and link-local, 240.0.0.0/4 both private and reserved); ``is_global`` then
    catches what is left, such as 100.64.0.0/10 (carrier-grade NAT).
    """
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public address"
    return None


def _refusal(address: IPAddress) -> str | None:
    if isinstance(address, IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            kind = _kind(inner)
            return f"{kind} (IPv4 {inner})" if kind else None
    return _kind(address)


def _refuse(*, host: str, address: IPAddress, how: str) -> None:
    """Raise :class:`OutboundRefused` unless ``address`` is public. ``how`` says how ``host``
    gave ``address``: ``"literal"`` (written as it), ``"shorthand"`` (an ``inet_aton()``
    form) or ``"resolved"`` (a DNS answer)."""
    kind = _refusal(address)
    if kind is None:
        return
    if how == "resolved":
        reason = f"Refused: {host} resolves to {address}, {kind}; {_PUBLIC_ONLY}"
    elif how == "shorthand":
        reason = f"Refused: {host} is {address}, {kind}; {_PUBLIC_ONLY}"
    else:
        reason = f"Refused: {host} is {kind}; {_PUBLIC_ONLY}"
    raise OutboundRefused(reason, host=host, address=str(address))


# --- hosts and URLs ----------------------------------------------------------------------------


def _shorthand_ipv4(host: str) -> IPv4Address | None:
    """The IPv4 address a numeric shorthand host stands for, without asking any resolver."""
    if not _INET_ATON_FORM.fullmatch(host):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_host(host: str, port: int | None = None) -> list[str]:
    """The addresses to connect to for ``host``, each checked; raises :class:`OutboundRefused`.

    An IP literal (in any form) is judged as written, with no lookup. A name is resolved
    with ``getaddrinfo`` and refused when *any* of its addresses is not public: a resolver
    that answers one public and one private address may hand out either. Resolution errors
    (``socket.gaierror``) are left to the caller.
    """
    name = host.strip().removeprefix("[").removesuffix("]")
    try:
        literal: IPAddress | None = ip_address(name)
        how = "literal"
    except ValueError:
        literal, how = _shorthand_ipv4(name), "shorthand"
    if literal is not None:
        _refuse(host=name, address=literal, how=how)
        return [str(literal)]
    addresses: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(name, port, allowed_gai_family(), socket.SOCK_STREAM):
        address = ip_address(str(sockaddr[0]))
        _refuse(host=name, address=address, how="resolved")
        if str(address) not in addresses:
            addresses.append(str(address))
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{name} has no address")
    return addresses


def check_url(url: str) -> None:
    """Check the host of ``url`` (parsed as urllib3 parses it, so the host checked is the
    host the request goes to). A URL without a host is left for requests to reject."""
    try:
        parsed = parse_url(url)
    except LocationParseError:
        return
    if parsed.host:
        check_host(parsed.host, parsed.port or _DEFAULT_PORTS.get(parsed.scheme or ""))


def same_destination(first: str, second: str) -> bool:
    """Whether two base URLs send requests to the same scheme, host, port and path.

    A trailing slash, the letter case of the scheme and host, surrounding blanks, a default
    port written out and a ``user@`` part make no difference; another scheme, host, port,
    path or query does. Parsed with urllib3, the parser requests sends with, so that a URL
    read one way here and another way on the wire (``https://a.example\\@b.example``) is
    never taken for the same place.
    """

    def identity(url: str) -> tuple[str, str, int | None, str, str] | None:
        try:
            parsed = parse_url(url.strip())
        except LocationParseError:
            return None
        if not parsed.scheme or not parsed.host:
            return None
        scheme = parsed.scheme.lower()
        return (
            scheme,
            parsed.host.lower(),
            parsed.port or _DEFAULT_PORTS.get(scheme),
            (parsed.path or "").rstrip("/"),
            parsed.query or "",
        )

    first_identity = identity(first)
    return first_identity is not None and first_identity == identity(second)


# --- the requests / urllib3 plumbing -----------------------------------------------------------


def _connect_checked(
    connection: HTTPConnection, connect: Callable[[], socket.socket]
) -> socket.socket:
    """Open ``connection``'s socket to a checked address of its host, trying each in turn.

    urllib3 connects to ``connection._dns_host``; pointing it at one checked address at a
    time keeps urllib3's own timeout, socket options and error handling. TLS still uses the
    host name (``connection.host`` is read again after this returns) for SNI and for
    certificate checks.
    """
    host = connection._dns_host
    try:
        addresses = check_host(host, connection.port)
    except socket.gaierror as exc:
        raise NameResolutionError(connection.host, connection, exc) from exc
    failure: Exception | None = None
    try:
        for address in addresses:
            connection._dns_host = address
            try:
                return connect()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                failure = exc
    finally:
        connection._dns_host = host
    assert failure is not None
    raise failure


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, super()._new_conn)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, super()._new_conn)


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedHTTPAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that refuses non-public hosts (see the module docstring).

    Requests sent through a proxy (``HTTPS_PROXY``…) get the URL check only: the connection
    goes to the proxy, which then makes its own connection to the host.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        # An unknown name is no refusal: the connect below fails with requests' usual error.
        with contextlib.suppress(socket.gaierror):
            check_url(request.url or "")
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )


def guard_session(session: requests.Session, adapter: HTTPAdapter | None = None) -> None:
    """Send every http:// and https:// request of ``session`` through a guarded adapter
    (``adapter``, which must be a :class:`GuardedHTTPAdapter`, or a new one)."""
    adapter = adapter or GuardedHTTPAdapter()
    if not isinstance(adapter, GuardedHTTPAdapter):
        raise TypeError("adapter must be a GuardedHTTPAdapter")
    session.mount("https://", adapter)
    session.mount("http://", adapter)
