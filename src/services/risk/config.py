"""The risk service's configuration: a TOML file, validated against a declared schema.

The file's tables are msgspec Structs that refuse unknown keys (a typo must
not silently drop a limit). Each type is declared once, on the frozen
dataclass the rest of the service reads (``RiskConfig``, ``ServerConfig``,
``StateConfig``, the kernel's ``Instrument`` and ``Limits``...): the Structs
are derived from those annotations, ``Annotated[..., Meta(...)]`` bounds
included, and a dataclass's ``__post_init__`` checks run while the file is
decoded, so every error names its key path (``accounts[2].limits.new_order_rate[1]:
expected float, got 'x'``). See the README's "Configuration" section;
``sample.toml`` is a complete example.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.resources
import pathlib
import re
import tomllib
import typing
import zoneinfo
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, Optional

import msgspec
from msgspec import Meta

from riskcore import Instrument, Limits, Reason, RiskEngine, TradingState
from services.common.auth import TokenEntry


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the key."""


Port = Annotated[int, Meta(ge=0, le=65535)]
Seconds = Annotated[float, Meta(ge=0, le=86_400)]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: Port = 50051
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    grace_seconds: Seconds = 10.0
    drain_seconds: Seconds = 0.5
    # gRPC holds message sizes in a signed 32-bit int.
    max_message_bytes: Annotated[int, Meta(ge=1024, le=2**31 - 1)] = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server certificate and key; with ``client_ca``, clients must present a certificate (mTLS).

    In the file the paths are relative to the file's folder; ``parse_config`` checks they exist.
    """

    cert: pathlib.Path
    key: pathlib.Path
    client_ca: Optional[pathlib.Path] = None


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Durable state: the journal (SQLite file or JetStream stream), snapshots, the day roll.

    With ``backend = "sqlite"``, ``path`` None keeps state in memory only (lost
    on restart). With ``backend = "jetstream"`` the journal is the stream of
    engine ``name`` on ``nats_servers``; the engine that holds the lease is the
    primary, the others follow as hot standbys.
    """

    backend: Literal["sqlite", "jetstream"] = "sqlite"
    path: Optional[pathlib.Path] = None
    snapshot_every: Annotated[int, Meta(ge=1)] = 200_000
    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    roll_time: Optional[str] = None
    roll_timezone: str = "UTC"
    nats_servers: Annotated[tuple[Annotated[str, Meta(pattern=r"^(nats|tls)://")], ...], Meta(min_length=1)] = (
        "nats://127.0.0.1:4222",)
    name: Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)] = "risk"
    replicas: Annotated[int, Meta(ge=1, le=5)] = 1
    lease_seconds: Annotated[float, Meta(ge=0.1, le=600)] = 2.0

    def __post_init__(self) -> None:
        if self.roll_time is not None:
            roll_clock_time(self.roll_time)
        try:
            zoneinfo.ZoneInfo(self.roll_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.roll_timezone!r} in roll_timezone") from None


def roll_clock_time(text: str) -> datetime.time:
    """Parse ``HH:MM`` (24-hour) into a time of day."""
    try:
        return datetime.time.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"roll_time must be HH:MM or HH:MM:SS, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class PositionLimitConfig:
    symbol: str
    max_long: Optional[Annotated[int, Meta(ge=0)]] = None
    max_short: Optional[Annotated[int, Meta(ge=0)]] = None


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
    duplicate_window: Seconds = 0.0
    order_capacity: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0   # orders sized for at start (0: grow)
    # Rows one batch call may carry (SubmitOrders, ReportFills, UpdatePrices); read by the risk servicer.
    max_batch_rows: Annotated[int, Meta(ge=1, le=2**31 - 1)] = 100_000
    instruments: tuple[Instrument, ...] = ()
    accounts: tuple[AccountConfig, ...] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_requests: Literal["all", "changes", "errors"] = "changes"
    tracing_endpoint: Optional[str] = None
    service_name: str = "riskcore-risk"
    profiling: bool = False
    state: StateConfig = field(default_factory=StateConfig)

    def __post_init__(self) -> None:
        names = {self.firm} | {a.name for a in self.accounts}
        if self.default_account and self.default_account not in names:
            raise ConfigError(f"engine.default_account {self.default_account!r} is not a configured account")
        for i, token in enumerate(self.tokens):
            for account in token.accounts or ():
                if account not in names:
                    raise ConfigError(f"auth.tokens[{i}].accounts: {account!r} is not a configured account")


# ------------------------------------------------------------------ the file's schema

def _schema(cls, name: str, fields: dict[str, str] | None = None, defaults: dict | None = None,
            **types) -> type[msgspec.Struct]:
    """A Struct for one table of the file, derived from dataclass ``cls``.

    ``fields`` maps the table's keys to ``cls``'s attribute names (default:
    every field, same names); ``types`` overrides a key's type where the file
    holds something else (a path as text), ``defaults`` its default. When the table maps onto all of
    ``cls``, its ``__post_init__`` checks run during decoding, so msgspec
    reports their ValueError at the table's key path.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    spec = []
    for key, attribute in (fields or {f: f for f in by_name}).items():
        f, hint = by_name[attribute], types.get(key, hints[attribute])
        if key in (defaults or {}):
            spec.append((key, hint, defaults[key]))
        elif f.default is not dataclasses.MISSING:
            spec.append((key, hint, f.default))
        elif f.default_factory is not dataclasses.MISSING:
            spec.append((key, hint, msgspec.field(default_factory=f.default_factory)))
        else:
            spec.append((key, hint))
    namespace = {}
    if fields is None and hasattr(cls, "__post_init__"):
        def __post_init__(self):
            cls(**msgspec.structs.asdict(self))
        namespace["__post_init__"] = __post_init__
    return msgspec.defstruct(name, spec, kw_only=True, forbid_unknown_fields=True, frozen=True,
                             namespace=namespace)


ServerTable = _schema(ServerConfig, "ServerTable")
TlsTable = _schema(TlsConfig, "TlsTable", cert=str, key=str, client_ca=Optional[str])
StateTable = _schema(StateConfig, "StateTable", path=Optional[str])
TokenTable = _schema(TokenEntry, "TokenTable")
InstrumentTable = _schema(Instrument, "InstrumentTable")
LimitsTable = _schema(Limits, "LimitsTable")
PositionLimitTable = _schema(PositionLimitConfig, "PositionLimitTable")
EngineTable = _schema(RiskConfig, "EngineTable", {"firm": "firm", "default_account": "default_account",
                                                  "duplicate_window": "duplicate_window",
                                                  "order_capacity": "order_capacity",
                                                  "max_batch_rows": "max_batch_rows"})
LoggingTable = _schema(RiskConfig, "LoggingTable", {"level": "log_level", "requests": "log_requests"})
TracingTable = _schema(RiskConfig, "TracingTable", {"endpoint": "tracing_endpoint", "service_name": "service_name"})
ProfilingTable = _schema(RiskConfig, "ProfilingTable", {"enabled": "profiling"})
AccountTable = _schema(AccountConfig, "AccountTable", limits=LimitsTable,
                       position_limits=tuple[PositionLimitTable, ...],
                       state=Literal[tuple(TradingState.__members__)], defaults={"state": "ACTIVE", "limits": msgspec.field(default_factory=LimitsTable)})


class AuthTable(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    tokens: tuple[TokenTable, ...] = ()


class ConfigFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole file: one field per table."""

    server: ServerTable = msgspec.field(default_factory=ServerTable)
    tls: Optional[TlsTable] = None
    auth: AuthTable = msgspec.field(default_factory=AuthTable)
    engine: EngineTable = msgspec.field(default_factory=EngineTable)
    logging: LoggingTable = msgspec.field(default_factory=LoggingTable)
    tracing: TracingTable = msgspec.field(default_factory=TracingTable)
    profiling: ProfilingTable = msgspec.field(default_factory=ProfilingTable)
    state: StateTable = msgspec.field(default_factory=StateTable)
    instruments: tuple[InstrumentTable, ...] = ()
    accounts: tuple[AccountTable, ...] = ()


_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_EXPECTED = re.compile(r"^Expected (.+?)(?:, got [^,]*)?$")
# msgspec's names for JSON-like types, in TOML's words.
_TOML_WORDS = ((" | null", ""), ("`array`", "a list"), ("`object`", "a table"), ("`", ""))


def _value_at(data: Any, path: str) -> Any:
    for key, index in _PATH_PART.findall(path):
        try:
            data = data[key] if key else data[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _choices_at(path: str) -> tuple | None:
    """The allowed values of the Literal-typed key at ``path`` of the file's schema, if it is one."""
    kind: Any = ConfigFile
    for key, _ in _PATH_PART.findall(path):
        while typing.get_origin(kind) in (typing.Union, tuple, Annotated):
            kind = next(a for a in typing.get_args(kind) if a is not type(None) and a is not Ellipsis)
        if key:
            fields = {f.name: f.type for f in msgspec.structs.fields(kind)} if isinstance(kind, type) else {}
            kind = fields.get(key)
    while typing.get_origin(kind) in (typing.Union, Annotated):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else None


def _config_error(error: msgspec.ValidationError, data: dict) -> ConfigError:
    """One line naming the key path and what is expected, from msgspec's message."""
    message, _, at = str(error).partition(" - at `$")
    path = at.rstrip("`")
    where = path.lstrip(".") or "config"
    if match := _EXPECTED.match(message):
        expected = match.group(1)
        for word, toml in _TOML_WORDS:
            expected = expected.replace(word, toml)
        message = f"expected {expected}, got {_value_at(data, path)!r}"
    elif message.startswith("Invalid enum value") and (choices := _choices_at(path)):
        message = f"expected one of {', '.join(map(str, choices))}, got {_value_at(data, path)!r}"
    elif match := re.match(r"^Object contains unknown field `(.*)`$", message):
        message = f"unknown key {match.group(1)!r}"
    elif match := re.match(r"^Object missing required field `(.*)`$", message):
        message = f"missing required key {match.group(1)!r}"
    return ConfigError(f"{where}: {message}")


def _build(cls, table: msgspec.Struct, **changes):
    return cls(**{**msgspec.structs.asdict(table), **changes})


def parse_config(data: dict, base: pathlib.Path) -> RiskConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    try:
        file = msgspec.convert(data, ConfigFile)
    except msgspec.ValidationError as error:
        raise _config_error(error, data) from None
    tls = None
    if file.tls is not None:
        paths = {k: None if v is None else base / v for k, v in msgspec.structs.asdict(file.tls).items()}
        for key, path in paths.items():
            if path is not None and not path.is_file():
                raise ConfigError(f"tls.{key}: no such file {str(path)!r}")
        tls = TlsConfig(**paths)
    state = _build(StateConfig, file.state, path=None if file.state.path is None else base / file.state.path)
    instruments = tuple(_build(Instrument, table) for table in file.instruments)
    symbols = [ins.symbol for ins in instruments]
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"instruments: symbol {next(s for s in symbols if symbols.count(s) > 1)!r} is defined twice")
    accounts = tuple(
        _build(AccountConfig, table, limits=_build(Limits, table.limits),
               position_limits=tuple(_build(PositionLimitConfig, p) for p in table.position_limits),
               state=TradingState[table.state])
        for table in file.accounts)
    sections = {}
    for table in (file.engine, file.logging, file.tracing, file.profiling):
        names = type(table).__struct_fields__
        attributes = _FILE_KEYS[type(table)]
        sections.update({attributes[k]: getattr(table, k) for k in names})
    return RiskConfig(server=_build(ServerConfig, file.server), tls=tls,
                      tokens=tuple(_build(TokenEntry, t) for t in file.auth.tokens), instruments=instruments,
                      accounts=accounts, state=state, **sections)


_FILE_KEYS = {
    EngineTable: {k: k for k in EngineTable.__struct_fields__},
    LoggingTable: {"level": "log_level", "requests": "log_requests"},
    TracingTable: {"endpoint": "tracing_endpoint", "service_name": "service_name"},
    ProfilingTable: {"enabled": "profiling"},
}


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
        except ValueError as error:  # not UTF-8
            raise ConfigError(f"cannot read {str(path)!r}: {error}") from None
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
    except (ValueError, MemoryError) as error:
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


# ------------------------------------------------------------------ the file vs a recovered state

class Drift(NamedTuple):
    """One difference between the configuration file and a recovered state.

    ``what`` is account, parent, instrument, limits, position_limit,
    trading_state or allowed_symbols; ``target`` the account or symbol
    (``account/symbol`` for a position limit); ``file`` and ``state`` the two
    values (None: absent there).
    """

    what: str
    target: str
    file: Any
    state: Any

    @property
    def applicable(self) -> bool:
        """Whether ``--apply-config`` can journal the file's value (an admin change exists for it)."""
        return self.what in ("limits", "position_limit", "trading_state")


def config_drift(config: RiskConfig, engine: RiskEngine) -> list[Drift]:
    """Every difference between the file's state and ``engine`` (a recovered one).

    Reference prices are not compared: marks move them, the file only seeds
    them. Allow-lists are compared by what the two engines decide for each
    tradable account and symbol (the kernel has no getter for them).
    """
    wanted = build_engine(dataclasses.replace(config, order_capacity=0))
    drift: list[Drift] = []
    ours, theirs = wanted.accounts, engine.accounts
    common = [a for a in ours if a in set(theirs)]
    drift += [Drift("account", a, f"under {wanted.parent(a)}", None) for a in ours if a not in set(theirs)]
    drift += [Drift("account", a, None, f"under {engine.parent(a)}") for a in theirs if a not in set(ours)]
    drift += [Drift("parent", a, wanted.parent(a), engine.parent(a)) for a in common
              if wanted.parent(a) != engine.parent(a)]
    symbols = [s for s in wanted.symbols if s in set(engine.symbols)]
    drift += [Drift("instrument", s, "defined", None) for s in wanted.symbols if s not in set(engine.symbols)]
    drift += [Drift("instrument", s, None, "defined") for s in engine.symbols if s not in set(wanted.symbols)]
    for symbol in symbols:
        mine, recovered = (dataclasses.replace(e.instrument(symbol), reference_price=None) for e in (wanted, engine))
        if mine != recovered:
            drift.append(Drift("instrument", symbol, _changed(mine, recovered), _changed(recovered, mine)))
    for account in common:
        if wanted.limits(account) != engine.limits(account):
            drift.append(Drift("limits", account, _changed(wanted.limits(account), engine.limits(account)),
                               _changed(engine.limits(account), wanted.limits(account))))
        for symbol in symbols:
            if wanted.position_limit(account, symbol) != engine.position_limit(account, symbol):
                drift.append(Drift("position_limit", f"{account}/{symbol}", wanted.position_limit(account, symbol),
                                   engine.position_limit(account, symbol)))
        if wanted.trading_state(account=account) != engine.trading_state(account=account):
            drift.append(Drift("trading_state", account, wanted.trading_state(account=account).name,
                               engine.trading_state(account=account).name))
    parents = {engine.parent(a) for a in theirs}
    for account in (a for a in common if a not in parents and a != config.firm):
        mine = [s for s in symbols if _permitted(wanted, account, s)]
        recovered = [s for s in symbols if _permitted(engine, account, s)]
        if mine != recovered:
            drift.append(Drift("allowed_symbols", account, mine, recovered))
    return drift


def _changed(a, b) -> dict:
    """The fields of dataclass ``a`` whose values differ from ``b``'s."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def _permitted(engine: RiskEngine, account: str, symbol: str) -> bool:
    # Step 3 of the checks decides SYMBOL_NOT_PERMITTED before anything that depends on prices or state.
    lot = engine.instrument(symbol).lot_size
    return engine.check(account, symbol, 1, lot, None).code != int(Reason.SYMBOL_NOT_PERMITTED)
