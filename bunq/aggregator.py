"""The aggregator process: forwards every shard's events to the fronts (XSUB → XPUB), subscriptions upstream."""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

import zmq

from bunq.settings import Settings

log = logging.getLogger("bunq.aggregator")


class Aggregator:
    def __init__(self, settings: Settings) -> None:
        self.running = True
        self.ctx = zmq.Context()
        self.xsub = self.ctx.socket(zmq.XSUB)
        self.xsub.setsockopt(zmq.LINGER, 0)
        for endpoint in settings.shard_event_endpoints:
            self.xsub.connect(endpoint)
        for d in settings.ipc_dirs():
            os.makedirs(d, exist_ok=True)
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.setsockopt(zmq.SNDHWM, 100_000)
        self.xpub.bind(settings.events_endpoint)

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.xsub, zmq.POLLIN)
        poller.register(self.xpub, zmq.POLLIN)
        while self.running:
            ready = dict(poller.poll(200))
            if self.xsub in ready:
                self._forward(self.xsub, self.xpub)
            if self.xpub in ready:
                self._forward(self.xpub, self.xsub)
        self.xsub.close()
        self.xpub.close()
        self.ctx.term()

    @staticmethod
    def _forward(source: zmq.Socket[bytes], sink: zmq.Socket[bytes]) -> None:
        for _ in range(4096):
            try:
                frames = source.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                sink.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass  # a slow front loses events rather than stalling every shard

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s aggregator %(message)s")
    aggregator = Aggregator(settings)
    signal.signal(signal.SIGTERM, aggregator.stop)
    signal.signal(signal.SIGINT, aggregator.stop)
    aggregator.run()
