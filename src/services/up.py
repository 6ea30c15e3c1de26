"""``riskcore up``: the whole stack on one machine, on embedded defaults, until Ctrl-C or SIGTERM.

Every service of :data:`riskcore_services.cli.SERVICES` runs as a child
process (``riskcore serve <name>``) on its own ports, in dependency order
(the risk engine first: the control plane and ingestion call it; then any
other registered service, such as the monitor, which subscribes to them
all), each waited for on ``/ready`` before the next starts. Ingestion replays
a day the simulator writes into the state folder on its first start, named
with symbols the risk engine's sample configuration knows, paced and looping
so marks keep reaching the engine. The example strategy is then registered
and started through the control plane.

Shutdown runs the other way: the strategy is stopped through the control
plane, then each service gets SIGTERM, its grace, then SIGKILL. The children
run in process groups of their own, so a Ctrl-C at the terminal reaches this
process only and the order holds. A service that cannot start (a port taken,
say) stops everything already started and exits non-zero, naming it.
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import importlib.resources
import io
import json
import os
import pathlib
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from riskcore_services.common.children import HOST, START_TIMEOUT, ChildProcess, Endpoints

if TYPE_CHECKING:
    from riskcore_services.common.runner import ServiceEntry

# Services the others depend on start first, in this order; every other registered service follows.
DEPENDENCY_ORDER = ("risk", "control", "ingest")
# A service stopping gets its in-flight calls' grace (10 s in the shipped samples) and this much more.
STOP_TIMEOUT = 15.0
RISK_DEFAULT_PORT = 50051
PR_SET_PDEATHSIG = 1          # <linux/prctl.h>

STRATEGY_NAME = "watcher"
STRATEGY_ENTRY = "riskcore_services.control.example:PositionWatcher"
STRATEGY_ACCOUNT = "momentum"
STRATEGY_CONFIG = {"symbol": "AAPL", "quantity": 100, "interval": 1.0}

# The replayed day: the equities of the risk engine's sample configuration (whole cents, like the simulator's
# prices), at 1000x recorded time (the 16-hour day in about a minute), over and over.
FEED_NAMES = ("AAPL", "MSFT", "SPY")
FEED_SPEED = 1000.0
FEED_MESSAGES = 100_000

# The README's first snippet ("Calling the risk engine"), pointed at this stack's risk engine.
SNIPPET = """\
import grpc
from riskcore_services.proto import risk_pb2, risk_pb2_grpc

channel = grpc.insecure_channel('localhost:{port}')
risk_client = risk_pb2_grpc.RiskEngineStub(channel)
response = risk_client.CheckPosition(risk_pb2.PositionRequest(symbol="AAPL", quantity=1000, side="BUY"))
print(response.accepted, response.reason, response.message)"""


class StartError(RuntimeError):
    """A service or the strategy did not start; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Ports:
    grpc: int
    http: int


def plan_ports(services: dict[str, tuple[ServiceEntry, int, int]], base: int | None, grpc: dict[str, int],
               http: dict[str, int]) -> dict[str, Ports]:
    """Each service's ports: its defaults, shifted by ``base - 50051`` when given, unless named in
    ``grpc`` or ``http``; ValueError for a port out of range or one two services would share."""
    shift = 0 if base is None else base - RISK_DEFAULT_PORT
    plan = {name: Ports(grpc.get(name, port + shift), http.get(name, http_port + shift))
            for name, (_, port, http_port) in services.items()}
    for name, ports in plan.items():
        for port in (ports.grpc, ports.http):
            if not 1 <= port <= 65535:
                raise ValueError(f"{name}: port {port} is outside 1..65535 (the stack must know its ports, so "
                                 f"not 0; check --base-port)")
    owners: dict[int, str] = {}
    for name, ports in plan.items():
        for port in (ports.grpc, ports.http):
            if port in owners:
                raise ValueError(f"{owners[port]} and {name} would share port {port}")
            owners[port] = name
    return plan


def start_order(names: Sequence[str]) -> list[str]:
    """``names`` with the services others depend on first (:data:`DEPENDENCY_ORDER`), the rest as registered."""
    return [n for n in DEPENDENCY_ORDER if n in names] + [n for n in names if n not in DEPENDENCY_ORDER]


# The configuration files the stack writes for services whose shipped sample does not fit it (another
# service's port, another service's file); every other service runs on its shipped sample, on the stack's ports.
def _control_config(ports: dict[str, Ports]) -> str:
    return f'[control]\nrisk_target = "{HOST}:{ports["risk"].grpc}"\n'


def _ingest_config(ports: dict[str, Ports]) -> str:
    names = ", ".join(f'"{name}"' for name in FEED_NAMES)
    return (f'[ingest]\nrisk_target = "{HOST}:{ports["risk"].grpc}"\n'
            f'[ingest.replay]\nfile = "sample-day.itch"\nspeed = {FEED_SPEED}\nloop = true\n'
            f'[ingest.replay.generate]\nmessages = {FEED_MESSAGES}\nsymbols = {len(FEED_NAMES)}\nseed = 1\n'
            f'names = [{names}]\n')


def _sample(service: str) -> str:
    return importlib.resources.files(f"riskcore_services.{service}").joinpath("sample.toml").read_text()


def _risk_config(ports: dict[str, Ports]) -> str | None:
    """The shipped sample, evaluating the monitor's rules about its events itself when the stack has a monitor."""
    if "monitor" not in ports:
        return None
    return _sample("risk") + '\n[alerts]\nrules_file = "monitor.toml"\n'


def _monitor_config(ports: dict[str, Ports]) -> str:
    """The monitor's shipped sample (its rules) with its sources on the stack's ports."""
    from riskcore_services.cli import SERVICES

    text = _sample("monitor")
    for name in DEPENDENCY_ORDER:
        default = f'target = "{HOST}:{SERVICES[name][1]}"'
        if default not in text:
            raise RuntimeError(f"the monitor's sample has no source {default}")
        text = text.replace(default, f'target = "{HOST}:{ports[name].grpc}"')
    return text


CONFIGS: dict[str, Callable[[dict[str, Ports]], str | None]] = {
    "risk": _risk_config, "control": _control_config, "ingest": _ingest_config, "monitor": _monitor_config}


def _stop_with_parent(parent: int) -> None:
    """In a service's process before it runs: SIGTERM when ``riskcore up`` dies, even by SIGKILL, so a killed
    stack leaves no service holding its ports (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:   # it died before the call above: nothing will send the signal now
        os.kill(os.getpid(), signal.SIGTERM)


class StackService(Endpoints, ChildProcess):
    """One service of the stack: ``riskcore serve <name>`` in the state folder, in a process group of its own."""

    def __init__(self, name: str, ports: Ports, state_dir: pathlib.Path, config: str | None):
        Endpoints.__init__(self)
        self.port, self.http_port = ports.grpc, ports.http
        argv = [sys.executable, "-m", "riskcore_services.cli", "serve", name,
                "--port", str(ports.grpc), "--http-port", str(ports.http)]
        if config is not None:
            path = state_dir / f"{name}.toml"
            path.write_text(config)
            argv += ["--config", str(path)]
        # process_group=0: the terminal's Ctrl-C reaches `riskcore up` only, which stops the stack in order.
        ChildProcess.__init__(self, name, argv, state_dir, process_group=0,
                              preexec_fn=functools.partial(_stop_with_parent, os.getpid()))

    def why_exited(self) -> str:
        """The exit status, the last line the service wrote (its one-line start error), and where its log is."""
        lines = [line for line in self.output().splitlines() if line.strip()]
        last = lines[-1] if lines else "(no output)"
        hint = (f"; riskcore up moves it with --{self.name}-port, --{self.name}-http-port or --base-port"
                if "in use" in last else "")
        return f"exited with {self.process.returncode}: {last}{hint} (log: {self.log_path})"


class Stack:
    """The services of a stack, started in order and stopped in reverse, and the example strategy."""

    def __init__(self, state_dir: pathlib.Path, ports: dict[str, Ports], strategy: bool):
        self.state_dir = state_dir
        self.services = [StackService(name, ports[name], state_dir,
                                      CONFIGS[name](ports) if name in CONFIGS else None)
                         for name in start_order(list(ports))]
        self.strategy = strategy
        self.strategy_pid = 0
        self.stopping = threading.Event()

    def service(self, name: str) -> StackService:
        return next(s for s in self.services if s.name == name)

    def start(self) -> None:
        """Start every service in order, each once ready, then the strategy; StartError on the first failure."""
        for service in self.services:
            service.start()
            self._wait_ready(service)
        if self.strategy and not self.stopping.is_set():
            self._start_strategy()

    def _wait_ready(self, service: StackService) -> None:
        end = time.monotonic() + START_TIMEOUT
        while not self.stopping.is_set():
            if not service.running():
                raise StartError(f"{service.name} did not start: {service.why_exited()}")
            if service.ready_status() == 200:
                return
            if time.monotonic() > end:
                raise StartError(f"{service.name} not ready after {START_TIMEOUT:.0f} s (log: {service.log_path})")
            time.sleep(0.05)

    def _control(self):
        from riskcore_services.proto import control_pb2_grpc

        return control_pb2_grpc.ControlPlaneStub(self.service("control").channel())

    def _start_strategy(self) -> None:
        import grpc

        from riskcore_services.proto import control_pb2

        control = self._control()
        request = control_pb2.StrategyRequest(name=STRATEGY_NAME)
        try:
            control.RegisterStrategy(control_pb2.RegisterStrategyRequest(
                name=STRATEGY_NAME, entry=STRATEGY_ENTRY, account=STRATEGY_ACCOUNT,
                config_json=json.dumps(STRATEGY_CONFIG)), timeout=5.0)
            strategy = control.Start(request, timeout=5.0)
            end = time.monotonic() + START_TIMEOUT
            while strategy.state != control_pb2.STRATEGY_STATE_RUNNING and not self.stopping.is_set():
                if strategy.state in (control_pb2.STRATEGY_STATE_FAILED, control_pb2.STRATEGY_STATE_FAULTED) \
                        or time.monotonic() > end:
                    state = control_pb2.StrategyState.Name(strategy.state)
                    raise StartError(f"the example strategy {STRATEGY_NAME!r} did not reach RUNNING: {state} "
                                     f"{strategy.last_error} (log: {self.service('control').log_path})")
                time.sleep(0.05)
                strategy = control.GetStrategy(request, timeout=5.0)
        except grpc.RpcError as error:
            raise StartError(f"the control plane refused the example strategy {STRATEGY_NAME!r}: "
                             f"{error.code().name}: {error.details()}") from None
        self.strategy_pid = strategy.pid

    def watch(self) -> str | None:
        """Until a signal: None; or the reason a service exited on its own."""
        while not self.stopping.wait(0.2):
            for service in self.services:
                if not service.running():
                    return f"{service.name} {service.why_exited()}"
        return None

    def stop(self) -> None:
        """Stop the strategy through the control plane, then every started service in reverse order."""
        import grpc

        from riskcore_services.proto import control_pb2

        if self.strategy_pid:
            try:   # answers once the strategy is STOPPED (SIGTERM, its grace, SIGKILL)
                self._control().Stop(control_pb2.StrategyRequest(name=STRATEGY_NAME), timeout=STOP_TIMEOUT)
            except grpc.RpcError as error:   # the control plane stops its strategies as it stops anyway
                print(f"riskcore up: stopping the strategy: {error.code().name}: {error.details()}",
                      file=sys.stderr)
        for service in reversed(self.services):
            service.close_channels()
            service.stop(STOP_TIMEOUT)

    def describe(self, status_options: str) -> str:
        """The table of what runs where, and the snippet to try."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"riskcore stack (state folder {self.state_dir})", title_justify="left")
        for column in ("service", "pid", "gRPC", "HTTP (/health /ready /metrics)", "log"):
            table.add_column(column)
        for service in self.services:
            table.add_row(service.name, str(service.process.pid), service.target,
                          f"http://{HOST}:{service.http_port}", str(service.log_path))
        if self.strategy_pid:
            table.add_row(f"strategy {STRATEGY_NAME}", str(self.strategy_pid), "(via control)", "",
                          str(self.service("control").log_path))
        console = Console(record=True, width=200, force_terminal=False, file=io.StringIO())
        console.print(table)
        snippet = SNIPPET.format(port=self.service("risk").port)
        table_text = "\n".join(line.rstrip() for line in console.export_text().splitlines())
        return (f"{table_text}\n\nTry it (the README's first snippet):\n\n{snippet}\n\n"
                f"Watch it: riskcore status{status_options}\nStop it: Ctrl-C\n")


def run(args: argparse.Namespace, services: dict[str, tuple[ServiceEntry, int, int]]) -> int:
    """Run the stack until SIGINT or SIGTERM: 0 after a clean stop, 1 when a service exits on its own,
    2 when it cannot start."""
    grpc_ports = {name: getattr(args, f"{name}_port") for name in services
                  if getattr(args, f"{name}_port") is not None}
    http_ports = {name: getattr(args, f"{name}_http_port") for name in services
                  if getattr(args, f"{name}_http_port") is not None}
    try:
        ports = plan_ports(services, args.base_port, grpc_ports, http_ports)
    except ValueError as error:
        print(f"riskcore up: {error}", file=sys.stderr)
        return 2
    state_dir = pathlib.Path(args.state_dir).resolve()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"riskcore up: cannot make the state folder {str(state_dir)!r}: {error.strerror}", file=sys.stderr)
        return 2
    try:
        stack = Stack(state_dir, ports, strategy=not args.no_strategy)
    except OSError as error:   # the configuration files it writes there
        print(f"riskcore up: cannot write to the state folder {str(state_dir)!r}: {error.strerror}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stack.stopping.set())
    try:
        try:
            stack.start()
        except StartError as error:
            print(f"riskcore up: {error}; stopping what was started", file=sys.stderr)
            return 2
        if stack.stopping.is_set():
            return 0
        custom = ports != plan_ports(services, None, {}, {})
        options = "".join(f" --{s.name} {s.target}" for s in stack.services) if custom else ""
        print(stack.describe(options), flush=True)
        died = stack.watch()
        if died is not None:
            print(f"riskcore up: {died}; stopping the stack", file=sys.stderr)
            return 1
        print("riskcore up: stopping the stack", flush=True)
        return 0
    finally:
        stack.stop()
