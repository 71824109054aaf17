"""Webhook target rules without DNS or packets: the deny table, IPv4 carried in IPv6, URL faces, the allow list."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from bunq.aggregator import ssrf
from bunq.errors import BadRequest

NOBODY = ssrf.AllowList()


def refused(address: str) -> bool:
    return ssrf.refusal(ipaddress.ip_address(address)) is not None


def entries(*reaches: ssrf.Reach) -> list[ssrf.Block]:
    return [b for b in ssrf.BLOCKS if b.reach in reaches]


def resolving_to(*addresses: str) -> ssrf.Resolver:
    async def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


async def never_resolves(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def resolve(url: str, resolver: ssrf.Resolver = never_resolves, allow: ssrf.AllowList = NOBODY) -> ssrf.Target:
    return asyncio.run(ssrf.resolve(url, allow, resolver))


@pytest.mark.parametrize("block", entries(ssrf.Reach.NEVER), ids=lambda b: f"{b.network} {b.name}")
def test_every_refused_entry_is_refused_at_both_ends(block: ssrf.Block) -> None:
    assert block.source
    assert refused(str(block.network.network_address))
    assert refused(str(block.network.broadcast_address))


@pytest.mark.parametrize(
    "block", [b for b in entries(ssrf.Reach.NEVER) if b.network.version == 4], ids=lambda b: f"{b.network} {b.name}"
)
def test_every_refused_ipv4_entry_is_refused_inside_nat64_and_6to4(block: ssrf.Block) -> None:
    inner = int(block.network.broadcast_address)
    assert refused(str(ipaddress.IPv6Address((0x64FF9B << 96) | inner)))  # 64:ff9b::/96, globally reachable
    assert refused(str(ipaddress.IPv6Address((0x2002 << 112) | (inner << 80) | 1)))  # 6to4


GLOBALLY_REACHABLE = [
    "192.0.0.9", "192.0.0.10", "192.31.196.1", "192.52.193.1", "192.175.48.53", "2001:1::1", "2001:1::2",
    "2001:1::3", "2001:3::1", "2001:4:112::1", "2001:20::1", "2001:30::1", "2620:4f:8000::1", "2606:4700::1111",
    "64:ff9b::8.8.8.8", "2002:808:808::1",
]  # fmt: skip


def test_every_globally_reachable_entry_has_an_address_let_through() -> None:
    for block in entries(ssrf.Reach.GLOBAL, ssrf.Reach.CARRIED):
        assert any(ipaddress.ip_address(a) in block.network for a in GLOBALLY_REACHABLE), block


@pytest.mark.parametrize("address", GLOBALLY_REACHABLE)
def test_globally_reachable_addresses_pass(address: str) -> None:
    assert not refused(address)


@pytest.mark.parametrize(
    "address",
    [
        "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
        "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "191.255.255.255", "192.0.1.0",
        "192.0.3.0", "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0", "198.17.255.255",
        "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "223.255.255.255",
        "1.1.1.1", "8.8.8.8", "93.184.216.34", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1", "2003::1",
        "3ffe:ffff::1", "3fff:1000::1", "2606:2800:220:1:248:1893:25c8:1946",
    ],
)  # fmt: skip
def test_public_addresses_next_to_the_blocks_pass(address: str) -> None:
    assert not refused(address)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("192.0.0.192", "192.0.0.0/24, IETF Protocol Assignments"),  # cloud metadata in some clouds
        ("::127.0.0.1", "::/96, IPv4-compatible"),
        ("::ffff:0:127.0.0.1", "::ffff:0:0:0/96, IPv4-translated"),
        ("fec0::1", "fec0::/10"),
        ("::ffff:127.0.0.1", "::ffff:0:0/96, IPv4-mapped"),
        ("::ffff:8.8.8.8", "::ffff:0:0/96, IPv4-mapped"),  # the registry: not globally reachable, whatever it carries
        ("64:ff9b::169.254.169.254", "carries 169.254.169.254, which is in 169.254.0.0/16, Link Local"),
        ("64:ff9b::10.0.0.1", "carries 10.0.0.1, which is in 10.0.0.0/8, Private-Use"),
        ("64:ff9b:1::8.8.8.8", "64:ff9b:1::/48"),
        ("2002:a9fe:a9fe::1", "carries 169.254.169.254"),
        ("2002:7f00:1::", "carries 127.0.0.1, which is in 127.0.0.0/8, Loopback"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32, TEREDO"),
        ("fe80::1%eth0", "has a zone"),
        ("2606:4700::1111%eth0", "has a zone"),
        ("169.254.169.254", "169.254.0.0/16, Link Local"),
        ("100.64.0.1", "100.64.0.0/10, Shared Address Space"),
        ("fd00:ec2::254", "fc00::/7, Unique-Local"),
        ("0.0.0.0", '0.0.0.0/32, "This host on this network"'),
        ("::", "::/128, Unspecified Address"),
        ("::1", "::1/128, Loopback Address"),
        ("ff02::1", "ff00::/8, Multicast"),
        ("239.255.255.250", "224.0.0.0/4, Multicast"),
        ("255.255.255.255", "255.255.255.255/32, Limited Broadcast"),
        ("2001:db8::1", "2001:db8::/32, Documentation"),
        ("5f00::1", "5f00::/16, Segment Routing"),
        ("4000::1", "4000::/3, Reserved by IETF"),
    ],
)
def test_internal_addresses_are_refused_naming_the_entry(address: str, why: str) -> None:
    reason = ssrf.refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.0.192/", "http://[::127.0.0.1]/", "http://[::ffff:0:127.0.0.1]/", "http://[fec0::1]/",
        "http://localhost./", "http://a.localhost/", "http://LocalHost:8080/", "ftp://x/", "http://u:p@example.com/",
        "http://u@example.com/", "http://@example.com/", "http://127.0.0.1/h", "http://127.0.0.1./h",
        "http://2130706433/h", "http://0177.0.0.1/h", "http://0x7f.0.0.1/h", "http://0x7f.1/h", "http://0x7f000001/h",
        "http://127.1/h", "http://0/h", "http://[::1]/h", "http://[::ffff:127.0.0.1]/h", "http://[fe80::1%25eth0]/h",
        "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/h", "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/", "not a url", "http:///nohost", "http://1.2.3.256/", "http://foo.123/",
        "http://1.2.3.4.5/", "http://08.1.2.3/", "http://a b/", "http://ex%41mple.com/", "http://a..b/",
        "http://[v1.x]/", "http://example.com:99999/", "http://metadata.google.internal/", "http://a.b.internal./",
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "http://127\u30020\u30020\u30021/", "http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34/",
    ],
)  # fmt: skip
def test_registration_refuses_what_is_internal_on_its_face(url: str) -> None:
    with pytest.raises(BadRequest) as refusal:
        ssrf.check_url(url, NOBODY)
    assert refusal.value.status == 400


@pytest.mark.parametrize(
    ("url", "literal"),
    [
        ("https://does-not-exist.invalid/hook", None),
        ("https://hooks.example.com./x", None),
        ("http://bücher.example/", None),
        ("http://8.8.8.8/h", "8.8.8.8"),
        ("http://134744072/h", "8.8.8.8"),  # decimal
        ("http://0x8.0x8.0x8.0x8/h", "8.8.8.8"),
        ("http://[2606:4700::1111]:8443/h", "2606:4700::1111"),
    ],
)
def test_registration_accepts_names_unresolved_and_public_literals(url: str, literal: str | None) -> None:
    parts = ssrf.check_url(url, NOBODY)
    assert parts.literal == (ipaddress.ip_address(literal) if literal else None)


def test_delivery_checks_every_address_the_name_resolves_to() -> None:
    with pytest.raises(BadRequest) as refusal:
        resolve("http://hooks.example.com/hook", resolving_to("93.184.216.34", "10.0.0.1"))
    assert refusal.value.message == (
        "Webhook URL cannot point to private IP"
        " (hooks.example.com resolves to 10.0.0.1; 10.0.0.1 is in 10.0.0.0/8, Private-Use)"
    )
    with pytest.raises(BadRequest, match="192.0.0.192"):
        resolve("http://rebound.example.com/", resolving_to("192.0.0.192"))
    with pytest.raises(BadRequest, match="carries 127.0.0.1"):
        resolve("http://rebound.example.com/", resolving_to("64:ff9b::7f00:1"))


def test_delivery_connects_to_the_checked_address_under_the_name() -> None:
    target = resolve("https://hooks.example.com:8443/h?x=1", resolving_to("2606:2800:220:1:248:1893:25c8:1946"))
    assert target.url() == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/h?x=1"
    assert (target.authority(), target.host, target.named) == ("hooks.example.com:8443", "hooks.example.com", True)
    literal = resolve("http://[2606:4700::1111]/h")  # a literal is never looked up
    assert (literal.url(), literal.authority(), literal.named) == (
        "http://[2606:4700::1111]:80/h",
        "[2606:4700::1111]",
        False,
    )


def test_delivery_to_a_name_that_does_not_resolve_is_refused_with_the_reason() -> None:
    with pytest.raises(BadRequest, match="^Webhook host does not resolve: gone.example.com$"):
        resolve("http://gone.example.com/")
    with pytest.raises(BadRequest, match="does not resolve"):
        resolve("http://empty.example.com/", resolving_to())

    async def stuck(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    with pytest.raises(BadRequest, match="did not resolve in time: slow.example.com"):
        asyncio.run(ssrf.resolve("http://slow.example.com/", NOBODY, stuck, timeout_s=0.01))


def test_the_allow_list_is_the_only_way_through() -> None:
    local = ssrf.AllowList(["127.0.0.1/32"])
    ssrf.check_url("http://127.0.0.1:8080/hook", local)
    assert resolve("http://127.0.0.1:8080/hook", allow=local).url() == "http://127.0.0.1:8080/hook"
    with pytest.raises(BadRequest):
        ssrf.check_url("http://127.0.0.2:8080/hook", local)
    trusted = ssrf.AllowList(["10.0.0.0/8", "Hooks.Internal."])
    assert resolve("http://hooks.internal/", resolving_to("192.168.1.1"), trusted).address == ipaddress.ip_address(
        "192.168.1.1"
    )  # a name on the list is trusted whatever it resolves to
    assert resolve("http://other.corp.example/", resolving_to("10.1.2.3"), trusted).url() == "http://10.1.2.3:80/"
    with pytest.raises(BadRequest, match="192.168.1.1"):
        resolve("http://other.corp.example/", resolving_to("10.1.2.3", "192.168.1.1"), trusted)
    with pytest.raises(BadRequest, match="cloud metadata"):  # an .internal name passes only by its name
        resolve("http://other.internal/", resolving_to("10.1.2.3"), trusted)
    ssrf.check_url("http://localhost:9000/", ssrf.AllowList(["localhost"]))
