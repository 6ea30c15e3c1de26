"""The control plane's configuration: the shared sections and ``[control]``.

Declared once, on the frozen dataclasses the service reads (the file's tables
are derived from them, so every error names its key path). ``sample.toml`` is
a complete example; see the README's "The control plane" section.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, TypeAlias

import msgspec
from msgspec import Meta

from riskcore_services.common.config import (
    Common, CommonFile, ConfigError, ServerConfig, build, decode, read_toml, schema, service_config,
)
from riskcore_services.control.lifecycle import BackoffPolicy
from riskcore_services.control.supervisor import StrategySpec, Timings

__all__ = ["ConfigError", "ControlConfig", "StrategyEntry", "load_config", "parse_config"]

GRPC_PORT = 50052
HTTP_PORT = 8082

Address = Annotated[str, Meta(pattern=r"^[^\s:]+:\d{1,5}$", max_length=256)]
Positive = Annotated[float, Meta(gt=0, le=86_400)]


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    """``[[control.strategies]]``: a strategy registered at start-up (and started when ``start``)."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]
    entry: Annotated[str, Meta(pattern=r"^[\w.]+:[\w.]+$")]
    account: Annotated[str, Meta(min_length=1, max_length=64)]
    config: dict[str, Any] = field(default_factory=dict)
    start: bool = False

    def spec(self) -> StrategySpec:
        return StrategySpec(self.name, self.entry, self.account, self.config)


@dataclass(frozen=True, slots=True)
class ControlConfig(Common):
    """Everything the control plane needs: the shared sections and ``[control]``."""

    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=GRPC_PORT, http_port=HTTP_PORT))
    service_name: str = "riskcore-control"
    risk_target: Address = "127.0.0.1:50051"   # the risk engine; required (fail closed)
    risk_token_file: Optional[pathlib.Path] = None   # an admin bearer token for SetTradingState
    # account -> a file holding the risk engine's trader token scoped to that account, for its strategies
    account_tokens: dict[str, pathlib.Path] = field(default_factory=dict)
    risk_deadline: Annotated[float, Meta(gt=0, le=60)] = 1.0
    market_data_target: Optional[Address] = None   # the market data service, for strategies with symbols
    firm: Annotated[str, Meta(min_length=1, max_length=64)] = "FIRM"   # the account the kill switch halts
    pause_mode: Literal["REDUCING", "HALTED"] = "REDUCING"
    heartbeat_interval: Positive = 0.5
    heartbeat_timeout: Positive = 5.0
    start_timeout: Positive = 30.0
    stop_grace: Annotated[float, Meta(ge=0, le=3600)] = 10.0
    backoff_initial: Positive = 0.5
    backoff_factor: Annotated[float, Meta(ge=1, le=100)] = 2.0
    backoff_max: Positive = 60.0
    backoff_jitter: Annotated[float, Meta(ge=0, lt=1)] = 0.2
    breaker_failures: Annotated[int, Meta(ge=1, le=1000)] = 5
    breaker_window: Positive = 300.0
    strategies: tuple[StrategyEntry, ...] = ()

    def __post_init__(self) -> None:
        try:
            self.timings()
        except ValueError:
            raise ConfigError("control.heartbeat_interval: must be less than control.heartbeat_timeout") from None
        try:
            self.policy()
        except ValueError:
            raise ConfigError("control.backoff_max: must be at least control.backoff_initial") from None
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            raise ConfigError(f"control.strategies: names must be unique, got {names}")
        if self.state.backend != "sqlite":
            raise ConfigError("state.backend: the control plane journals in SQLite only (the processes it "
                              "re-adopts after a restart are on this host)")
        if self.account_tokens:
            for entry in self.strategies:
                if entry.account not in self.account_tokens:
                    raise ConfigError(f"control.strategies: {entry.name!r} trades account {entry.account!r}, "
                                      f"which has no token in control.account_tokens")

    def timings(self) -> Timings:
        return Timings(self.heartbeat_interval, self.heartbeat_timeout, self.stop_grace, self.start_timeout)

    def policy(self) -> BackoffPolicy:
        return BackoffPolicy(self.backoff_initial, self.backoff_factor, self.backoff_max, self.backoff_jitter,
                             self.breaker_failures, self.breaker_window)


_CONTROL_KEYS = ("risk_target", "risk_token_file", "account_tokens", "risk_deadline", "market_data_target", "firm",
                 "pause_mode", "heartbeat_interval", "heartbeat_timeout", "start_timeout", "stop_grace",
                 "backoff_initial", "backoff_factor", "backoff_max", "backoff_jitter", "breaker_failures",
                 "breaker_window", "strategies")

if TYPE_CHECKING:
    from riskcore_services.common.config import Table

    StrategyTable: TypeAlias = Table
    ControlTable: TypeAlias = Table
else:
    StrategyTable = schema(StrategyEntry, "StrategyTable")
    ControlTable = schema(ControlConfig, "ControlTable", {key: key for key in _CONTROL_KEYS},
                          risk_token_file=Optional[str], account_tokens=dict[str, str],
                          strategies=tuple[StrategyTable, ...])


class ConfigFile(CommonFile, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole file: the shared tables and ``[control]``."""

    control: ControlTable = msgspec.field(default_factory=ControlTable)


def parse_config(data: dict, base: pathlib.Path) -> ControlConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    file = decode(data, ConfigFile)
    table = file.control
    values = {key: getattr(table, key) for key in _CONTROL_KEYS}
    values.update(strategies=tuple(build(StrategyEntry, s) for s in table.strategies),
                  risk_token_file=None if table.risk_token_file is None else base / table.risk_token_file,
                  account_tokens={account: base / path for account, path in table.account_tokens.items()})
    return service_config(ControlConfig, file, data, base, values, port=GRPC_PORT, http_port=HTTP_PORT)


def load_config(path: str | pathlib.Path | None = None) -> ControlConfig:
    """Load a TOML configuration file, or the shipped sample when ``path`` is None."""
    return parse_config(*read_toml(path, "riskcore_services.control"))
