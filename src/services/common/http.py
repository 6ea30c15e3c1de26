"""The HTTP operations endpoint of a service: health, readiness, metrics, profiles.

Runs on the service's event loop (aiohttp), so metric collectors that read
the engine do it on the same thread that changes it.
"""
import asyncio
from typing import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from riskcore_services.common.profiling import cpu_profile, thread_stacks

MAX_PROFILE_SECONDS = 60.0


class OpsServer:
    """``/health``, ``/ready``, ``/metrics`` and, when enabled, ``/debug/profile`` and ``/debug/stacks``.

    Parameters
    ----------
    host, port : str, int
        Where to listen; port 0 picks a free port (see :attr:`port`).
    registry : CollectorRegistry
    is_ready : callable returning bool
    profiling : bool
        Serve the profiling endpoints (off by default in configuration).
    """

    def __init__(self, host: str, port: int, registry: CollectorRegistry, is_ready: Callable[[], bool],
                 profiling: bool = False):
        self._host, self._port = host, port
        self._registry = registry
        self._is_ready = is_ready
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        if profiling:
            app.router.add_get("/debug/profile", self._profile)
            app.router.add_get("/debug/stacks", self._stacks)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = 0

    async def start(self) -> int:
        """Start listening; return the bound port."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # The one site's first socket: (host, port) for IPv4, (host, port, flow, scope) for IPv6.
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _ready(self, request: web.Request) -> web.Response:
        ready = self._is_ready()
        return web.Response(text="ready\n" if ready else "not ready\n", status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _profile(self, request: web.Request) -> web.Response:
        try:
            seconds = float(request.query.get("seconds", "5"))
        except ValueError:
            return web.Response(status=400, text="seconds must be a number\n")
        if not 0 < seconds <= MAX_PROFILE_SECONDS:
            return web.Response(status=400, text=f"seconds must be in (0, {MAX_PROFILE_SECONDS:g}]\n")
        return web.Response(text=await asyncio.to_thread(cpu_profile, seconds))

    async def _stacks(self, request: web.Request) -> web.Response:
        return web.Response(text=thread_stacks())
