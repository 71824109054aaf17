"""`OneWrite`, what a response's cycle writes through: a head and the body after it leave in one write; and
the address the rate limit keys a client by."""

from __future__ import annotations

import asyncio

import pytest

from bunq.edge import client_ip
from bunq.writes import OneWrite

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def writer() -> tuple[OneWrite, Recorder]:
    transport = Recorder()
    return OneWrite(transport, asyncio.get_running_loop()), transport  # type: ignore[arg-type]


async def turn() -> None:
    await asyncio.sleep(0)


def test_head_and_body_leave_in_one_write() -> None:
    async def main() -> None:
        w, t = writer()
        w.write(HEAD)
        assert t.writes == []
        w.write(b'{"ok":true}')
        assert t.writes == [HEAD + b'{"ok":true}']
        await turn()
        assert t.writes == [HEAD + b'{"ok":true}'], "the held head went out twice"

    asyncio.run(main())


def test_a_head_without_a_body_in_the_same_turn_goes_out_at_its_end() -> None:
    async def main() -> None:
        w, t = writer()
        w.write(HEAD.replace(b"content-length: 11", b"transfer-encoding: chunked"))  # a stream: SSE
        await turn()
        assert len(t.writes) == 1 and t.writes[0].startswith(b"HTTP/1.1 200 OK")
        w.write(b"5\r\nhello\r\n")  # later chunks are written as they come
        assert t.writes[1] == b"5\r\nhello\r\n"

    asyncio.run(main())


def test_continue_goes_out_at_once_and_close_flushes_a_held_head() -> None:
    async def main() -> None:
        w, t = writer()
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        w.write(HEAD)
        w.close()
        assert t.writes[1] == HEAD and t.closed
        assert w.is_closing()

    asyncio.run(main())


def test_each_response_on_a_connection_is_one_write() -> None:
    async def main() -> None:
        w, t = writer()
        for n in range(3):
            w.write(HEAD)
            w.write(b'{"n":%d}' % n)
        await turn()
        assert t.writes == [HEAD + b'{"n":%d}' % n for n in range(3)]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("headers", "peer", "expected"),
    [
        ([(b"x-forwarded-for", b"203.0.113.7, 10.0.0.1")], "10.9.9.9", "203.0.113.7"),
        ([(b"x-forwarded-for", b" 2001:db8::1 ")], "10.9.9.9", "2001:db8::1"),
        ([(b"x-real-ip", b"198.51.100.2")], "10.9.9.9", "198.51.100.2"),
        # not addresses: passed over, so a client cannot key the limiter's table with strings of its choosing
        ([(b"x-forwarded-for", b"x" * 60_000)], "10.9.9.9", "10.9.9.9"),
        ([(b"x-forwarded-for", b"not-an-ip"), (b"x-real-ip", b"198.51.100.2")], "10.9.9.9", "198.51.100.2"),
        ([(b"x-real-ip", b"evil")], "10.9.9.9", "10.9.9.9"),
    ],
)
def test_the_rate_limit_keys_a_client_by_an_address_only(
    headers: list[tuple[bytes, bytes]], peer: str, expected: str
) -> None:
    assert client_ip({"headers": headers, "client": (peer, 5000)}) == expected
