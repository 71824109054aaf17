"""Webhook target checks: a URL is allowed only when every address its host resolves to is public.

Checked on the resolved addresses, not the URL text, so decimal, octal, hex and short IPv4 forms,
IPv6 brackets, trailing dots and names that resolve to private space are all caught; IPv4 addresses
embedded in IPv6 (mapped, NAT64, 6to4, Teredo) are checked as the IPv4 they carry. The delivery then
connects to the address that was checked, never looking the name up a second time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from bunq.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64 or ip in NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public(inner)
        if ip.scope_id:
            return False
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_private:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return False
    return ip.is_global


class Target:
    """A checked destination: the URL parts and the one address to connect to."""

    def __init__(self, scheme: str, host: str, port: int, path: str, address: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.address = address

    def url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


def split_url(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("Invalid webhook URL") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest("Webhook URL must use http or https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BadRequest("Invalid webhook URL")
    if parts.username or parts.password:
        raise BadRequest("Webhook URL must not carry credentials")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def allowed_by_list(host: str, ip: IPAddress, allow: tuple[str, ...]) -> bool:
    """The explicit allow-list (for tests and trusted networks): host names or CIDR ranges."""
    for entry in allow:
        if entry.lower() == host:
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


async def resolve(url: str, allow: tuple[str, ...] = ()) -> Target:
    """Resolve and check a webhook URL; raise BadRequest naming why it is refused."""
    scheme, host, port, path = split_url(url)
    if (host == "localhost" or host.endswith(".localhost")) and host not in allow:
        raise BadRequest("Webhook URL cannot point to localhost")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise BadRequest(f"Webhook host does not resolve: {host}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise BadRequest(f"Webhook host does not resolve: {host}")
    for ip in addresses:
        if not is_public(ip) and not allowed_by_list(host, ip, allow):
            raise BadRequest(f"Webhook URL resolves to a non-public address ({ip})")
    return Target(scheme, host, port, path, str(addresses[0]))
