"""ZeroMQ frames between fronts and shards, and their msgpack encoding.

Request (front DEALER → shard ROUTER)::

    DEALER sends   [ request-id (8 bytes) | command (msgpack, tagged) ]
    ROUTER sees    [ peer-identity | request-id | command ]

Reply (shard ROUTER → front DEALER)::

    ROUTER sends   [ peer-identity | request-id | reply (msgpack, tagged) ]
    DEALER sees    [ request-id | reply ]

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


def encode(message: Command | Reply) -> bytes:
    return _encoder.encode(message)


def decode_command(frame: bytes) -> Command:
    command: Command = _command_decoder.decode(frame)
    return command


def decode_reply(frame: bytes) -> Reply:
    reply: Reply = _reply_decoder.decode(frame)
    return reply


def request_id(counter: int) -> bytes:
    return counter.to_bytes(8, "little")


def request_number(frame: bytes) -> int:
    return int.from_bytes(frame, "little")
