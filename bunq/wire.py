"""ZeroMQ frames between fronts and shards, and their msgpack encoding.

Request (front DEALER → shard ROUTER), one frame after the identity::

    DEALER sends   [ request-id (8 bytes, little-endian) + command (msgpack, tagged) ]
    ROUTER sees    [ peer-identity | request-id + command ]

Reply (shard ROUTER → front DEALER)::

    ROUTER sends   [ peer-identity | request-id + reply (msgpack, tagged) ]
    DEALER sees    [ request-id + reply ]

Event (shard XPUB → aggregator XSUB/XPUB → front SUB)::

    [ topic = event name, e.g. b"job:completed" | envelope JSON {"event", "ts", "data"} ]

A request id is chosen by the front and echoed untouched; the shard may answer out of order (a
long-poll pull is answered when a job arrives), so the id is what pairs a reply with its call.
"""

from __future__ import annotations

import msgspec

from bunq.protocol import AnyCommand, AnyReply, Command, Reply

_encoder = msgspec.msgpack.Encoder()
_command_decoder = msgspec.msgpack.Decoder(AnyCommand)
_reply_decoder = msgspec.msgpack.Decoder(AnyReply)


def pack(number: int, message: Command | Reply) -> bytes:
    """One frame: the request id, then the message."""
    return number.to_bytes(8, "little") + _encoder.encode(message)


def unpack_command(frame: bytes) -> tuple[bytes, Command]:
    """The request id (echoed untouched in the reply) and the command."""
    command: Command = _command_decoder.decode(memoryview(frame)[8:])
    return frame[:8], command


def pack_reply(rid: bytes, reply: Reply) -> bytes:
    return rid + _encoder.encode(reply)


def unpack_reply(frame: bytes) -> tuple[int, Reply]:
    reply: Reply = _reply_decoder.decode(memoryview(frame)[8:])
    return int.from_bytes(frame[:8], "little"), reply
