"""The ``riskcore`` command: run services and small operator helpers."""
from __future__ import annotations

import argparse
import getpass
import importlib.resources
import sys

from riskcore import __version__
from riskcore_services.common.runner import ServiceEntry, add_options, serve
from riskcore_services.control import entry as control_entry
from riskcore_services.ingest import entry as ingest_entry
from riskcore_services.monitor import entry as monitor_entry
from riskcore_services.risk import entry as risk_entry

# Every service `riskcore serve` runs: (entry, default gRPC port, default HTTP port).
SERVICES: dict[str, tuple[ServiceEntry, int, int]] = {
    risk_entry.ENTRY.name: (risk_entry.ENTRY, *risk_entry.PORTS),
    ingest_entry.ENTRY.name: (ingest_entry.ENTRY, *ingest_entry.PORTS),
    control_entry.ENTRY.name: (control_entry.ENTRY, *control_entry.PORTS),
    monitor_entry.ENTRY.name: (monitor_entry.ENTRY, *monitor_entry.PORTS),
}


def _check_config(args: argparse.Namespace) -> int:
    from riskcore_services.risk.config import ConfigError, build_engine, load_config

    try:
        engine = build_engine(load_config(args.config))
    except ConfigError as error:
        print(f"invalid: {error}", file=sys.stderr)
        return 2
    print(f"ok: {len(engine.symbols)} instruments, {len(engine.accounts)} accounts")
    return 0


def _config_sample(args: argparse.Namespace) -> int:
    entry = SERVICES[args.service][0]
    sys.stdout.write(importlib.resources.files(entry.package).joinpath("sample.toml").read_text())
    return 0


def _token_digest(args: argparse.Namespace) -> int:
    from riskcore_services.common.auth import token_digest

    token = args.token if args.token is not None else getpass.getpass("token: ")
    print(token_digest(token))
    return 0


def _up(args: argparse.Namespace) -> int:
    from riskcore_services import up

    return up.run(args, SERVICES)


def _status(args: argparse.Namespace) -> int:
    from riskcore_services import status

    return status.run(args)


def _add_up(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="run the whole stack here until Ctrl-C: " + ", ".join(SERVICES)
                             + ", a replayed sample feed and the example strategy",
                             description="Start every service as a child process on its ports, in dependency "
                                         "order, each once ready; replay a generated sample feed into the risk "
                                         "engine; register and start the example strategy; print what runs "
                                         "where. Ctrl-C or SIGTERM stops it all in reverse order.")
    up.add_argument("--state-dir", default="riskcore-state", metavar="PATH",
                    help="journals, configuration files, the sample feed and the logs (default ./riskcore-state)")
    up.add_argument("--base-port", type=int, metavar="PORT",
                    help="shift every default port by PORT - 50051 (--base-port 60051: risk on 60051 and "
                         "18080, ...), for a second stack beside the first")
    for name, (_, port, http_port) in SERVICES.items():
        up.add_argument(f"--{name}-port", type=int, metavar="PORT", help=f"{name} gRPC port (default {port})")
        up.add_argument(f"--{name}-http-port", type=int, metavar="PORT",
                        help=f"{name} HTTP port (default {http_port})")
    up.add_argument("--no-strategy", action="store_true", help="do not start the example strategy")
    up.set_defaults(handler=_up)


def _add_status(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser("status", help="a live view of positions, strategies, feed and alerts",
                                 description="A live terminal view of a running stack: exposure and positions "
                                             "per account, trading states, strategies, the feed and the "
                                             "alerts firing, read every second; a service that does not "
                                             "answer shows as down.")
    status.add_argument("--once", action="store_true",
                        help="print one view (the feed's rate measured over one interval) and exit")
    status.add_argument("--interval", type=_seconds, default=1.0, metavar="SECONDS",
                        help="seconds between readings (default 1)")
    targets = {name: port for name, (_, port, _) in SERVICES.items()}
    for name in ("risk", "control", "ingest", "monitor"):
        target = f"127.0.0.1:{targets[name]}"
        status.add_argument(f"--{name}", default=target, metavar="HOST:PORT",
                            help=f"the {name} service's gRPC address (default {target})")
    status.set_defaults(handler=_status)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be in (0, 3600], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskcore", description="riskcore pre-trade risk services.")
    parser.add_argument("--version", action="version", version=f"riskcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    runner = commands.add_parser("serve", help="run a service: " + ", ".join(SERVICES),
                                 description="Run a service until SIGTERM or SIGINT, then shut down gracefully.")
    services = runner.add_subparsers(dest="service", required=True)
    for name, (entry, port, http_port) in SERVICES.items():
        service = services.add_parser(name, help=entry.help, description=f"Run {entry.help} until SIGTERM or "
                                      "SIGINT, then shut down gracefully.")
        add_options(service, entry, port, http_port)
        service.set_defaults(handler=lambda args, entry=entry: serve(entry, args))

    config = commands.add_parser("check-config", help="validate a configuration file and exit")
    config.add_argument("config", help="path to a riskcore.toml")
    config.set_defaults(handler=_check_config)

    sample = commands.add_parser("config", help="configuration helpers")
    helpers = sample.add_subparsers(dest="helper", required=True)
    printing = helpers.add_parser("sample", help="print a service's sample configuration, to start from")
    printing.add_argument("service", nargs="?", default="risk", choices=list(SERVICES))
    printing.set_defaults(handler=_config_sample)

    _add_up(commands)
    _add_status(commands)

    token = commands.add_parser("token-digest", help="print the SHA-256 digest to configure for a bearer token")
    token.add_argument("token", nargs="?", help="the token (prompted for when omitted)")
    token.set_defaults(handler=_token_digest)

    from riskcore_services.control.cli import add_strategy_commands
    from riskcore_services.ingest.cli import add_feed_commands

    add_feed_commands(commands)
    add_strategy_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
