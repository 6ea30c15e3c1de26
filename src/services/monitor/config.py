"""The monitor's configuration: the shared sections and ``[monitor]`` (sources, rules, webhooks).

Declared once, on the frozen dataclasses the service reads; every error names
its key path. ``sample.toml`` is a complete example with a rule of every kind.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Optional, TypeAlias

import msgspec
from msgspec import Meta

from riskcore_services.common.config import (
    Common, CommonFile, ConfigError, ServerConfig, build, decode, read_toml, schema, service_config,
)
from riskcore_services.monitor.rules import Rule, RuleSet
from riskcore_services.monitor.sources import SourceSpec
from riskcore_services.monitor.webhooks import WebhookSpec

__all__ = ["ConfigError", "MonitorConfig", "load_config", "parse_config", "rules_about"]

GRPC_PORT = 50054
HTTP_PORT = 8084


@dataclass(frozen=True, slots=True)
class MonitorConfig(Common):
    """Everything the monitor needs: the shared sections and ``[monitor]``."""

    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=GRPC_PORT, http_port=HTTP_PORT))
    service_name: str = "riskcore-monitor"
    sources: tuple[SourceSpec, ...] = ()
    rules: tuple[Rule, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    reconnect_initial: Annotated[float, Meta(gt=0, le=60)] = 0.1
    reconnect_max: Annotated[float, Meta(gt=0, le=600)] = 5.0
    log_alerts: bool = True   # a log line for every FIRING and RESOLVED

    def __post_init__(self) -> None:
        for what, names in (("sources", [s.name for s in self.sources]),
                            ("webhooks", [w.name for w in self.webhooks])):
            if len(set(names)) != len(names):
                raise ConfigError(f"monitor.{what}: names must be unique, got {names}")
        try:
            self.rule_set()
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def rule_set(self) -> RuleSet:
        return RuleSet(self.rules)


_MONITOR_KEYS = ("sources", "rules", "webhooks", "reconnect_initial", "reconnect_max", "log_alerts")

if TYPE_CHECKING:
    from riskcore_services.common.config import Table

    SourceTable: TypeAlias = Table
    RuleTable: TypeAlias = Table
    WebhookTable: TypeAlias = Table
    MonitorTable: TypeAlias = Table
else:
    SourceTable = schema(SourceSpec, "SourceTable", token_file=Optional[str])
    RuleTable = schema(Rule, "RuleTable")
    WebhookTable = schema(WebhookSpec, "WebhookTable")
    MonitorTable = schema(MonitorConfig, "MonitorTable", {key: key for key in _MONITOR_KEYS},
                          sources=tuple[SourceTable, ...], rules=tuple[RuleTable, ...],
                          webhooks=tuple[WebhookTable, ...])


class ConfigFile(CommonFile, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole file: the shared tables and ``[monitor]``."""

    monitor: MonitorTable = msgspec.field(default_factory=MonitorTable)


def parse_config(data: dict, base: pathlib.Path) -> MonitorConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    file = decode(data, ConfigFile)
    table = file.monitor
    values = {key: getattr(table, key) for key in _MONITOR_KEYS}
    values.update(
        sources=tuple(build(SourceSpec, s, token_file=None if s.token_file is None else base / s.token_file)
                      for s in table.sources),
        rules=tuple(build(Rule, r) for r in table.rules),
        webhooks=tuple(build(WebhookSpec, w) for w in table.webhooks))
    return service_config(MonitorConfig, file, data, base, values, port=GRPC_PORT, http_port=HTTP_PORT)


def load_config(path: str | pathlib.Path | None = None) -> MonitorConfig:
    """Load a TOML configuration file, or the shipped sample when ``path`` is None."""
    return parse_config(*read_toml(path, "riskcore_services.monitor"))


def rules_about(path: pathlib.Path, kinds: tuple[str, ...], key: str) -> tuple[Rule, ...]:
    """The rules of the monitor configuration at ``path`` that watch one of ``kinds`` (a service
    evaluating the rules about its own events); errors name ``key``, the option that gave the path."""
    try:
        config = load_config(path)
    except ConfigError as error:
        raise ConfigError(f"{key}: {error}") from None
    rules = tuple(rule for rule in config.rules if rule.kind in kinds)
    if not rules:
        raise ConfigError(f"{key}: {str(path)!r} has no rule about the kinds {', '.join(kinds)}")
    return rules
