"""``riskcore serve <service>``: one runner for every service.

A service registers a :class:`ServiceEntry` (its package, whose ``config``
module loads its configuration and whose ``server`` module holds its server
class; its own options); the runner parses the shared
options, applies the overrides, configures logging, runs the server until
SIGTERM or SIGINT, and turns start-up failures into one line on stderr and
exit code 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import sys
from typing import Any, Callable, Coroutine



@dataclasses.dataclass(frozen=True)
class ServiceEntry:
    """What the runner needs to know of a service."""

    name: str                                   # riskcore serve <name>
    help: str                                   # one line for riskcore --help
    package: str                                # holds sample.toml, config.py's load_config and server.py
    server: str                                 # the server class in the package's server.py
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    # The server's keyword arguments taken from the service's own options.
    server_options: Callable[[argparse.Namespace], dict[str, Any]] = lambda args: {}
    # The errors of state that cannot be opened or recovered (a function: nothing may import grpc
    # before the runner has chosen its I/O).
    start_errors: Callable[[], tuple[type[BaseException], ...]] = tuple

    def load_config(self, path: Any) -> Any:
        """The service's configuration from ``path`` (its shipped sample when None), by its ``config.load_config``
        (imported now: the runner chooses grpc's I/O before any service module is imported)."""
        return importlib.import_module(f"{self.package}.config").load_config(path)

    def build(self, config: Any, args: argparse.Namespace) -> Any:
        """The service's server on ``config`` (its module imported now, as for :meth:`load_config`)."""
        server = getattr(importlib.import_module(f"{self.package}.server"), self.server)
        return server(config, **self.server_options(args))


def add_options(parser: argparse.ArgumentParser, entry: ServiceEntry, port: int, http_port: int) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help=f"TOML configuration; the shipped sample when omitted (`riskcore config sample "
                             f"{entry.name}` prints it); relative paths in it are relative to its folder")
    parser.add_argument("--host", help="gRPC bind address (default from the config: 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"gRPC port (default from the config: {port}; 0 picks a free port)")
    parser.add_argument("--http-host", help="HTTP ops bind address (default from the config: 127.0.0.1)")
    parser.add_argument("--http-port", type=int,
                        help=f"HTTP port for /health, /ready, /metrics (default from the config: {http_port})")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="log level (default from the config: info)")
    entry.add_options(parser)


def serve(entry: ServiceEntry, args: argparse.Namespace) -> int:
    """Run ``entry``'s server until a signal; 0 after a clean stop, 2 when it cannot start."""
    from riskcore_services.common.grpc_io import prefer_legacy_io

    prefer_legacy_io()  # first: nothing below may import grpc before it
    from riskcore_services.common.config import ConfigError
    from riskcore_services.common.errors import PortInUse
    from riskcore_services.common.logging import configure_logging

    start_errors = entry.start_errors()

    try:
        config = entry.load_config(args.config)
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("http_host", args.http_host),
                                       ("http_port", args.http_port)) if v is not None}
        if overrides:
            config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
        configure_logging(args.log_level or config.log_level)
        server = entry.build(config, args)
    except (ConfigError, ValueError) as error:
        print(f"riskcore: configuration error: {error}", file=sys.stderr)
        return 2
    except start_errors as error:
        print(f"riskcore: cannot open the {entry.name} service's state: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 2
    runner: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # optional: the standard loop works, a little slower
        runner = asyncio.run
    try:
        runner(server.run_until_signal())
    except PortInUse as error:
        print(f"riskcore: {error}", file=sys.stderr)
        return 2
    except start_errors as error:
        print(f"riskcore: cannot recover the {entry.name} service's state: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 2
    return 0
