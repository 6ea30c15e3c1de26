"""Service benchmarks: the risk engine over gRPC on loopback, next to a bare gRPC server.

``python -m benchmarks --suite service [--quick]`` runs them. Each server is
``python -m riskcore_services.risk`` in a child process (the sample's instruments and
accounts plus a ``bench`` account, state in memory so the figures are gRPC +
engine and not fsync); each client is ``benchmarks.service_client`` in a
process of its own. In the same run, ``benchmarks.echo_server`` (a grpc.aio
server on uvloop that only answers CheckPosition with the engine's exact
answer) gives the floor the engine is compared against.

Everything runs twice: with grpcio's defaults, and with the event-engine
experiments off (``GRPC_EXPERIMENTS`` in the environment of the servers and
the clients, see :data:`riskcore_services.common.grpc_io.LEGACY_IO_EXPERIMENTS`; the
service's own default when the variable is unset).

Cases, per mode:

- CheckPosition latency on the sync stub (the README's call), the echo server,
  the engine as shipped (``[logging] requests = "changes"``: successful
  checks are not logged) and the engine with ``requests = "all"`` (one JSON
  access line per call, the audit record of every decision) taking turns in
  chunks of calls; the 1.15x goal applies to both, and is the issue's goal
  for ``requests = "all"``: logging every call must be cheap enough to leave on;
- the server's own time per check, from ``riskcore_check_duration_seconds``
  scraped from ``/metrics`` before and after the latency case (quantiles
  interpolated in the buckets as Prometheus' ``histogram_quantile`` does),
  and the log lines the logging server dropped (``riskcore_log_lines_dropped_total``);
- CheckPosition throughput with 1 and with 16 concurrent callers (grpc.aio,
  one channel);
- SubmitStream ping-pong latency, on the engine and on the echo server (which
  answers each order unchecked), and pipelined messages per second;
- SubmitOrders in columnar batches of 10k orders.
"""
from __future__ import annotations

import importlib.resources
import json
import pathlib
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.processes import Children, grpc_env, run_clients
from benchmarks.results import MS, US, Row, Target, Timing, expect
from riskcore_services.common.grpc_io import LEGACY_IO_EXPERIMENTS
from riskcore_services.testing import Metrics

SAMPLE_TOML = importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()

# The account every order case books into: directly under the firm, limits on
# every check step, room for every order a run sends (1 share at ~190 each).
BENCH_ACCOUNT = """
[[accounts]]
name = "bench"
parent = "FIRM"
[accounts.limits]
max_order_quantity = 10_000
max_order_notional = 2_000_000.0
max_gross_notional = 450_000_000.0
max_net_notional = 450_000_000.0
max_open_orders = 10_000_000
new_order_rate = [100_000_000, 1.0]
modify_rate = [100_000_000, 1.0]
cancel_rate = [100_000_000, 1.0]
fill_throttle = [100_000_000, 1.0]
"""


def _toml(value) -> str:
    return json.dumps(value) if isinstance(value, (str, list, tuple)) else repr(value)


def bench_config(directory: pathlib.Path, name: str, requests: str = "changes", state: dict | None = None
                 ) -> pathlib.Path:
    """Write ``directory/name``: the shipped sample with its ``[state]`` and ``[logging]`` replaced, plus ``bench``.

    ``requests`` is ``[logging] requests`` (the shipped default unless given).
    ``state`` becomes the ``[state]`` table; without a ``path`` (the default)
    the engine keeps its state in memory.
    """
    text = SAMPLE_TOML
    for table in ("state", "logging"):
        # A table runs from its header to the next header.
        text, found = re.subn(rf"^\[{table}\]\n(?:(?!\[).*\n)*", "", text, count=1, flags=re.M)
        expect(found == 1, f"no [{table}] table in the sample configuration")
    state = {"roll_time": "17:00", "roll_timezone": "America/New_York", **(state or {})}
    lines = ["[logging]", 'level = "info"', f"requests = {_toml(requests)}", "", "[state]"]
    lines += [f"{key} = {_toml(value)}" for key, value in state.items()]
    path = directory / name
    path.write_text("\n".join(lines) + "\n\n" + text + BENCH_ACCOUNT)
    return path


def engine_answer(config: pathlib.Path, request) -> bytes:
    """What the engine on ``config`` answers to ``request`` (CheckPosition), serialised: the echo server's answer."""
    from riskcore import ManualClock
    from riskcore_services.common.metrics import new_registry
    from riskcore_services.risk.config import build_engine, load_config
    from riskcore_services.risk.metrics import RiskMetrics
    from riskcore_services.risk.service import RiskService

    loaded = load_config(config)
    engine = build_engine(loaded, clock=ManualClock(time.time_ns()))
    service = RiskService(engine, loaded.default_account, RiskMetrics(new_registry(), engine))
    return service.check_position(request).SerializeToString()


def cpu_note(server_cpu: float | None, results: list[dict], count: int, unit: str = "call") -> str:
    """Where the time went: the server's CPU per unit of work, and the cores each side kept busy.

    ``results`` are client results (start/end instants and CPU seconds);
    ``server_cpu`` the server's CPU seconds over the same span, if known.
    """
    elapsed = (max(r["end_ns"] for r in results) - min(r["start_ns"] for r in results)) / 1e9
    text = f"client {sum(r['cpu_seconds'] for r in results) / elapsed:.2f} cores"
    if server_cpu is not None:
        text = f"server CPU {server_cpu / count * 1e6:,.0f} µs/{unit} ({server_cpu / elapsed:.2f} cores), " + text
    return text


# ------------------------------------------------------------------ histograms

@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts of one Prometheus histogram (``le`` upper bounds in seconds)."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    total: float
    sum: float

    def __sub__(self, other: "Histogram") -> "Histogram":
        expect(self.bounds == other.bounds, "histogram buckets changed between scrapes")
        return Histogram(self.bounds, tuple(a - b for a, b in zip(self.counts, other.counts)),
                         self.total - other.total, self.sum - other.sum)

    def quantile(self, q: float) -> float | None:
        """Seconds below which ``q`` of the observations fall, interpolated linearly inside a bucket.

        As Prometheus' ``histogram_quantile``: the lower edge of the first
        bucket is 0, and a quantile in the +Inf bucket is the highest finite bound.
        """
        if self.total <= 0:
            return None
        rank = q * self.total
        previous_bound, previous_count = 0.0, 0.0
        for bound, count in zip(self.bounds, self.counts):
            if count >= rank:
                if bound == float("inf"):
                    return previous_bound
                inside = count - previous_count
                return previous_bound + (bound - previous_bound) * ((rank - previous_count) / inside if inside else 1)
            previous_bound, previous_count = bound, count
        return previous_bound

    @property
    def mean(self) -> float | None:
        return self.sum / self.total if self.total else None


def scrape_histogram(text: str, name: str, **labels: str) -> Histogram:
    """The histogram ``name`` (with exactly ``labels`` besides ``le``) in a ``/metrics`` page."""
    buckets: dict[float, float] = {}
    total = sum_ = None
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            own = {k: v for k, v in sample.labels.items() if k != "le"}
            if own != labels:
                continue
            if sample.name == f"{name}_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{name}_count":
                total = sample.value
            elif sample.name == f"{name}_sum":
                sum_ = sample.value
    expect(bool(buckets) and total is not None, f"no histogram {name}{labels or ''} in /metrics")
    bounds = tuple(sorted(buckets))
    return Histogram(bounds, tuple(buckets[b] for b in bounds), total, sum_ or 0.0)


def histogram_row(case: str, hist: Histogram, targets: list[Target] | None = None, note: str = "") -> Row:
    expect(hist.total > 0, f"{case}: no observations")
    # As for client-side samples: a p99 needs ten observations beyond it.
    p50, p99, mean = hist.quantile(0.5), hist.quantile(0.99) if hist.total >= 1_000 else None, hist.mean
    return Row(case, samples=int(hist.total), median_ns=p50 * 1e9, p99_ns=None if p99 is None else p99 * 1e9,
               targets=targets or [],
               note=(f"{int(hist.total):,} observations; mean {mean * 1e6:.2f} µs (sum/count); p50/p99 interpolated "
                     f"in buckets {', '.join(f'{b * 1e6:g}' for b in hist.bounds[:7])} µs ...") + note,
               raw_ns={"mean": mean * 1e9})


# ------------------------------------------------------------------ scale

@dataclass(frozen=True)
class ServiceScale:
    latency_calls: int        # CheckPosition calls timed per server
    # Calls per turn when servers take turns. Turns of 100 (~50 ms) keep the servers' ratios steady while
    # the load from elsewhere on the machine drifts: in turns of 1,000 two identical servers measured up to
    # 10% apart in one run on 2 busy cores, in turns of 100 within 1%.
    chunk: int
    warmup: int               # untimed calls first
    seconds: float            # each throughput run
    pingpong: int             # SubmitStream messages, one at a time
    pipelined: int            # SubmitStream messages written without waiting
    submit_batches: int       # SubmitOrders batches timed
    batch: int                # orders per SubmitOrders batch
    client_timeout: float     # a client's setup or run, at most


FULL = ServiceScale(latency_calls=20_000, chunk=100, warmup=2_000, seconds=3.0, pingpong=20_000,
                    pipelined=30_000, submit_batches=20, batch=10_000, client_timeout=300.0)
QUICK = ServiceScale(latency_calls=300, chunk=100, warmup=100, seconds=0.3, pingpong=300,
                     pipelined=2_000, submit_batches=2, batch=10_000, client_timeout=60.0)

# Goals of the service (the targets).
ECHO_RATIO_TARGET = Target("p50<=1.15x echo", "value", 1.15)
SERVER_CHECK_TARGETS = [Target("p99<=20µs", "p99_ns", 20 * US)]
PINGPONG_TARGETS = [Target("p50<=0.3ms", "median_ns", 0.3 * MS)]
SUBMIT_ORDERS_TARGETS = [Target(">=300k/s", "throughput", 300e3, at_most=False)]
MODES = (("defaults", False), ("EE off", True))
# The engine with an access line for every call (the shipped default logs calls that change state and failures).
LOGGED = "engine, requests=all"


class ServiceSuite:
    """The service cases, in the order they run; each yields its rows."""

    def __init__(self, scale: ServiceScale, directory: pathlib.Path) -> None:
        self.scale = scale
        self.directory = directory
        self.timing = Timing(0.0)         # the timer's ~80 ns is nothing next to a gRPC call
        self.medians: dict[tuple[str, str], float] = {}

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [*((f"service, gRPC {tag}", lambda tag=tag, legacy=legacy: self.mode(tag, legacy))
                  for tag, legacy in MODES),
                ("service, gRPC defaults vs EE off", self.compare)]

    def mode(self, tag: str, legacy_io: bool) -> Iterator[Row]:
        d = self.directory
        env = grpc_env(legacy_io)
        slug = self._slug(tag)
        shipped = bench_config(d, f"{slug}.toml")
        logged = bench_config(d, f"{slug}-logged.toml", requests="all")
        from benchmarks.service_client import check_request

        answer = engine_answer(shipped, check_request())
        with Children(d) as kids:
            servers = {"echo": kids.echo_server(f"echo-{slug}", env, answer.hex()),
                       "engine": kids.risk_server(f"risk-{slug}", shipped, env),
                       LOGGED: kids.risk_server(f"risk-{slug}-logged", logged, env)}
            for server in servers.values():
                server.wait_ready()
            yield from self.latency(tag, env, servers, answer)
            for callers, names in ((1, ("echo", "engine")), (16, ("echo", "engine", LOGGED))):
                for name in names:
                    yield self.throughput(tag, env, name, servers[name], callers)
            yield from self.streams(tag, env, servers)
            yield self.submit_orders(tag, env, servers["engine"])
            for server in servers.values():
                server.check_running()
                expect(server.stop() == 0, f"{server.name} did not stop cleanly:\n{server.output()}")

    @staticmethod
    def _slug(tag: str) -> str:
        return "ee-off" if tag == "EE off" else "default"

    def _clients(self, env: dict, specs: list[dict], server=None, on_ready: Callable[[], None] | None = None
                 ) -> tuple[list[dict], list[dict], float | None]:
        """Run the clients of ``specs`` together; also return ``server``'s CPU seconds while they ran."""
        cpu: list[float] = []

        def ready() -> None:
            if server is not None:
                cpu.append(server.cpu_seconds())
            if on_ready is not None:
                on_ready()

        readies, results = run_clients(self.directory, specs, env, self.scale.client_timeout, ready)
        return readies, results, None if server is None else server.cpu_seconds() - cpu[0]

    def latency(self, tag: str, env: dict, servers: dict, answer: bytes) -> Iterator[Row]:
        s = self.scale
        engines = {name: server for name, server in servers.items() if name != "echo"}
        before: dict[str, str] = {}

        def scrape_before() -> None:
            for name, server in engines.items():
                before[name] = server.metrics_text()

        spec = {"case": "unary_latency", "name": f"latency-{self._slug(tag)}", "calls": s.latency_calls,
                "chunk": s.chunk, "warmup": s.warmup,
                "targets": [{"name": name, "target": server.target} for name, server in servers.items()]}
        readies, results, _ = self._clients(env, [spec], on_ready=scrape_before)
        ready, result = readies[0], results[0]
        expect(ready["grpc_experiments"] == (LEGACY_IO_EXPERIMENTS if tag == "EE off" else ""),
               f"client saw GRPC_EXPERIMENTS={ready['grpc_experiments']!r}")
        for name, hexed in ready["answers"].items():
            expect(bytes.fromhex(hexed) == answer, f"{name} answered {hexed}, not the engine's {answer.hex()}")
        rows = {}
        for name in servers:
            samples = np.load(result["samples"][name])
            note = (f"sync stub, one call at a time; the servers take turns, {s.chunk:,} calls each"
                    if name == "echo" else "")
            row = self.timing.row(f"{tag}: CheckPosition unary, {name}", samples, result["elapsed_ns"][name],
                                  note=note)
            self.medians[(tag, name)] = row.median_ns
            rows[name] = row
            yield row
        for name in engines:
            ratio = rows[name].median_ns / rows["echo"].median_ns
            extra = rows[name].median_ns - rows["echo"].median_ns
            yield Row(f"{tag}: p50 {name} / echo", value=ratio, value_text=f"{ratio:.2f}x",
                      targets=[ECHO_RATIO_TARGET], note=f"the engine adds {extra / US:+.0f} µs at the median")
        for name, server in engines.items():
            after = server.metrics_text()
            check = (scrape_histogram(after, "riskcore_check_duration_seconds")
                     - scrape_histogram(before[name], "riskcore_check_duration_seconds"))
            expect(check.total == s.latency_calls, f"{name}: {check.total} checks observed, {s.latency_calls} sent")
            yield histogram_row(f"{tag}: server-side check time, {name}", check, SERVER_CHECK_TARGETS,
                                note="; riskcore_check_duration_seconds: engine.check as the service times it")
            handler = (scrape_histogram(after, "riskcore_grpc_request_duration_seconds", method="CheckPosition")
                       - scrape_histogram(before[name], "riskcore_grpc_request_duration_seconds",
                                          method="CheckPosition"))
            dropped = Metrics(after).value("riskcore_log_lines_dropped_total")
            yield histogram_row(f"{tag}: server-side CheckPosition handler, {name}", handler,
                                note="; riskcore_grpc_request_duration_seconds: the Python handler from call "
                                     "handling to response (a logged call's access line is then queued for "
                                     "the log writer's thread, which renders and writes it)"
                                     + f"; {dropped:,.0f} log lines dropped")

    def throughput(self, tag: str, env: dict, name: str, server, callers: int) -> Row:
        s = self.scale
        short = name.replace(", requests=all", "-logged")
        spec = {"case": "unary_throughput", "name": f"tput-{callers}-{short}-{self._slug(tag)}",
                "target": server.target, "callers": callers, "seconds": s.seconds, "warmup": s.warmup // 4}
        _, results, server_cpu = self._clients(env, [spec], server)
        result = results[0]
        who = "caller" if callers == 1 else "callers"
        return self.timing.row(f"{tag}: CheckPosition, {callers} {who}, {name}", np.load(result["samples"]),
                               result["end_ns"] - result["start_ns"], result["calls"],
                               note=(f"grpc.aio, {callers} task(s) on one channel for {s.seconds:g} s, "
                                     f"percentiles per call under that load; "
                                     + cpu_note(server_cpu, results, result["calls"])))

    def streams(self, tag: str, env: dict, servers: dict) -> Iterator[Row]:
        s = self.scale
        server = servers["engine"]
        medians = {}
        for name in ("echo", "engine"):
            spec = {"case": "stream_pingpong", "name": f"pingpong-{name}-{self._slug(tag)}",
                    "target": servers[name].target, "messages": s.pingpong, "warmup": s.warmup // 4}
            _, results, server_cpu = self._clients(env, [spec], servers[name])
            result = results[0]
            row = self.timing.row(f"{tag}: SubmitStream ping-pong, {name}", np.load(result["samples"]),
                                  result["end_ns"] - result["start_ns"], result["calls"], unit="msgs/s",
                                  targets=PINGPONG_TARGETS if name == "engine" else [],
                                  note=("grpc.aio; write one order, read its answer; "
                                        + ("accepted 1-share orders; " if name == "engine" else "answered unchecked; ")
                                        + cpu_note(server_cpu, results, result["calls"], "message")))
            medians[name] = row.median_ns
            yield row
        ratio = medians["engine"] / medians["echo"]
        yield Row(f"{tag}: SubmitStream ping-pong p50 engine / echo", value=ratio, value_text=f"{ratio:.2f}x",
                  note=f"the engine adds {(medians['engine'] - medians['echo']) / US:+.0f} µs per message at the "
                       "median (the two run one after the other)")
        spec = {"case": "stream_pipelined", "name": f"pipelined-{self._slug(tag)}", "target": server.target,
                "messages": s.pipelined, "warmup": s.warmup // 4}
        _, results, server_cpu = self._clients(env, [spec], server)
        result = results[0]
        elapsed = result["end_ns"] - result["start_ns"]
        yield Row(f"{tag}: SubmitStream pipelined", samples=result["calls"],
                  throughput=result["calls"] / (elapsed / 1e9), unit="msgs/s",
                  note=(f"{result['calls']:,} orders written without waiting, answers read by a second task; "
                        + cpu_note(server_cpu, results, result["calls"], "message")))

    def submit_orders(self, tag: str, env: dict, server) -> Row:
        s = self.scale
        spec = {"case": "submit_orders", "name": f"batches-{self._slug(tag)}", "target": server.target,
                "batch": s.batch, "batches": s.submit_batches, "warmup": 2}
        readies, results, server_cpu = self._clients(env, [spec], server)
        result = results[0]
        samples = np.load(result["samples"])
        return Row(f"{tag}: SubmitOrders, {s.batch // 1000}k-order batches", samples=len(samples),
                   median_ns=float(np.median(samples)),
                   throughput=result["orders"] / ((result["end_ns"] - result["start_ns"]) / 1e9), unit="orders/s",
                   targets=SUBMIT_ORDERS_TARGETS,
                   note=(f"{len(samples)} batches one after the other, sync stub, median per batch, "
                         f"{readies[0]['request_bytes'] / 1e3:,.0f} kB per request; "
                         + cpu_note(server_cpu, results, len(samples), "batch")))

    def compare(self) -> Iterator[Row]:
        for name in ("echo", "engine", LOGGED):
            on, off = self.medians.get(("defaults", name)), self.medians.get(("EE off", name))
            if on is None or off is None:
                continue
            ratio = off / on
            yield Row(f"CheckPosition p50 EE off / defaults, {name}", value=ratio,
                      value_text=f"{ratio:.2f}x ({(1 - ratio):+.0%})",
                      note=f"EE off = GRPC_EXPERIMENTS={LEGACY_IO_EXPERIMENTS} in servers and clients"
                      if name == "echo" else "")
