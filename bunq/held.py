"""The jobs that connections (WebSocket or bunqueue TCP) pulled and have not finished, given back when the
connection that pulled them goes away; and the workers they registered, unregistered then.

A WebSocket connection keeps its own; a front process keeps one for all its TCP connections, since
bunqueue's Worker pulls on one connection of its pool and acks or reports progress on another.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import msgspec

from bunq import protocol as p
from bunq.client import Shards
from bunq.errors import BunqError

log = logging.getLogger("bunq.front")

FINISHING = {"ACK", "FAIL", "Cancel", "Discard", "MoveToDelayed"}
LIMIT = 100_000  # past this many, the oldest are forgotten: they come back at their lock's expiry instead
PULLS = ("PULL", "PULLB")


class _Id(msgspec.Struct):
    id: str


class _Pulled(msgspec.Struct):
    """What tracking needs of a pull's reply: the ids and tokens, not the jobs (decoding those costs more)."""

    job: _Id | None = None
    token: str | None = None
    jobs: list[_Id] | None = None
    tokens: list[str | None] | None = None


class _Outcome(msgspec.Struct):
    """What tracking needs of a finishing command's reply: whether it took, and which ids of a batch did not."""

    ok: bool = False
    failed: dict[str, Any] | None = None


_decode_pulled = msgspec.json.Decoder(_Pulled).decode
_decode_outcome = msgspec.json.Decoder(_Outcome).decode


class HeldJobs:
    """Job id → the lease token it was pulled with (None for a pull without an owner) and who pulled it."""

    def __init__(self, limit: int = LIMIT) -> None:
        # ordered so that forgetting the oldest is O(1): `next(iter(dict))` walks past every deleted entry
        self.leases: OrderedDict[str, tuple[str | None, Hashable]] = OrderedDict()
        self.limit = limit

    def token(self, job_id: str) -> str | None:
        lease = self.leases.get(job_id)
        return lease[0] if lease else None

    def track(self, name: str, message: dict[str, Any], body: dict[str, Any], holder: Hashable = None) -> None:
        """Follow one command's answer (`body`, as its HTTP route renders it, decoded)."""
        if name == "PULL":
            job = body.get("job")
            self._hold_pulled([job["id"]] if job else [], [body.get("token")], holder)
        elif name == "PULLB":
            self._hold_pulled([job["id"] for job in body.get("jobs") or []], body.get("tokens") or [], holder)
        else:
            failed = body.get("failed")
            self.finished(name, message, body.get("ok") is True, failed if isinstance(failed, dict) else {})

    def track_encoded(self, name: str, message: dict[str, Any], reply: bytes, holder: Hashable = None) -> None:
        """`track` of an answer still in its JSON form: a pull's is read for its ids and tokens only."""
        if name not in PULLS:
            if name in FINISHING or name == "ACKB":
                try:
                    outcome = _decode_outcome(reply)
                except msgspec.DecodeError:
                    return
                self.finished(name, message, outcome.ok, outcome.failed or {})
            return
        try:
            pulled = _decode_pulled(reply)
        except msgspec.DecodeError:  # not a pull's reply (an error's has none of these fields)
            return
        if name == "PULL":
            self._hold_pulled([pulled.job.id] if pulled.job else [], [pulled.token], holder)
        else:
            self._hold_pulled([job.id for job in pulled.jobs or ()], pulled.tokens or [], holder)

    def _hold_pulled(self, ids: list[str], tokens: list[str | None], holder: Hashable) -> None:
        for i, job_id in enumerate(ids):
            self.hold(job_id, tokens[i] if i < len(tokens) else None, holder)

    def finished(self, name: str, message: dict[str, Any], ok: bool, failed: dict[str, Any]) -> None:
        """Stop following the jobs a finishing command finished. One it did not (refused, or a shard that
        could not answer) is still held: it goes back at the connection's close (a release whose lease has
        moved on is refused, so nothing is taken from whoever holds the job now)."""
        if name in FINISHING:
            if ok:
                self.leases.pop(str(message.get("id")), None)
        elif name == "ACKB":
            for job_id in message.get("ids") or []:
                if str(job_id) not in failed:
                    self.leases.pop(str(job_id), None)

    def hold(self, job_id: str, token: str | None, holder: Hashable) -> None:
        self.leases[job_id] = (token, holder)
        if len(self.leases) > self.limit:
            self.leases.popitem(last=False)

    def take(self, holder: Hashable = None) -> dict[str, str | None]:
        """Forget, and return, the jobs `holder` pulled."""
        mine = {job_id: token for job_id, (token, who) in self.leases.items() if who is holder or who == holder}
        for job_id in mine:
            del self.leases[job_id]
        return mine

    async def release(self, client: Shards, what: str, holder: Hashable = None) -> None:
        """Every job `holder` holds back to waiting at once, its attempts untouched; one whose lease has moved on
        (another token) is left alone. Those a shard could not take back return at their lock's expiry instead."""
        held = self.take(holder)
        if not held:
            return
        ids = list(held)
        tokens = [held[i] for i in ids]
        calls = [
            client.call_raw(s, p.ReleaseJobs([ids[i] for i in idx], [tokens[i] for i in idx]))
            for s, idx in client.by_shard(ids).items()
        ]
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.warning("%s close: releasing pulled jobs failed: %s", what, outcome)


class RegisteredWorkers:
    """The workers a connection registered, unregistered when it closes (as the reference does): a worker
    process that goes away without its `UnregisterWorker` does not stay listed until its heartbeat times out."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def track(self, name: str, message: dict[str, Any], reply: dict[str, Any]) -> None:
        if name == "RegisterWorker" and reply.get("ok") is True and isinstance(reply.get("data"), dict):
            self.ids.add(str(reply["data"].get("id")))
        elif name == "UnregisterWorker":
            self.ids.discard(str(message.get("workerId")))

    async def release(self, client: Shards, what: str) -> None:
        for worker_id in self.ids:
            try:
                await client.call_aggregator(p.DeleteWorker(worker_id), p.Done)
            except BunqError as exc:
                log.info("%s close: unregistering worker %s: %s", what, worker_id, exc.message)
        self.ids.clear()
