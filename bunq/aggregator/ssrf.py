"""Webhook target rules: what registration refuses on its face, and the address check before every delivery.

Registration does no DNS. It refuses only what is internal on its face: a scheme other than http or
https, credentials in the URL, `localhost` and its subdomains, names under `.internal` (the TLD ICANN
keeps for private use, where clouds put their metadata service), and a literal address the deny list
refuses (IPv4 written dotted, decimal, octal, hex or short, as URL parsers and `inet_aton` read it;
bracketed IPv6, with or without a zone). A name is accepted whether it resolves now or not.

Every delivery attempt resolves the name again, checks every address it resolves to, and connects to a
checked address (the name travels in Host and SNI), so a name that starts pointing into private space
later (DNS rebinding) is caught on the attempt that would have reached it.

The deny list is the IANA special-purpose address registries, transcribed below entry by entry with
each entry's source, plus the multicast and reserved ranges of the IANA address-space registries. An
address is judged by the most specific entry that holds it; an IPv6 address that carries an IPv4
address (mapped, compatible, translated, NAT64, 6to4, Teredo) is also judged by the IPv4 it carries.
`BUNQ_WEBHOOK_ALLOW` (host names or CIDR ranges) is the only way through.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from bunq.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


class Reach(enum.Enum):
    """A registry entry's "Globally Reachable" column, as the check acts on it."""

    NEVER = "never"  # False, or a terminated entry: refused
    GLOBAL = "global"  # True: allowed, unless the IPv4 address it carries is refused
    CARRIED = "carried"  # N/A for a transition prefix: judged by the IPv4 address it carries


class Block(NamedTuple):
    network: IPNetwork
    name: str
    reach: Reach
    source: str


NEVER, GLOBAL, CARRIED = Reach.NEVER, Reach.GLOBAL, Reach.CARRIED

V4_SPECIAL = "iana-ipv4-special-registry"
V6_SPECIAL = "iana-ipv6-special-registry"
V4_MULTICAST = "multicast-addresses"
V6_MULTICAST = "ipv6-multicast-addresses"
V6_SPACE = "ipv6-address-space"

# (block, name, globally reachable, source) from https://www.iana.org/assignments/<registry>, as of 2025-04.
TABLE: tuple[tuple[str, str, Reach, str], ...] = (
    # IPv4 Special-Purpose Address Registry, every entry
    ("0.0.0.0/8", '"This network"', NEVER, f"{V4_SPECIAL}, RFC 791 §3.2"),
    ("0.0.0.0/32", '"This host on this network"', NEVER, f"{V4_SPECIAL}, RFC 1122 §3.2.1.3"),
    ("10.0.0.0/8", "Private-Use", NEVER, f"{V4_SPECIAL}, RFC 1918"),
    ("100.64.0.0/10", "Shared Address Space", NEVER, f"{V4_SPECIAL}, RFC 6598"),
    ("127.0.0.0/8", "Loopback", NEVER, f"{V4_SPECIAL}, RFC 1122 §3.2.1.3"),
    ("169.254.0.0/16", "Link Local", NEVER, f"{V4_SPECIAL}, RFC 3927"),
    ("172.16.0.0/12", "Private-Use", NEVER, f"{V4_SPECIAL}, RFC 1918"),
    ("192.0.0.0/24", "IETF Protocol Assignments", NEVER, f"{V4_SPECIAL}, RFC 6890 §2.1"),
    ("192.0.0.0/29", "IPv4 Service Continuity Prefix", NEVER, f"{V4_SPECIAL}, RFC 7335"),
    ("192.0.0.8/32", "IPv4 dummy address", NEVER, f"{V4_SPECIAL}, RFC 7600"),
    ("192.0.0.9/32", "Port Control Protocol Anycast", GLOBAL, f"{V4_SPECIAL}, RFC 7723"),
    ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", GLOBAL, f"{V4_SPECIAL}, RFC 8155"),
    ("192.0.0.170/32", "NAT64/DNS64 Discovery", NEVER, f"{V4_SPECIAL}, RFC 8880, RFC 7050 §2.2"),
    ("192.0.0.171/32", "NAT64/DNS64 Discovery", NEVER, f"{V4_SPECIAL}, RFC 8880, RFC 7050 §2.2"),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)", NEVER, f"{V4_SPECIAL}, RFC 5737"),
    ("192.31.196.0/24", "AS112-v4", GLOBAL, f"{V4_SPECIAL}, RFC 7535"),
    ("192.52.193.0/24", "AMT", GLOBAL, f"{V4_SPECIAL}, RFC 7450"),
    # terminated 2015-03 (empty columns); RFC 7526 forbids reuse without IETF action, so kept refused
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", NEVER, f"{V4_SPECIAL}, RFC 7526"),
    ("192.88.99.2/32", "6a44-relay anycast address", NEVER, f"{V4_SPECIAL}, RFC 6751"),
    ("192.168.0.0/16", "Private-Use", NEVER, f"{V4_SPECIAL}, RFC 1918"),
    ("192.175.48.0/24", "Direct Delegation AS112 Service", GLOBAL, f"{V4_SPECIAL}, RFC 7534"),
    ("198.18.0.0/15", "Benchmarking", NEVER, f"{V4_SPECIAL}, RFC 2544"),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)", NEVER, f"{V4_SPECIAL}, RFC 5737"),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)", NEVER, f"{V4_SPECIAL}, RFC 5737"),
    ("240.0.0.0/4", "Reserved", NEVER, f"{V4_SPECIAL}, RFC 1112 §4"),
    ("255.255.255.255/32", "Limited Broadcast", NEVER, f"{V4_SPECIAL}, RFC 8190, RFC 919 §7"),
    # IPv4 Multicast Address Space
    ("224.0.0.0/4", "Multicast", NEVER, f"{V4_MULTICAST}, RFC 5771"),
    # IPv6 Special-Purpose Address Registry, every entry
    ("::1/128", "Loopback Address", NEVER, f"{V6_SPECIAL}, RFC 4291"),
    ("::/128", "Unspecified Address", NEVER, f"{V6_SPECIAL}, RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped Address", NEVER, f"{V6_SPECIAL}, RFC 4291"),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", GLOBAL, f"{V6_SPECIAL}, RFC 6052"),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", NEVER, f"{V6_SPECIAL}, RFC 8215"),
    ("100::/64", "Discard-Only Address Block", NEVER, f"{V6_SPECIAL}, RFC 6666"),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", NEVER, f"{V6_SPECIAL}, RFC 9780"),
    ("2001::/23", "IETF Protocol Assignments", NEVER, f"{V6_SPECIAL}, RFC 2928"),
    # N/A: footnote [1] of 2001::/23 lets only a more specific allocation out, and Teredo's is not one
    ("2001::/32", "TEREDO", NEVER, f"{V6_SPECIAL}, RFC 4380, RFC 8190"),
    ("2001:1::1/128", "Port Control Protocol Anycast", GLOBAL, f"{V6_SPECIAL}, RFC 7723"),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", GLOBAL, f"{V6_SPECIAL}, RFC 8155"),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", GLOBAL, f"{V6_SPECIAL}, RFC 9665"),
    ("2001:2::/48", "Benchmarking", NEVER, f"{V6_SPECIAL}, RFC 5180, RFC Errata 1752"),
    ("2001:3::/32", "AMT", GLOBAL, f"{V6_SPECIAL}, RFC 7450"),
    ("2001:4:112::/48", "AS112-v6", GLOBAL, f"{V6_SPECIAL}, RFC 7535"),
    ("2001:10::/28", "Deprecated (previously ORCHID)", NEVER, f"{V6_SPECIAL}, RFC 4843"),
    ("2001:20::/28", "ORCHIDv2", GLOBAL, f"{V6_SPECIAL}, RFC 7343"),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", GLOBAL, f"{V6_SPECIAL}, RFC 9374"),
    ("2001:db8::/32", "Documentation", NEVER, f"{V6_SPECIAL}, RFC 3849"),
    ("2002::/16", "6to4", CARRIED, f"{V6_SPECIAL}, RFC 3056"),
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", GLOBAL, f"{V6_SPECIAL}, RFC 7534"),
    ("3fff::/20", "Documentation", NEVER, f"{V6_SPECIAL}, RFC 9637"),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", NEVER, f"{V6_SPECIAL}, RFC 9602"),
    ("fc00::/7", "Unique-Local", NEVER, f"{V6_SPECIAL}, RFC 4193, RFC 8190"),
    ("fe80::/10", "Link-Local Unicast", NEVER, f"{V6_SPECIAL}, RFC 4291"),
    # IPv4 in IPv6 forms outside the registry
    ("::/96", "IPv4-compatible Address (deprecated)", NEVER, "RFC 4291 §2.5.5.1"),
    ("::ffff:0:0:0/96", "IPv4-translated Address", NEVER, "RFC 2765 §2.1"),
    # IPv6 Multicast Address Space
    ("ff00::/8", "Multicast", NEVER, f"{V6_MULTICAST}, RFC 4291 §2.7"),
    # IPv6 Address Space: only 2000::/3 is allocated as global unicast; the rest is reserved by the IETF
    ("::/8", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("100::/8", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("200::/7", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4048"),
    ("400::/6", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("800::/5", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("1000::/4", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("2000::/3", "Global Unicast", GLOBAL, f"{V6_SPACE}, RFC 4291"),
    ("4000::/3", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("6000::/3", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("8000::/3", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("a000::/3", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("c000::/3", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("e000::/4", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("f000::/5", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("f800::/6", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("fe00::/9", "Reserved by IETF", NEVER, f"{V6_SPACE}, RFC 4291"),
    ("fec0::/10", "Reserved by IETF (formerly Site-Local)", NEVER, f"{V6_SPACE}, RFC 3879"),
)

# most specific first, so the first entry holding an address is the one that decides
BLOCKS: tuple[Block, ...] = tuple(
    sorted(
        (Block(ipaddress.ip_network(cidr), name, reach, source) for cidr, name, reach, source in TABLE),
        key=lambda block: block.network.prefixlen,
        reverse=True,
    )
)

# IPv6 forms whose last 32 bits are an IPv4 address
LAST_32_BITS = tuple(
    ipaddress.IPv6Network(cidr)
    for cidr in ("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


def entry(ip: IPAddress) -> Block | None:
    """The most specific table entry that holds `ip` (None for ordinary public IPv4)."""
    for block in BLOCKS:
        if block.network.version == ip.version and ip in block.network:
            return block
    return None


def carried_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: Teredo's server and client, 6to4's, or the last 32 bits."""
    if ip.teredo is not None:
        return list(ip.teredo)
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if int(ip) > 1 and any(ip in network for network in LAST_32_BITS):  # :: and ::1 are not IPv4-compatible
        return [ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)]
    return []


def refusal(ip: IPAddress) -> str | None:
    """Why the deny list refuses `ip`, naming the entry that decided; None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return f"{ip} has a zone, so it is link-scoped"
    carried = carried_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    block = entry(ip)
    if block is not None and block.reach is Reach.NEVER:
        shown = f"{ip}, carrying {', '.join(map(str, carried))}," if carried else str(ip)
        return f"{shown} is in {block.network}, {block.name}"
    for inner in carried:
        inner_block = entry(inner)
        if inner_block is not None and inner_block.reach is Reach.NEVER:
            return f"{ip} carries {inner}, which is in {inner_block.network}, {inner_block.name}"
    return None


def kind(ip: IPAddress) -> str:
    """What a refused address is, in the words the reference's refusals use: localhost, a private or a
    link-local IP, else a non-public address (for an IPv6 address, what it carries decides too)."""
    addresses = [ip, *(carried_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else [])]
    if any(a.is_loopback or (a.version == 4 and a in _THIS_NETWORK) for a in addresses):
        return "localhost"
    if any(a.is_link_local for a in addresses):
        return "link-local IP"
    if any(a.is_private for a in addresses):
        return "private IP"
    return "a non-public address"


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


class AllowList:
    """`BUNQ_WEBHOOK_ALLOW`: host names and CIDR ranges let through despite the rules (trusted networks, tests)."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            text = raw.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                names.add(text.rstrip(".").lower())
        self.names = frozenset(names)
        self.networks = tuple(networks)

    def admits(self, host: str, ip: IPAddress | None = None) -> bool:
        if host in self.names:
            return True
        return ip is not None and any(ip.version == net.version and ip in net for net in self.networks)


class Parts(NamedTuple):
    """A webhook URL as the checks read it: `host` lower case without trailing dots or brackets."""

    scheme: str
    host: str
    port: int
    path: str
    literal: IPAddress | None  # the address, when the host is written as one


class Target:
    """A checked destination: the URL parts and the one address to connect to."""

    def __init__(self, parts: Parts, address: IPAddress) -> None:
        self.scheme = parts.scheme
        self.host = parts.host
        self.port = parts.port
        self.path = parts.path
        self.address = address
        self.named = parts.literal is None

    def url(self) -> str:
        literal = str(self.address).replace("%", "%25")
        if self.address.version == 6:
            literal = f"[{literal}]"
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    def authority(self) -> str:
        """The Host header: the name (or literal) as the URL wrote it, the port when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


IDNA_DOTS = re.compile("[\u3002\uff0e\uff61]")
IPV4_PART = {16: re.compile(r"[0-9a-f]+"), 8: re.compile(r"[0-7]+"), 10: re.compile(r"[0-9]+")}


def ipv4_number(part: str) -> int | None:
    """One part of an IPv4 literal as `inet_aton` and the WHATWG URL parser read it: 0x hex, 0 octal, decimal."""
    base = 10
    if part.startswith("0x"):
        base, part = 16, part[2:]
    elif len(part) > 1 and part.startswith("0"):
        base, part = 8, part[1:]
    if base == 16 and not part:
        return 0
    if not IPV4_PART[base].fullmatch(part):
        return None
    return int(part, base)


def parse_ipv4(host: str) -> ipaddress.IPv4Address:
    """A host whose last label is a number is an IPv4 literal (`127.1`, `0x7f.1`, `2130706433`) or invalid."""
    numbers = [ipv4_number(part) for part in host.split(".")]
    parsed = [n for n in numbers if n is not None]
    if len(numbers) > 4 or len(parsed) != len(numbers) or any(n > 255 for n in parsed[:-1]):
        raise BadRequest("Invalid webhook URL")
    if parsed[-1] >= 256 ** (5 - len(parsed)):
        raise BadRequest("Invalid webhook URL")
    value = parsed[-1]
    for i, n in enumerate(parsed[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def host_literal(netloc: str, host: str) -> IPAddress | None:
    """The address a host is written as, if it is one; BadRequest for a host that cannot be looked up."""
    if "[" in netloc:
        try:
            return ipaddress.IPv6Address(unquote(host))
        except ValueError:
            raise BadRequest("Invalid webhook URL") from None
    labels = host.split(".")
    if not host or "" in labels or not all(c.isalnum() or c in "-_." for c in host):
        raise BadRequest("Invalid webhook URL")
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1]):
        return parse_ipv4(host)
    return None


def split_url(url: str) -> Parts:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest("Invalid webhook URL") from None
    if not parts.scheme or not parts.netloc:
        raise BadRequest("Invalid URL format")
    if parts.scheme not in ("http", "https"):
        raise BadRequest("Webhook URL must use http or https")
    if "@" in parts.netloc:
        raise BadRequest("Webhook URL must not carry credentials")
    host = (parts.hostname or "").lower()
    if "[" not in parts.netloc:
        # as IDNA will before the lookup: full-width digits and ideographic dots would hide `127.0.0.1`
        host = IDNA_DOTS.sub(".", unicodedata.normalize("NFKC", host)).lower().rstrip(".")
    literal = host_literal(parts.netloc, host)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Parts(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path, literal)


def check_url(url: str, allow: AllowList) -> Parts:
    """The registration check: refuse what is internal on the face of the URL. Never looks a name up."""
    parts = split_url(url)
    if allow.admits(parts.host, parts.literal):
        return parts
    if parts.literal is not None:
        reason = refusal(parts.literal)
        if reason is not None:
            raise BadRequest(f"Webhook URL cannot point to {kind(parts.literal)} ({reason})")
    elif parts.host == "localhost" or parts.host.endswith(".localhost"):
        raise BadRequest("Webhook URL cannot point to localhost")
    elif parts.host.endswith(".internal"):  # private-use by ICANN (2024); metadata.google.internal
        raise BadRequest("Webhook URL cannot point to cloud metadata endpoints")
    return parts


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def lookup(host: str, port: int, resolver: Resolver, timeout_s: float) -> list[IPAddress]:
    try:
        async with asyncio.timeout(timeout_s):
            found = await resolver(host, port)
        addresses = [ipaddress.ip_address(address) for address in found]
    except TimeoutError:
        raise BadRequest(f"Webhook host did not resolve in time: {host}") from None
    except (OSError, ValueError):
        raise BadRequest(f"Webhook host does not resolve: {host}") from None
    if not addresses:
        raise BadRequest(f"Webhook host does not resolve: {host}")
    return list(dict.fromkeys(addresses))


async def resolve(url: str, allow: AllowList, resolver: Resolver = system_resolver, timeout_s: float = 10.0) -> Target:
    """The check before a delivery attempt: resolve the name now; every address must pass. Raises BadRequest."""
    parts = check_url(url, allow)
    if parts.literal is not None:
        addresses: list[IPAddress] = [parts.literal]
    else:
        addresses = await lookup(parts.host, parts.port, resolver, timeout_s)
    for ip in addresses:
        reason = refusal(ip)
        if reason is not None and not allow.admits(parts.host, ip):
            raise BadRequest(f"Webhook URL cannot point to {kind(ip)} ({parts.host} resolves to {ip}; {reason})")
    return Target(parts, addresses[0])
