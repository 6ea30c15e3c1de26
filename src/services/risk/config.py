"""The risk service's configuration: a TOML file, validated against a declared schema.

The file's tables are msgspec Structs that refuse unknown keys (a typo must
not silently drop a limit). Each type is declared once, on the frozen
dataclass the rest of the service reads (``RiskConfig``, the shared ``ServerConfig``,
``StateConfig``, the kernel's ``Instrument`` and ``Limits``...): the Structs
are derived from those annotations, ``Annotated[..., Meta(...)]`` bounds
included, and a dataclass's ``__post_init__`` checks run while the file is
decoded, so every error names its key path (``accounts[2].limits.new_order_rate[1]:
expected float, got 'x'``). See the README's "Configuration" section;
``sample.toml`` is a complete example.
"""
from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Optional, TypeAlias

import msgspec
from msgspec import Meta

from riskcore import Instrument, Limits, Reason, RiskEngine, TradingState
from riskcore_services.common.config import (
    Common, CommonFile, ConfigError, Seconds, build, common_sections, decode, read_toml, schema,
)
from riskcore_services.monitor.config import rules_about
from riskcore_services.monitor.rules import Rule
from riskcore_services.risk.events import EVENT_KINDS

__all__ = ["AccountConfig", "ConfigError", "PositionLimitConfig", "RiskConfig", "build_engine", "config_drift",
           "load_config", "parse_config"]


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


@dataclass(frozen=True, slots=True)
class RiskConfig(Common):
    """Everything the risk service needs to start: the shared sections and ``[engine]``,
    ``[[instruments]]``, ``[[accounts]]``."""

    service_name: str = "riskcore-risk"
    firm: str = "FIRM"
    default_account: str = "default"
    duplicate_window: Seconds = 0.0
    order_capacity: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0   # orders sized for at start (0: grow)
    # Rows one batch call may carry (SubmitOrders, ReportFills, UpdatePrices); read by the risk servicer.
    max_batch_rows: Annotated[int, Meta(ge=1, le=2**31 - 1)] = 100_000
    instruments: tuple[Instrument, ...] = ()
    accounts: tuple[AccountConfig, ...] = ()
    # ``[alerts] rules_file``: the rules about this service's events, evaluated in-process (Alerts on its port).
    alert_rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        names = {self.firm} | {a.name for a in self.accounts}
        if self.default_account and self.default_account not in names:
            raise ConfigError(f"engine.default_account {self.default_account!r} is not a configured account")
        for i, token in enumerate(self.tokens):
            for account in token.accounts or ():
                if account not in names:
                    raise ConfigError(f"auth.tokens[{i}].accounts: {account!r} is not a configured account")


# ------------------------------------------------------------------ the file's schema

if TYPE_CHECKING:
    from riskcore_services.common.config import Table  # built at import time: see Table

    InstrumentTable: TypeAlias = Table
    LimitsTable: TypeAlias = Table
    PositionLimitTable: TypeAlias = Table
    EngineTable: TypeAlias = Table
    AccountTable: TypeAlias = Table
else:
    InstrumentTable = schema(Instrument, "InstrumentTable")
    LimitsTable = schema(Limits, "LimitsTable")
    PositionLimitTable = schema(PositionLimitConfig, "PositionLimitTable")
    EngineTable = schema(RiskConfig, "EngineTable", {"firm": "firm", "default_account": "default_account",
                                                      "duplicate_window": "duplicate_window",
                                                      "order_capacity": "order_capacity",
                                                      "max_batch_rows": "max_batch_rows"})
    AccountTable = schema(AccountConfig, "AccountTable", limits=LimitsTable,
                           position_limits=tuple[PositionLimitTable, ...],
                           state=Literal[tuple(TradingState.__members__)],
                           defaults={"state": "ACTIVE", "limits": msgspec.field(default_factory=LimitsTable)})


class AlertsTable(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[alerts]``: a monitor configuration whose rules about the risk engine's events it evaluates itself."""

    rules_file: Optional[str] = None


class ConfigFile(CommonFile, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole file: the shared tables and the risk service's own."""

    engine: EngineTable = msgspec.field(default_factory=EngineTable)
    alerts: AlertsTable = msgspec.field(default_factory=AlertsTable)
    instruments: tuple[InstrumentTable, ...] = ()
    accounts: tuple[AccountTable, ...] = ()


def parse_config(data: dict, base: pathlib.Path) -> RiskConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    file = decode(data, ConfigFile)
    instruments = tuple(build(Instrument, table) for table in file.instruments)
    symbols = [ins.symbol for ins in instruments]
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"instruments: symbol {next(s for s in symbols if symbols.count(s) > 1)!r} is defined twice")
    accounts = tuple(
        build(AccountConfig, table, limits=build(Limits, table.limits),
              position_limits=tuple(build(PositionLimitConfig, p) for p in table.position_limits),
              state=TradingState[table.state])
        for table in file.accounts)
    engine = {key: getattr(file.engine, key) for key in EngineTable.__struct_fields__}
    rules_file = file.alerts.rules_file
    alert_rules = () if rules_file is None else rules_about(base / rules_file, EVENT_KINDS, "alerts.rules_file")
    return RiskConfig(**common_sections(file, data, base), instruments=instruments, accounts=accounts,
                      alert_rules=alert_rules, **engine)


def load_config(path: str | pathlib.Path | None = None) -> RiskConfig:
    """Load a TOML configuration file, or the shipped sample when ``path`` is None."""
    return parse_config(*read_toml(path, "riskcore_services.risk"))


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
        mine_permitted = [s for s in symbols if _permitted(wanted, account, s)]
        recovered_permitted = [s for s in symbols if _permitted(engine, account, s)]
        if mine_permitted != recovered_permitted:
            drift.append(Drift("allowed_symbols", account, mine_permitted, recovered_permitted))
    return drift


def _changed(a, b) -> dict:
    """The fields of dataclass ``a`` whose values differ from ``b``'s."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def _permitted(engine: RiskEngine, account: str, symbol: str) -> bool:
    # Step 3 of the checks decides SYMBOL_NOT_PERMITTED before anything that depends on prices or state.
    lot = engine.instrument(symbol).lot_size
    return engine.check(account, symbol, 1, lot, None).code != int(Reason.SYMBOL_NOT_PERMITTED)
