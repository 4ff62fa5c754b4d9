"""Outbound HTTP for user-supplied URLs (webhooks), guarded against server-side request forgery.

Why not `requests`: the address a host name resolves to must be checked and then *used* for the connection (a
second lookup could answer differently: DNS rebinding), which means a connection pinned to the checked address
while TLS still verifies the host name. The standard library's http.client does that in a few lines.

- http and https only; no user name or password in the URL;
- redirects are never followed (a 3xx answer is a failed delivery);
- unless settings.ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES (on in development and test settings), a host that
  resolves to a loopback, private, link-local, multicast, reserved or unspecified address is refused.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_RESPONSE_BYTES = 64 * 1024


class UnsafeUrl(ValueError):
    """A URL the platform will not send to; the message says why."""


@dataclass(frozen=True)
class HttpAnswer:
    """A response's status and the start of its body."""

    status: int
    body: bytes


def url_check(url: object) -> str:
    """The URL if its form is acceptable (scheme, host, no credentials); UnsafeUrl otherwise."""
    if not isinstance(url, str) or len(url) > 2_000:
        raise UnsafeUrl("an http(s) URL of at most 2000 characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("an http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed; use the contact point's secret or headers.")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise UnsafeUrl("the port is not a number from 1 to 65535.") from None
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None  # a name: checked for what it resolves to when sending
    if literal is not None and not address_allowed(str(literal)):
        raise UnsafeUrl(
            "loopback, private and link-local addresses are refused; "
            "set ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES to allow internal receivers."
        )
    return url


def address_allowed(address: str) -> bool:
    """Whether the platform may connect to this IP address under the current settings."""
    if settings.ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return True
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _resolve(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnsafeUrl(f"the host {host!r} does not resolve ({error.strerror}).") from None
    for _, _, _, _, sockaddr in infos:
        if address_allowed(sockaddr[0]):
            return sockaddr[0]
    raise UnsafeUrl(
        f"the host {host!r} resolves to a private, loopback or link-local address; "
        "set ALERTS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES to allow internal receivers."
    )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # verifies the certificate's name


def http_post(url: str, *, body: bytes, headers: dict[str, str], timeout: float | None = None) -> HttpAnswer:
    """POST `body` to `url` through the guard; UnsafeUrl when refused, OSError on network failure."""
    parts = urlsplit(url_check(url))
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    address = _resolve(parts.hostname, port)
    connection_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, address, timeout or settings.ALERTS_WEBHOOK_TIMEOUT_SECONDS)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return HttpAnswer(status=response.status, body=response.read(MAX_RESPONSE_BYTES))
    finally:
        connection.close()
