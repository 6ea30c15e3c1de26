"""The ``riskcore`` command: run services and small operator helpers."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import sys

from riskcore import __version__


def _serve_risk(args: argparse.Namespace) -> int:
    from services.common.grpc_io import prefer_legacy_io

    prefer_legacy_io()  # first: nothing below may import grpc before it
    from services.common.logging import configure_logging
    from services.risk.config import ConfigError, load_config
    from services.risk.journal import JournalError
    from services.risk.server import PortInUse, RiskServer

    try:
        config = load_config(args.config)
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("http_host", args.http_host),
                                       ("http_port", args.http_port)) if v is not None}
        if overrides:
            config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
        configure_logging(args.log_level or config.log_level)
        server = RiskServer(config, apply_config=args.apply_config)
    except (ConfigError, ValueError) as error:
        print(f"riskcore: configuration error: {error}", file=sys.stderr)
        return 2
    except JournalError as error:
        print(f"riskcore: cannot open the journal: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:  # optional: the standard loop works, a little slower
        uvloop = None
    runner = asyncio.run if uvloop is None else uvloop.run
    try:
        runner(server.run_until_signal())
    except PortInUse as error:
        print(f"riskcore: {error}", file=sys.stderr)
        return 2
    except JournalError as error:
        print(f"riskcore: cannot recover state: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from services.risk.config import ConfigError, build_engine, load_config

    try:
        engine = build_engine(load_config(args.config))
    except ConfigError as error:
        print(f"invalid: {error}", file=sys.stderr)
        return 2
    print(f"ok: {len(engine.symbols)} instruments, {len(engine.accounts)} accounts")
    return 0


def _token_digest(args: argparse.Namespace) -> int:
    from services.common.auth import token_digest

    token = args.token if args.token is not None else getpass.getpass("token: ")
    print(token_digest(token))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskcore", description="riskcore pre-trade risk services.")
    parser.add_argument("--version", action="version", version=f"riskcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a service")
    services = serve.add_subparsers(dest="service", required=True)
    risk = services.add_parser(
        "risk", help="the firm-wide risk engine (gRPC, default :50051; HTTP ops, default :8080)",
        description="Run the risk engine service until SIGTERM or SIGINT, then shut down gracefully.")
    add_risk_options(risk)
    risk.set_defaults(handler=_serve_risk)

    config = commands.add_parser("check-config", help="validate a configuration file and exit")
    config.add_argument("config", help="path to a riskcore.toml")
    config.set_defaults(handler=_check_config)

    token = commands.add_parser("token-digest", help="print the SHA-256 digest to configure for a bearer token")
    token.add_argument("token", nargs="?", help="the token (prompted for when omitted)")
    token.set_defaults(handler=_token_digest)

    from services.ingest.cli import add_feed_commands

    add_feed_commands(commands)
    return parser


def add_risk_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="TOML configuration (instruments, accounts, limits, server, TLS, auth); "
                             "the shipped sample when omitted")
    parser.add_argument("--host", help="gRPC bind address (default from the config: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port (default from the config: 50051; 0 picks a free port)")
    parser.add_argument("--http-host", help="HTTP ops bind address (default from the config: 127.0.0.1)")
    parser.add_argument("--http-port", type=int,
                        help="HTTP port for /health, /ready, /metrics (default from the config: 8080)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="log level (default from the config: info)")
    parser.add_argument("--apply-config", action="store_true",
                        help="after recovering the journal, journal the file's limits, position limits and "
                             "trading states where they differ from the recovered state (every difference "
                             "is logged at start either way)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
