"""The HTTP operations endpoint: health, readiness, metrics and the opt-in profiling endpoints."""
import asyncio
import re
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Counter

from riskcore_services.common.http import OpsServer
from riskcore_services.risk.config import load_config

DEADLINE = 5.0  # seconds for every request


class RunningOps:
    """An OpsServer on its own loop thread, with a readiness flag the test controls."""

    def __init__(self, http_get, profiling: bool = False):
        self.ready = False
        self.registry = CollectorRegistry()
        self.requests = Counter("riskcore_test_requests", "Requests in this test", registry=self.registry)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.ops = self._run(self._build(profiling))
        self.port = self._run(self.ops.start())
        self._get = http_get

    async def _build(self, profiling):
        return OpsServer("127.0.0.1", 0, self.registry, lambda: self.ready, profiling=profiling)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(DEADLINE)

    def get(self, path: str, timeout: float = DEADLINE):
        return self._get(f"http://127.0.0.1:{self.port}{path}", timeout)

    def close(self):
        self._run(self.ops.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(DEADLINE)


@pytest.fixture
def ops(request):
    from urllib.error import HTTPError
    from urllib.request import urlopen

    def get(url, timeout):
        try:
            with urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)

    running = RunningOps(get, profiling=getattr(request, "param", False))
    yield running
    running.close()


def test_health_answers_ok_whether_or_not_ready(ops):
    assert ops.get("/health")[:2] == (200, "ok\n")
    ops.ready = True
    assert ops.get("/health")[:2] == (200, "ok\n")


def test_ready_answers_503_until_ready_and_again_once_not_ready(ops):
    assert ops.get("/ready")[:2] == (503, "not ready\n")
    ops.ready = True
    assert ops.get("/ready")[:2] == (200, "ready\n")
    ops.ready = False
    assert ops.get("/ready")[0] == 503


def test_metrics_serve_the_registry_in_the_prometheus_text_format(ops):
    ops.requests.inc(3)

    status, body, headers = ops.get("/metrics")

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert "riskcore_test_requests_total 3.0" in body


def test_unknown_path_is_404(ops):
    assert ops.get("/nope")[0] == 404


def test_profiling_endpoints_are_off_by_default(ops):
    assert ops.get("/debug/profile?seconds=0.1")[0] == 404
    assert ops.get("/debug/stacks")[0] == 404


@pytest.mark.parametrize("ops", [True], indirect=True)
def test_profile_returns_collapsed_stacks_of_every_other_thread(ops):
    done = threading.Event()

    def spin():
        end = time.monotonic() + 30  # a bound, in case the test dies before setting done
        while time.monotonic() < end and not done.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin, name="spinner")
    worker.start()
    try:
        status, body, _ = ops.get("/debug/profile?seconds=0.3")
    finally:
        done.set()
        worker.join(DEADLINE)

    assert status == 200
    lines = body.splitlines()
    assert lines
    for line in lines:
        assert re.fullmatch(r"[^ ].*;.* \d+", line), line
    spinner = [line for line in lines if line.startswith("spinner;")]
    assert any("spin (" in line for line in spinner), body
    assert sum(int(line.rsplit(" ", 1)[1]) for line in spinner) >= 5, body


@pytest.mark.parametrize("ops", [True], indirect=True)
@pytest.mark.parametrize("seconds", ["0", "-1", "61", "abc", "nan"])
def test_profile_with_a_bad_duration_is_400(ops, seconds):
    status, body, _ = ops.get(f"/debug/profile?seconds={seconds}")

    assert status == 400
    assert "seconds" in body


@pytest.mark.parametrize("ops", [True], indirect=True)
def test_stacks_dump_every_thread(ops):
    status, body, _ = ops.get("/debug/stacks")

    assert status == 200
    assert re.search(r'^Thread \d+ "MainThread"$', body, re.M)
    assert 'File "' in body


def test_risk_server_serves_profiles_when_the_config_enables_profiling(serve, config_file):
    server = serve(load_config(config_file("[profiling]\nenabled = true\n")))

    status, body = server.http("/debug/profile?seconds=0.2")

    assert status == 200
    assert all(re.fullmatch(r".+ \d+", line) for line in body.splitlines())
    assert any(";" in line for line in body.splitlines())
    assert server.http("/debug/stacks")[0] == 200


def test_risk_server_has_no_profiling_endpoints_on_the_sample_config(server):
    assert server.http("/debug/profile?seconds=0.1")[0] == 404
    assert server.http("/debug/stacks")[0] == 404
