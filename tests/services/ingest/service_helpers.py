"""An ingestion server in-process (on its own event loop thread) and the waits its tests share.

Every server binds 127.0.0.1 on ports the operating system picks; every call
and wait has a deadline, and whoever starts a server closes it. Waits and HTTP
come from the shared harness, :mod:`riskcore_services.testing`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import threading
from typing import Any, Callable, TypeVar

import grpc

from riskcore_services.ingest.config import IngestConfig, parse_config
from riskcore_services.ingest.server import IngestServer
from riskcore_services.proto import ingest_pb2, ingest_pb2_grpc
from riskcore_services.testing import http_get, wait_until

DEADLINE = 5.0
T = TypeVar("T")


def ingest_config(base: pathlib.Path, **ingest: Any) -> IngestConfig:
    """A configuration whose ``[ingest]`` table is ``ingest`` (nested tables as dicts), on 127.0.0.1 port 0."""
    config = parse_config({"ingest": ingest}, base)
    return dataclasses.replace(config, server=dataclasses.replace(
        config.server, host="127.0.0.1", port=0, http_host="127.0.0.1", http_port=0, grace_seconds=1.0,
        drain_seconds=0.0))


def replay_config(path: pathlib.Path, replay: dict | None = None, **ingest: Any) -> IngestConfig:
    """Replay of ``path`` as fast as possible, once (``replay`` adds to or overrides those settings)."""
    return ingest_config(path.parent, replay={"file": path.name, "speed": 0.0, "loop": False, **(replay or {})},
                         **ingest)


class IngestProcess:
    """An :class:`IngestServer` on its own asyncio loop in a daemon thread, with a channel to it."""

    def __init__(self, config: IngestConfig, **options: Any):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ingest-server-loop", daemon=True)
        self._thread.start()

        async def build() -> IngestServer:
            return IngestServer(config, **options)

        self.server: IngestServer = self.run(build())
        self.started = False
        self._channel: grpc.Channel | None = None

    def run(self, coroutine, timeout: float = DEADLINE):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def on_loop(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the server's loop thread (where its state lives) and return its result."""
        async def call() -> T:
            return function(*args)
        return self.run(call())

    def start(self) -> "IngestProcess":
        self.run(self.server.start(), timeout=30.0)
        self.started = True
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def stub(self) -> ingest_pb2_grpc.MarketDataStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target)
        return ingest_pb2_grpc.MarketDataStub(self._channel)

    def status(self) -> ingest_pb2.StatusResponse:
        return self.stub.GetStatus(ingest_pb2.StatusRequest(), timeout=DEADLINE)

    def output(self, name: str) -> ingest_pb2.OutputStatus:
        return next(o for o in self.status().outputs if o.name == name)

    def wait_state(self, state: int, timeout: float = 20.0) -> ingest_pb2.StatusResponse:
        return wait_until(lambda: (s := self.status()).state == state and s, timeout,
                          f"feed state {ingest_pb2.FeedState.Name(state)}")

    def wait_output_settled(self, name: str, timeout: float = 20.0) -> ingest_pb2.OutputStatus:
        """The output once it has sent something and has nothing waiting or in flight."""
        return wait_until(lambda: (o := self.output(name)).sent and not o.pending and o, timeout, f"{name} to settle")

    def http(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.server.http_port}{path}")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        try:
            if self.started:
                self.started = False
                self.run(self.server.stop(0.0), timeout=DEADLINE * 2)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(DEADLINE)
