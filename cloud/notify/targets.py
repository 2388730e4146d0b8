"""Where a webhook may be sent: http(s) URLs, and in production mode never to this machine or
a private network (SSRF), checked when the URL is saved and again on every delivery."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class TargetError(ValueError):
    """Raised for a URL a webhook may not call; the message says why."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_url(url: str) -> tuple[str, int]:
    """Return the URL's host and port; raise TargetError unless it is an absolute http(s) URL
    without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError("the URL must be absolute http:// or https://")
    if parts.username or parts.password:
        raise TargetError("the URL must not carry credentials; the signature authenticates")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetError("the URL's port is not a number in 1-65535") from None
    return parts.hostname, port


async def check_target(url: str, allow_private: bool) -> None:
    """Raise TargetError if ``url`` is not one a webhook may call; with ``allow_private``
    False, a host that is or resolves to a loopback, private, link-local or reserved address
    is refused."""
    host, port = check_url(url)
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TargetError(f"the host {host!r} does not resolve ({exc})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if _refused(address):
            raise TargetError(
                f"the host {host!r} is a private, loopback or reserved address ({address}); "
                "production mode does not call such addresses"
            )
