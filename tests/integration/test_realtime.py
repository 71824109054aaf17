"""Events, SSE and WebSocket through `bunq serve`: the dashboard example, wildcards, filters, commands,
auth both ways, and jobs released when a WebSocket closes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import websockets

from bunq.catalogue import EVENTS
from tests.support.processes import BunqServer

pytestmark = pytest.mark.integration

DASHBOARD = ["job:*", "queue:counts", "stats:snapshot", "health:status", "worker:*", "dlq:*", "cron:*",
             "queue:paused", "queue:resumed"]  # fmt: skip


def ws_url(server: BunqServer, path: str = "/ws") -> str:
    return server.url.replace("http://", "ws://") + path


class Client:
    """A WebSocket client on its own event loop thread, collecting every frame it receives."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = url
        self.headers = headers or {}
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ws: Any = asyncio.run_coroutine_threadsafe(self._connect(), self.loop).result(10)

    async def _connect(self) -> Any:
        ws = await websockets.connect(self.url, additional_headers=self.headers)
        self.loop.create_task(self._read(ws))
        return ws

    async def _read(self, ws: Any) -> None:
        try:
            async for text in ws:
                self.frames.append(json.loads(text))
        except websockets.ConnectionClosed:
            pass

    def send(self, message: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(self.ws.send(json.dumps(message)), self.loop).result(10)

    def send_text(self, text: str) -> None:
        asyncio.run_coroutine_threadsafe(self.ws.send(text), self.loop).result(10)

    def reply(self, req_id: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames:
                if frame.get("reqId") == req_id:
                    return frame
            time.sleep(0.01)
        raise AssertionError(f"no reply to {req_id}: {self.frames[-5:]}")

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        req_id = f"{cmd}-{time.monotonic_ns()}"
        self.send({"cmd": cmd, "reqId": req_id, **fields})
        return self.reply(req_id)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.frames if "event" in f and (name is None or f["event"] == name)]

    def wait_for(self, predicate: Any, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"condition not met; last frames: {self.frames[-5:]}")

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.ws.close(), self.loop).result(10)

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_dashboard_subscriptions_see_the_job_path_and_registries(server: BunqServer) -> None:
    dash = Client(ws_url(server))
    try:
        assert dash.call("Subscribe", events=DASHBOARD) == {
            "ok": True,
            "subscribed": DASHBOARD,
            "reqId": dash.frames[0]["reqId"],
        }
        time.sleep(0.3)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            job = c.post("/queues/dash/jobs", json={"data": 1}).json()["id"]
            c.get("/queues/dash/jobs")
            c.post(f"/jobs/{job}/ack", json={})
            bad = c.post("/queues/dash/jobs", json={"data": 2, "maxAttempts": 1}).json()["id"]
            c.get("/queues/dash/jobs")
            c.post(f"/jobs/{bad}/fail", json={"error": "boom"})
            c.post("/queues/dash/pause")
            c.post("/queues/dash/resume")
            c.post("/crons", json={"name": "dash-cron", "queue": "dash", "data": 1, "repeatEvery": 200, "maxLimit": 1})
            c.post("/workers", json={"name": "dash-worker", "queues": ["dash"]})
            c.post("/queues/dash-held/jobs", json={"data": 3})
            c.post("/queues/dash-held/pause")
        wanted = ["job:pushed", "job:active", "job:completed", "job:failed", "dlq:added", "queue:paused",
                  "queue:resumed", "queue:counts", "cron:created", "cron:fired", "worker:connected",
                  "stats:snapshot"]  # fmt: skip
        dash.wait_for(lambda: all(dash.events(name) for name in wanted), timeout=20)
        assert (
            dash.events("job:completed")[0]["data"] | {"queue": "dash", "jobId": job}
            == dash.events("job:completed")[0]["data"]
        )
        dlq = dash.events("dlq:added")[0]["data"]
        assert dlq["jobId"] == bad and dlq["reason"]
        counts = dash.events("queue:counts")[-1]["data"]
        assert counts["queue"] == "dash" and {"waiting", "active", "completed", "failed", "delayed"} <= set(counts)

        def held_snapshot() -> dict[str, Any] | None:
            held = [e["data"] for e in dash.events("stats:snapshot") if "dash-held" in e["data"]["queues"]]
            return held[-1] if held else None

        dash.wait_for(lambda: held_snapshot() is not None, timeout=12)  # every 5 s
        snapshot = held_snapshot()
        assert snapshot is not None
        assert {"waiting", "active", "completed", "dlq", "totalPushed", "pushPerSec", "uptime", "cronJobs"} <= set(
            snapshot
        )
        # the reference's shapes: queues keyed by name with a paused flag, workers as totals, uptime in ms
        assert (
            snapshot["queues"]["dash-held"] | {"waiting": 1, "dlq": 0, "paused": True}
            == snapshot["queues"]["dash-held"]
        )
        assert snapshot["queues"]["dash"]["paused"] is False and snapshot["queues"]["dash"]["dlq"] == 1
        assert snapshot["workers"]["total"] >= 1 and snapshot["workers"]["active"] == snapshot["workers"]["total"]
        assert snapshot["uptime"] >= 1000
        assert all(set(f) == {"event", "ts", "data"} for f in dash.events())
        assert not dash.events("webhook:added")  # not subscribed
    finally:
        dash.close()


def test_a_worker_registered_over_a_websocket_is_unregistered_when_it_closes(server: BunqServer) -> None:
    """As the reference does, and as bunq's TCP connections do: a worker process that dies without its
    UnregisterWorker does not stay listed until its heartbeat times out."""
    ws = Client(ws_url(server))
    left = ws.call("RegisterWorker", name="ws-left", queues=["q"])["data"]["id"]
    ws.call("RegisterWorker", name="ws-dropped", queues=["q"])
    assert ws.call("UnregisterWorker", workerId=left)["ok"]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/workers", json={"name": "http-worker", "queues": ["q"]}).json()["ok"]

        def names() -> set[str]:
            return {w["name"] for w in c.get("/workers").json()["data"]["workers"]}

        assert {"ws-dropped", "http-worker"} <= names() and "ws-left" not in names()
        ws.close()
        deadline = time.monotonic() + 10
        while "ws-dropped" in names() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "ws-dropped" not in names()
        assert "http-worker" in names()  # registered over HTTP: no connection owns it


def test_a_client_that_reads_is_not_cut_off_by_a_bulk_push_s_burst(server: BunqServer) -> None:
    """A bulk push of 5,000 jobs publishes 5,000 events at once: a legacy client reading them as they come
    is not a subscriber that fell behind (the buffer used to hold 1,000, and the client was cut off)."""
    ws = Client(ws_url(server, "/ws/queues/burst"))
    try:
        reply = ws.call("PUSHB", queue="burst", jobs=[{"data": i} for i in range(5000)])
        assert reply["ok"] is True and len(reply["ids"]) == 5000
        ws.wait_for(lambda: sum(f.get("eventType") == "pushed" for f in ws.frames) == 5000, timeout=30)
        assert ws.call("Count", queue="burst")["count"] == 5000  # still connected
    finally:
        ws.close()


def test_get_jobs_takes_a_list_of_states_as_the_reference_does(server: BunqServer) -> None:
    ws = Client(ws_url(server))
    try:
        first = ws.call("PUSH", queue="ws-list", data={"n": 1})["id"]
        later = ws.call("PUSH", queue="ws-list", data={"n": 2}, delay=600_000)["id"]
        assert ws.call("PUSH", queue=7, data={"n": 3})["ok"]  # a number names the queue "7", as on the reference

        def ids(**fields: Any) -> list[str]:
            reply = ws.call("GetJobs", queue="ws-list", **fields)
            assert reply["ok"] is True, reply
            return [job["id"] for job in reply["jobs"]]

        assert ids(state=["waiting", "delayed"]) == [first, later]
        assert ids(state=["waiting", "delayed"], asc=False) == [later, first]  # newest first
        assert ids(asc=False) == [later, first] and ids(asc=True) == [first, later]
        refused = ws.call("GetJobs", queue="ws-list", asc="sideways")
        assert refused == {"ok": False, "error": "asc must be a boolean", "reqId": refused["reqId"]}
        assert ids(state=["delayed"]) == [later]
        assert ids(state="waiting") == [first]
        assert ws.call("Count", queue="7")["count"] == 1
    finally:
        ws.close()


def test_legacy_clients_get_job_events_and_queue_filters_apply(server: BunqServer) -> None:
    legacy = Client(ws_url(server))
    filtered = Client(ws_url(server, "/ws/queues/only-a"))
    sse: list[dict[str, Any]] = []

    def listen() -> None:
        with httpx.stream("GET", server.url + "/events/queues/only-a", timeout=20) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    event = msgspec.json.decode(line[6:])
                    if not event.get("connected"):
                        sse.append(event)
                    if len(sse) >= 2:
                        return

    thread = threading.Thread(target=listen)
    thread.start()
    try:
        filtered.call("Subscribe", events=["*"])
        time.sleep(0.5)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            c.post("/queues/only-b/jobs", json={"data": 1})
            a = c.post("/queues/only-a/jobs", json={"data": 1}).json()["id"]
            c.get("/queues/only-a/jobs")
        legacy.wait_for(lambda: len([f for f in legacy.frames if "eventType" in f]) >= 3)
        kinds = [(f["eventType"], f["queue"]) for f in legacy.frames if "eventType" in f]
        assert ("pushed", "only-b") in kinds and ("pushed", "only-a") in kinds and ("pulled", "only-a") in kinds
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.post(f"/jobs/{a}/ack", json={"result": {"r": 1}}).json()["ok"]
        legacy.wait_for(lambda: any(f.get("eventType") == "completed" for f in legacy.frames))
        [done] = [f for f in legacy.frames if f.get("eventType") == "completed"]
        assert done["jobId"] == a and done["data"] == done["result"] == {"r": 1}  # the reference's `data`
        filtered.wait_for(lambda: len(filtered.events("job:active")) >= 1)
        named = [f["data"]["queue"] for f in filtered.events() if "queue" in f["data"]]
        assert named and set(named) == {"only-a"}
        thread.join(20)
        assert [(e["eventType"], e["jobId"]) for e in sse] == [("pushed", a), ("pulled", a)]
    finally:
        legacy.close()
        filtered.close()


def test_websocket_commands_cover_the_http_operations(server: BunqServer) -> None:
    ws = Client(ws_url(server))
    try:
        job = ws.call("PUSH", queue="wsq", data={"x": 1}, priority=3)["id"]
        assert ws.call("PUSHB", queue="wsq", jobs=[{"data": 2}, {"data": 3}])["ids"]
        assert ws.call("GetJob", id=job)["job"]["data"] == {"x": 1}
        assert ws.call("GetJobCounts", queue="wsq")["counts"]["waiting"] == 3
        pulled = ws.call("PULL", queue="wsq")["job"]
        assert pulled["id"] == job
        assert ws.call("Progress", id=job, progress=50)["ok"]
        assert ws.call("ACK", id=job, result={"done": True})["ok"]
        assert ws.call("GetResult", id=job)["result"] == {"done": True}
        batch = ws.call("PULLB", queue="wsq", count=2)["jobs"]
        assert ws.call("ACKB", ids=[j["id"] for j in batch])["count"] == 2
        assert ws.call("Pause", queue="wsq")["ok"] is True
        assert ws.call("IsPaused", queue="wsq")["paused"] is True
        assert ws.call("Resume", queue="wsq")["ok"]
        assert "wsq" in ws.call("ListQueues")["queues"]
        assert ws.call("Dlq", queue="wsq")["total"] == 0
        assert ws.call("RateLimit", queue="wsq", limit=5)["ok"] and ws.call("RateLimitClear", queue="wsq")["ok"]
        assert ws.call("GetStallConfig", queue="wsq")["config"]["maxStalls"] == 3
        assert ws.call("Cron", name="wsc", queue="wsq", data=1, repeatEvery=60_000)["cron"]["name"] == "wsc"
        assert [c["name"] for c in ws.call("CronList")["crons"]] == ["wsc"]
        assert ws.call("RegisterWorker", name="w")["data"]["name"] == "w"
        assert ws.call("Stats")["stats"]["totalPushed"] >= 3
        assert "bunq_queue_jobs" in ws.call("Prometheus")["data"]["metrics"]
        status = ws.call("StorageStatus")
        assert status["diskFull"] is False  # /storage's body, and the reference's `data` beside it
        assert status["data"] == {"diskFull": False, "error": None, "since": None}
        pong = ws.call("Ping")["data"]
        assert pong["pong"] is True and pong["time"] > 0  # as over HTTP, and as the reference answers
        assert ws.call("GetJob", id="missing") == {
            "ok": False,
            "error": "Job not found",
            "reqId": ws.frames[-1]["reqId"],
        }
        assert ws.call("NoSuchThing")["error"] == "Unknown command: NoSuchThing"
        ws.send_text("{not json")
        ws.wait_for(lambda: {"ok": False, "error": "Invalid JSON"} in ws.frames)  # ws-commands.md's answer
        ws.send({"noCmd": 1, "reqId": "no-cmd"})
        assert ws.reply("no-cmd") == {"ok": False, "error": "Invalid command", "reqId": "no-cmd"}
        hello = ws.call("Hello", protocolVersion=3)
        assert hello["ok"] is True and hello["protocolVersion"] == 3 and hello["server"] == "bunq"
        assert ws.call("Subscribe", events=["nope:*"])["error"] == "Invalid: nope:*"
        for empty in ({}, {"events": []}):  # as the reference: a subscription names what it wants
            assert ws.call("Subscribe", **empty)["error"] == "events must be a non-empty array"
    finally:
        ws.close()


def test_closing_a_websocket_releases_its_jobs(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ids = c.post("/queues/rel/jobs/bulk", json={"jobs": [{"data": i} for i in range(3)]}).json()["ids"]
        ws = Client(ws_url(server))
        assert ws.call("PULLB", queue="rel", count=2, owner="w", lockTtl=60_000)["jobs"]
        one = ws.call("PULL", queue="rel")["job"]
        assert ws.call("ACK", id=one["id"])["ok"]
        assert c.get("/queues/rel/counts").json()["counts"]["active"] == 2
        ws.close()
        deadline = time.monotonic() + 10
        while c.get("/queues/rel/counts").json()["counts"]["active"] and time.monotonic() < deadline:
            time.sleep(0.05)
        counts = c.get("/queues/rel/counts").json()["counts"]
        assert counts["active"] == 0 and counts["waiting"] == 2 and counts["completed"] == 1
        attempts = [c.get(f"/jobs/{i}").json()["job"]["attempts"] for i in ids]
        assert attempts == [0, 0, 0]


def test_auth_by_header_or_command(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=1, AUTH_TOKENS="alpha,beta")
    server.start()
    try:
        anonymous = Client(ws_url(server))
        refused = anonymous.call("GetJobCounts", queue="x")
        assert refused["ok"] is False and refused["error"] == "Unauthorized"
        assert anonymous.call("Subscribe", events=["*"])["error"] == "Unauthorized"
        assert anonymous.call("Auth", token="wrong")["error"] == "Unauthorized"
        assert anonymous.call("Auth", token="beta")["ok"] is True
        assert anonymous.call("GetJobCounts", queue="x")["ok"] is True
        anonymous.close()
        with_header = Client(ws_url(server), {"Authorization": "Bearer alpha"})
        assert with_header.call("GetJobCounts", queue="x")["ok"] is True
        with_header.close()
    finally:
        server.stop()


# ---- subscribe, then act at once: the reply means the events flow (issue 10) ------------------------

ROUNDS = 20
EVENT_WAIT_S = 5.0  # an event that has not come by then was lost; on success it comes in milliseconds


class Session:
    """One WebSocket connection driven from a single coroutine: replies by `reqId`, other frames kept."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.n = 0

    async def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        req_id = f"r{self.n}"
        await self.ws.send(json.dumps({"cmd": cmd, "reqId": req_id, **fields}))
        while True:
            frame = json.loads(await self.ws.recv())
            if frame.get("reqId") == req_id:
                assert frame["ok"] is True, frame
                return dict(frame)
            self.seen.append(frame)

    async def expect(self, matches: Any) -> bool:
        try:
            async with asyncio.timeout(EVENT_WAIT_S):
                while not any(matches(f) for f in self.seen):
                    self.seen.append(json.loads(await self.ws.recv()))
        except TimeoutError:
            return False
        return True


async def _dlq(s: Session, q: str) -> None:
    job = await s.call("PUSH", queue=q, data=1, maxAttempts=1)
    await s.call("PULL", queue=q)
    await s.call("FAIL", id=job["id"], error="boom")


ACTIONS: dict[str, Any] = {
    "job:pushed": lambda s, q: s.call("PUSH", queue=q, data=1),
    "queue:paused": lambda s, q: s.call("Pause", queue=q),
    "queue:resumed": lambda s, q: s.call("Resume", queue=q),
    "ratelimit:set": lambda s, q: s.call("RateLimit", queue=q, limit=5),
    "concurrency:set": lambda s, q: s.call("SetConcurrency", queue=q, limit=2),
    "config:stall-changed": lambda s, q: s.call("SetStallConfig", queue=q, config={"maxStalls": 2}),
    "config:dlq-changed": lambda s, q: s.call("SetDlqConfig", queue=q, config={"maxEntries": 50}),
    "dlq:added": _dlq,
    "worker:connected": lambda s, q: s.call("RegisterWorker", name=q, queues=[q]),
    "cron:created": lambda s, q: s.call("Cron", name=q, queue=q, data=1, repeatEvery=3_600_000),
    "webhook:added": lambda s, q: s.call("AddWebhook", url=f"http://127.0.0.1:9/{q}", events=["completed"]),
}


def _names(event: dict[str, Any], q: str) -> bool:
    return q in json.dumps(event.get("data"))


async def _subscribe_then_act(base: str, family: str, rounds: int = ROUNDS, tag: str = "") -> str | None:
    """Fresh connections, each subscribing to one event and acting on a new queue the moment it is
    answered; the first round whose event never comes is returned."""
    for i in range(rounds):
        q = f"{family.replace(':', '-')}{tag}-{i}"
        async with websockets.connect(base + "/ws") as ws:
            s = Session(ws)
            assert (await s.call("Subscribe", events=[family]))["subscribed"] == [family]
            await ACTIONS[family](s, q)
            if not await s.expect(lambda f: f.get("event") == family and _names(f, q)):  # noqa: B023
                return f"{family} round {i}: no event; saw {s.seen[-3:]}"
    return None


async def _legacy_connect_then_push(base: str) -> str | None:
    """A legacy client (no Subscribe) on `/ws/queues/:q`: once connected, its job events flow."""
    for i in range(ROUNDS):
        q = f"legacy-{i}"
        async with websockets.connect(f"{base}/ws/queues/{q}") as ws:
            s = Session(ws)
            job = (await s.call("PUSH", queue=q, data=1))["id"]
            if not await s.expect(lambda f: f.get("eventType") == "pushed" and f.get("jobId") == job):  # noqa: B023
                return f"legacy round {i}: no event; saw {s.seen[-3:]}"
    return None


async def _sse_connect_then_push(url: str) -> str | None:
    """SSE: after the `connected` frame, a job pushed at once is seen (all queues, then one queue)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        for i in range(ROUNDS):
            q = f"sse-{i}"
            path = "/events" if i % 2 else f"/events/queues/{q}"
            async with c.stream("GET", path) as r:
                lines = r.aiter_lines()
                while not (line := await anext(lines)).startswith("data: "):
                    pass
                assert json.loads(line[6:])["connected"] is True
                job = (await c.post(f"/queues/{q}/jobs", json={"data": 1})).json()["id"]
                try:
                    async with asyncio.timeout(EVENT_WAIT_S):
                        async for line in lines:
                            if line.startswith("data: ") and json.loads(line[6:]).get("jobId") == job:
                                break
                except TimeoutError:
                    return f"sse {path} round {i}: no event"
    return None


def test_events_right_after_subscribing_are_never_lost(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=3, fronts=2, BUNQ_WEBHOOK_ALLOW="127.0.0.1/32")
    server.start()
    base = ws_url(server, "")

    async def main() -> list[str]:
        runs = [_subscribe_then_act(base, family) for family in ACTIONS]
        misses = await asyncio.gather(*runs, _legacy_connect_then_push(base), _sse_connect_then_push(server.url))
        return [m for m in misses if m is not None]

    async def barriers_stay_internal() -> list[dict[str, Any]]:
        """A `*` subscriber sees every event of the catalogue, and nothing else: not the barriers' answers."""
        async with websockets.connect(base + "/ws") as ws:
            watcher = Session(ws)
            await watcher.call("Subscribe", events=["*"])
            assert await _subscribe_then_act(base, "queue:paused", rounds=3, tag="-watched") is None
            last = "queue-paused-watched-2"
            assert await watcher.expect(lambda f: f.get("event") == "queue:paused" and _names(f, last))
            return [f for f in watcher.seen if f.get("event") not in EVENTS]

    try:
        assert asyncio.run(main()) == []
        assert asyncio.run(barriers_stay_internal()) == []
    finally:
        server.stop()
