"""The test helper that lists a msgpack value's type bytes (`tests.support.tcp.type_markers`): the TCP tests
lean on it to prove a reply carries no 64-bit integer, so it must find one and must not see one in a payload."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.tcp import type_markers

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)


def big_ints(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 2**32 or value < -(2**31)
    if isinstance(value, list):
        return any(big_ints(v) for v in value)
    if isinstance(value, dict):
        return any(big_ints(v) for v in value.values())
    return False


@given(values)
def test_a_64_bit_integer_is_found_exactly_when_there_is_one(value: object) -> None:
    markers = type_markers(msgspec.msgpack.encode(value))
    assert bool({0xCF, 0xD3} & set(markers)) == big_ints(value)


def test_the_bytes_of_a_float_are_not_markers() -> None:
    number = struct.unpack(">d", b"\x42\x78\xcf\xd3\xcf\xd3\xcf\xd3")[0]
    raw = msgspec.msgpack.encode({"createdAt": number})
    assert b"\xcf" in raw  # the raw search that this helper replaces would have failed here
    assert type_markers(raw) == [0x81, 0xA9, 0xCB]


def test_ext_values_and_bad_input() -> None:
    assert type_markers(b"\x92\xd4\x00\x00\xc7\x02\x01ab") == [0x92, 0xD4, 0xC7]
    with pytest.raises(ValueError, match="after the value"):
        type_markers(b"\xc0\xc0")
    with pytest.raises(ValueError, match="not msgpack"):
        type_markers(b"\xc1")
