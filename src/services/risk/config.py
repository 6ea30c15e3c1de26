"""The risk service's configuration: a TOML file, validated into frozen dataclasses.

Unknown keys are errors (a typo must not silently drop a limit). See the
README's "Configuration" section for the format; ``sample.toml`` is a
complete example.
"""
from __future__ import annotations

import datetime
import importlib.resources
import math
import pathlib
import tomllib
import zoneinfo
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from riskcore import Instrument, Limits, RiskEngine, TradingState
from services.common.auth import TokenEntry


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grace_seconds: float = 10.0
    drain_seconds: float = 0.5
    max_message_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("port", "http_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"server.{name} must be a port number, got {getattr(self, name)!r}")
        if not (math.isfinite(self.grace_seconds) and self.grace_seconds >= 0):
            raise ConfigError(f"server.grace_seconds must be >= 0, got {self.grace_seconds!r}")


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server certificate and key; with ``client_ca``, clients must present a certificate (mTLS)."""

    cert: pathlib.Path
    key: pathlib.Path
    client_ca: Optional[pathlib.Path] = None

    def __post_init__(self) -> None:
        for name in ("cert", "key", "client_ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"tls.{name}: no such file {str(path)!r}")


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Durable state: the journal (SQLite file or JetStream stream), snapshots, the day roll.

    With ``backend = "sqlite"``, ``path`` None keeps state in memory only (lost
    on restart). With ``backend = "jetstream"`` the journal is the stream of
    engine ``name`` on ``nats_servers``; the engine that holds the lease is the
    primary, the others follow as hot standbys.
    """

    backend: str = "sqlite"
    path: Optional[pathlib.Path] = None
    snapshot_every: int = 200_000
    synchronous: str = "FULL"
    roll_time: Optional[str] = None
    roll_timezone: str = "UTC"
    nats_servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    name: str = "risk"
    replicas: int = 1
    lease_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.backend not in ("sqlite", "jetstream"):
            raise ConfigError(f"state.backend must be sqlite or jetstream, got {self.backend!r}")
        if not (self.replicas >= 1 and self.lease_seconds > 0 and self.name.isidentifier()):
            raise ConfigError("state.replicas must be >= 1, state.lease_seconds > 0, state.name an identifier")
        if self.snapshot_every < 1:
            raise ConfigError(f"state.snapshot_every must be >= 1, got {self.snapshot_every!r}")
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigError(f"state.synchronous must be FULL, NORMAL or EXTRA, got {self.synchronous!r}")
        if self.roll_time is not None:
            roll_clock_time(self.roll_time)
        try:
            zoneinfo.ZoneInfo(self.roll_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"state.roll_timezone: unknown time zone {self.roll_timezone!r}") from None


def roll_clock_time(text: str) -> datetime.time:
    """Parse ``HH:MM`` (24-hour) into a time of day."""
    try:
        return datetime.time.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"state.roll_time must be HH:MM or HH:MM:SS, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class PositionLimitConfig:
    symbol: str
    max_long: Optional[int] = None
    max_short: Optional[int] = None


@dataclass(frozen=True, slots=True)
class AccountConfig:
    name: str
    parent: Optional[str] = None
    limits: Limits = field(default_factory=Limits)
    position_limits: tuple[PositionLimitConfig, ...] = ()
    allowed_symbols: Optional[tuple[str, ...]] = None
    state: TradingState = TradingState.ACTIVE


# Which successful calls get a log line (failed calls always do): every call; calls that change
# state (orders, fills, admin); none.
LOG_REQUESTS = ("all", "changes", "errors")


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Everything the risk service needs to start."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: Optional[TlsConfig] = None
    tokens: tuple[TokenEntry, ...] = ()
    firm: str = "FIRM"
    default_account: str = "default"
    duplicate_window: float = 0.0
    order_capacity: int = 0          # orders the engine's tables are sized for at start (0: grow as needed)
    max_batch_rows: int = 100_000    # rows one batch call may carry (SubmitOrders, ReportFills, UpdatePrices)
    instruments: tuple[Instrument, ...] = ()
    accounts: tuple[AccountConfig, ...] = ()
    log_level: str = "info"
    log_requests: str = "changes"
    tracing_endpoint: Optional[str] = None
    service_name: str = "riskcore-risk"
    profiling: bool = False
    state: StateConfig = field(default_factory=StateConfig)

    def __post_init__(self) -> None:
        names = {self.firm} | {a.name for a in self.accounts}
        if self.default_account and self.default_account not in names:
            raise ConfigError(f"engine.default_account {self.default_account!r} is not a configured account")
        if self.max_batch_rows < 1:
            raise ConfigError(f"engine.max_batch_rows must be >= 1, got {self.max_batch_rows!r}")


def _table(data: Any, where: str, allowed: set[str]) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return data


def _window(value: Any, where: str):
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2):
        raise ConfigError(f"{where} must be [count, seconds]")
    return (value[0], float(value[1]))


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _build(where: str, factory, **kwargs):
    # Name the key of a wrongly typed value before the dataclass trips over it.
    for f in fields(factory):
        expected = _TYPES.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
        value = kwargs.get(f.name)
        if expected and f.name in kwargs and (not isinstance(value, expected)
                                              or (isinstance(value, bool) and bool not in expected)):
            raise ConfigError(f"{where}.{f.name} must be {f.type}, got {value!r}")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


_LIMIT_KEYS = {"max_order_quantity", "max_order_notional", "max_gross_notional", "max_net_notional",
               "max_open_orders", "max_daily_loss", "new_order_rate", "modify_rate", "cancel_rate",
               "fill_throttle"}
_WINDOW_KEYS = {"new_order_rate", "modify_rate", "cancel_rate", "fill_throttle"}


def limits_from_mapping(data: dict, where: str) -> Limits:
    """Build :class:`Limits` from a TOML table (windows as ``[count, seconds]``)."""
    data = _table(data, where, _LIMIT_KEYS)
    kwargs = {k: (_window(v, f"{where}.{k}") if k in _WINDOW_KEYS else v) for k, v in data.items()}
    return _build(where, Limits, **kwargs)


def parse_config(data: dict, base: pathlib.Path) -> RiskConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    _table(data, "config", {"server", "tls", "auth", "engine", "logging", "tracing", "profiling",
                            "state", "instruments", "accounts"})
    server = _build("server", ServerConfig, **_table(data.get("server", {}), "server",
                                                      set(ServerConfig.__dataclass_fields__)))
    tls = None
    if "tls" in data:
        t = _table(data["tls"], "tls", {"cert", "key", "client_ca"})
        tls = _build("tls", TlsConfig, **{k: base / v for k, v in t.items()})
    auth = _table(data.get("auth", {}), "auth", {"tokens"})
    tokens = tuple(_build(f"auth.tokens[{i}]", TokenEntry, **_table(t, f"auth.tokens[{i}]", {"name", "sha256", "role"}))
                   for i, t in enumerate(auth.get("tokens", [])))
    engine = _table(data.get("engine", {}), "engine", {"firm", "default_account", "duplicate_window",
                                                       "order_capacity", "max_batch_rows"})
    logging_ = _table(data.get("logging", {}), "logging", {"level", "requests"})
    if logging_.get("requests", "changes") not in LOG_REQUESTS:
        raise ConfigError(f"logging.requests must be one of {', '.join(LOG_REQUESTS)}, got {logging_['requests']!r}")
    tracing = _table(data.get("tracing", {}), "tracing", {"endpoint", "service_name"})
    profiling = _table(data.get("profiling", {}), "profiling", {"enabled"})
    state = _table(data.get("state", {}), "state", set(StateConfig.__dataclass_fields__))
    if "path" in state:
        state["path"] = base / state["path"]
    if "nats_servers" in state:
        state["nats_servers"] = tuple(state["nats_servers"])
    state = _build("state", StateConfig, **state)
    instruments = tuple(
        _build(f"instruments[{i}]", Instrument,
               **_table(ins, f"instruments[{i}]", set(Instrument.__dataclass_fields__)))
        for i, ins in enumerate(data.get("instruments", [])))
    symbols = [ins.symbol for ins in instruments]
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"instruments: symbol {next(s for s in symbols if symbols.count(s) > 1)!r} is defined twice")
    if logging_.get("level", "info") not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"logging.level must be debug, info, warning or error, got {logging_['level']!r}")
    accounts = []
    for i, acc in enumerate(data.get("accounts", [])):
        where = f"accounts[{i}]"
        acc = _table(acc, where, {"name", "parent", "limits", "position_limits", "allowed_symbols", "state"})
        if "name" not in acc:
            raise ConfigError(f"{where}: name is required")
        position_limits = tuple(
            _build(f"{where}.position_limits[{j}]", PositionLimitConfig,
                   **_table(p, f"{where}.position_limits[{j}]", {"symbol", "max_long", "max_short"}))
            for j, p in enumerate(acc.get("position_limits", [])))
        trading_state = acc.get("state", "ACTIVE")
        if trading_state not in TradingState.__members__:
            raise ConfigError(f"{where}.state must be one of {', '.join(TradingState.__members__)}")
        allowed = acc.get("allowed_symbols")
        accounts.append(AccountConfig(
            name=acc["name"], parent=acc.get("parent"),
            limits=limits_from_mapping(acc.get("limits", {}), f"{where}.limits"),
            position_limits=position_limits, allowed_symbols=None if allowed is None else tuple(allowed),
            state=TradingState[trading_state]))
    return _build("config", RiskConfig, server=server, tls=tls, tokens=tokens,
                  firm=engine.get("firm", "FIRM"), default_account=engine.get("default_account", "default"),
                  duplicate_window=engine.get("duplicate_window", 0.0),
                  order_capacity=engine.get("order_capacity", 0),
                  max_batch_rows=engine.get("max_batch_rows", 100_000), instruments=instruments,
                  accounts=tuple(accounts), log_level=logging_.get("level", "info"),
                  log_requests=logging_.get("requests", "changes"), tracing_endpoint=tracing.get("endpoint"),
                  service_name=tracing.get("service_name", "riskcore-risk"),
                  profiling=profiling.get("enabled", False), state=state)


def load_config(path: str | pathlib.Path | None = None) -> RiskConfig:
    """Load a TOML configuration file, or the shipped sample when ``path`` is None."""
    if path is None:
        text = importlib.resources.files("services.risk").joinpath("sample.toml").read_text()
        base = pathlib.Path.cwd()
    else:
        path = pathlib.Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigError(f"cannot read {str(path)!r}: {error.strerror}") from None
        base = path.parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path or 'sample.toml'}: {error}") from None
    return parse_config(data, base)


def build_engine(config: RiskConfig, clock=None) -> RiskEngine:
    """Create a kernel engine holding the configured instruments, accounts and limits."""
    try:
        engine = RiskEngine(firm=config.firm, clock=clock, duplicate_window=config.duplicate_window)
        for instrument in config.instruments:
            engine.add_instrument(instrument)
    except ValueError as error:
        raise ConfigError(f"engine: {error}") from None
    try:
        engine.reserve_orders(config.order_capacity)
    except ValueError as error:
        raise ConfigError(f"engine.order_capacity: {error}") from None
    for account in config.accounts:
        if account.name != config.firm:
            try:
                engine.add_account(account.name, account.parent)
            except (KeyError, ValueError) as error:
                raise ConfigError(f"account {account.name!r}: {error}") from None
    for account in config.accounts:
        where = f"account {account.name!r}"
        try:
            engine.set_limits(account.name, account.limits)
            for p in account.position_limits:
                engine.set_position_limit(account.name, p.symbol, p.max_long, p.max_short)
            if account.allowed_symbols is not None:
                engine.set_allowed_symbols(account.name, account.allowed_symbols)
            engine.set_trading_state(account.state, account=account.name)
        except (KeyError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
    return engine
