"""``riskcore strategy ...``: register, start, stop, pause, resume, reset, list and watch strategies.

Each command is one call to the control plane (``--target``, default
127.0.0.1:50052) with a bearer token read from ``--token-file`` when the
control plane has ``[[auth.tokens]]``. Answers print as aligned columns; a
refusal prints its status and the control plane's words (``FAILED_PRECONDITION:
strategy 'x' is FAULTED: cannot start``) on stderr and exits 1; bad arguments
exit 2. Nothing here imports grpc until a command runs: ``riskcore serve`` must set
grpcio's I/O options before grpc is loaded.
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
from typing import TYPE_CHECKING, Any, Sequence

from riskcore_services.proto import control_pb2

if TYPE_CHECKING:
    from riskcore_services.control.client import ControlClient

DEFAULT_TARGET = "127.0.0.1:50052"
# The calls on one strategy by name, as the commands spell them.
LIFECYCLE_CALLS = {"start": "Start", "stop": "Stop", "pause": "Pause", "resume": "Resume", "restart": "Restart",
                   "reset": "Reset"}
COLUMNS = ("NAME", "STATE", "ACCOUNT", "PID", "UPTIME", "RESTARTS", "HEARTBEAT", "LAST ERROR")


def state_name(state: int) -> str:
    return control_pb2.StrategyState.Name(state).removeprefix("STRATEGY_STATE_")


def _seconds(value: float, shown: bool) -> str:
    return f"{value:.1f}s" if shown else "-"


def strategy_row(s: control_pb2.Strategy) -> tuple[str, ...]:
    return (s.name, state_name(s.state), s.account, str(s.pid) if s.pid else "-", _seconds(s.uptime_seconds, s.pid > 0),
            str(s.restarts), _seconds(s.heartbeat_age_seconds, s.pid > 0), s.last_error or "-")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` under ``header`` in columns as wide as their widest cell (the last one left ragged)."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in (header, *rows))


def event_line(event: control_pb2.LifecycleEvent) -> str:
    when = datetime.datetime.fromtimestamp(event.time, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    pid = f" pid {event.pid}" if event.pid else ""
    return (f"{when}  {event.strategy}  {state_name(event.previous)} -> {state_name(event.state)}{pid}  "
            f"{event.reason}")


class _Refused(Exception):
    """A command refused before or instead of its call; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _client(args: argparse.Namespace) -> "ControlClient":
    from riskcore_services.control.client import ControlClient

    token = None
    if args.token_file is not None:
        try:
            token = pathlib.Path(args.token_file).read_text().strip()
        except OSError as error:
            raise _Refused(f"--token-file: cannot read {args.token_file!r}: {error.strerror}", 2) from None
    return ControlClient(args.target, token=token, deadline=args.timeout)


def _print_strategies(strategies: Sequence[control_pb2.Strategy]) -> None:
    print(table(COLUMNS, [strategy_row(s) for s in strategies]))


def _register(client: "ControlClient", args: argparse.Namespace) -> None:
    try:
        config = json.loads(args.config)
    except ValueError as error:
        raise _Refused(f"--config: not JSON ({error})", 2) from None
    if not isinstance(config, dict):
        raise _Refused(f"--config: expected a JSON object, got {type(config).__name__}", 2)
    _print_strategies([client.register(args.name, args.entry, args.account, config)])


def _lifecycle(client: "ControlClient", args: argparse.Namespace) -> None:
    _print_strategies([client.lifecycle(LIFECYCLE_CALLS[args.strategy_command], args.name)])


def _remove(client: "ControlClient", args: argparse.Namespace) -> None:
    client.remove(args.name)
    print(f"removed {args.name}")


def _list(client: "ControlClient", args: argparse.Namespace) -> None:
    strategies = client.strategies()
    if strategies:
        _print_strategies(strategies)
    else:
        print("no strategies registered")


def _kill_switch(client: "ControlClient", args: argparse.Namespace) -> None:
    stopped = client.kill_switch(args.reason)
    print(f"firm halted; strategies stopped: {', '.join(stopped) or 'none'}")


def _watch(client: "ControlClient", args: argparse.Namespace) -> None:
    events = client.watch()
    events.initial_metadata()           # the control plane sends it once it has subscribed us
    print(f"watching {args.target} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        for seen, event in enumerate(events, 1):
            print(event_line(event), flush=True)
            if seen == args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        events.cancel()


def _run(args: argparse.Namespace) -> int:
    """One command: its answer on stdout, or its refusal on stderr with exit status 1 (2: bad arguments)."""
    import grpc

    from riskcore_services.common.client import ServiceUnavailable

    command = f"riskcore strategy {args.strategy_command}"
    try:
        with _client(args) as client:
            args.call(client, args)
    except _Refused as refused:
        print(f"{command}: {refused}", file=sys.stderr)
        return refused.code
    except ServiceUnavailable as error:
        print(f"{command}: control plane unreachable at {args.target}: {error}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(f"{command}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


def add_strategy_commands(commands: Any) -> None:
    """Add the ``strategy`` command group to the ``riskcore`` parser."""
    group = commands.add_parser("strategy", help="operate the control plane's strategies (register, start, stop, "
                                                 "list, watch, ...)",
                                description="Talk to a running control plane (riskcore serve control).")
    sub = group.add_subparsers(dest="strategy_command", required=True)

    def command(name: str, call: Any, help: str, named: bool = True) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        parser.add_argument("--target", default=DEFAULT_TARGET, metavar="HOST:PORT",
                            help=f"the control plane (default {DEFAULT_TARGET})")
        parser.add_argument("--token-file", metavar="PATH",
                            help="a file holding the bearer token, when the control plane has [[auth.tokens]]")
        parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                            help="deadline of the call (default 30; a stop waits up to the plane's stop_grace)")
        if named:
            parser.add_argument("name", help="the strategy's name")
        parser.set_defaults(handler=_run, call=call)
        return parser

    register = command("register", _register, "register a strategy (it starts in REGISTERED)")
    register.add_argument("entry", help="its entry point, package.module:Class (a riskcore_services.control.sdk."
                                        "Strategy)")
    register.add_argument("--account", required=True, help="its risk account")
    register.add_argument("--config", default="{}", metavar="JSON", help="its configuration, a JSON object")
    for name, help in (("start", "start a strategy (its account is made ACTIVE first)"),
                       ("stop", "stop a strategy: SIGTERM, grace, SIGKILL; its account HALTED"),
                       ("pause", "pause a strategy (its account REDUCING or HALTED, by the plane's pause_mode)"),
                       ("resume", "resume a paused strategy"),
                       ("restart", "stop a strategy if it runs, then start it"),
                       ("reset", "close a FAULTED strategy's breaker (it becomes STOPPED)")):
        command(name, _lifecycle, help)
    command("remove", _remove, "forget a REGISTERED, STOPPED or FAULTED strategy")
    command("list", _list, "list the strategies: state, pid, uptime, restarts, heartbeat age, last error",
            named=False)
    kill = command("kill-switch", _kill_switch, "halt the firm in the risk engine and stop every strategy",
                   named=False)
    kill.add_argument("--reason", default="kill switch (riskcore strategy)", help="recorded with the stops")
    watch = command("watch", _watch, "print lifecycle events as they happen, until Ctrl-C", named=False)
    watch.add_argument("--count", type=int, default=0, metavar="N", help="exit after N events (0: never)")
