"""Configuration every service shares: strict TOML against declared types.

A service's file is a msgspec Struct (unknown keys refused, so a typo cannot
silently drop a setting) made of the shared tables here (``[server]``,
``[tls]``, ``[[auth.tokens]]``, ``[logging]``, ``[tracing]``, ``[profiling]``,
``[state]``) and the service's own. Each table is declared once, on the frozen
dataclass the service reads; :func:`schema` derives the Struct from its
annotations (``Annotated[..., Meta(...)]`` bounds included) and runs its
``__post_init__`` checks during decoding, so every error is one line naming
its key path (``state.lease_seconds: expected float >= 0.1, got -1``).
Relative paths in a file resolve against the file's folder.
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
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, TypeAlias

import msgspec
from msgspec import Meta

from riskcore_services.common.auth import TokenEntry


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
class Common:
    """The shared sections, as a service's configuration holds them."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: Optional[TlsConfig] = None
    tokens: tuple[TokenEntry, ...] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Which successful calls get a log line (failed calls always do): every call; calls that change
    # state (orders, fills, admin); none.
    log_requests: Literal["all", "changes", "errors"] = "changes"
    tracing_endpoint: Optional[str] = None
    service_name: str = "riskcore"
    profiling: bool = False
    state: StateConfig = field(default_factory=StateConfig)


def schema(cls, name: str, fields: dict[str, str] | None = None, defaults: dict | None = None,
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
    defaults = defaults or {}
    spec: list[tuple[Any, ...]] = []
    for key, attribute in (fields or {f: f for f in by_name}).items():
        f, hint = by_name[attribute], types.get(key, hints[attribute])
        if key in defaults:
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


if TYPE_CHECKING:
    class Table(msgspec.Struct):
        """What a type checker sees of a table that :func:`schema` builds at import time.

        Its fields come from a dataclass's annotations at run time, so a checker
        cannot know them: reading one is ``Any``. The dataclass a table is built
        into (:func:`build`) is what the rest of the code reads, fully typed.
        """

        def __init__(self, **fields: Any) -> None: ...
        def __getattr__(self, name: str) -> Any: ...

    ServerTable: TypeAlias = Table
    TlsTable: TypeAlias = Table
    StateTable: TypeAlias = Table
    TokenTable: TypeAlias = Table
    LoggingTable: TypeAlias = Table
    TracingTable: TypeAlias = Table
    ProfilingTable: TypeAlias = Table
else:
    ServerTable = schema(ServerConfig, "ServerTable")
    TlsTable = schema(TlsConfig, "TlsTable", cert=str, key=str, client_ca=Optional[str])
    StateTable = schema(StateConfig, "StateTable", path=Optional[str])
    TokenTable = schema(TokenEntry, "TokenTable")
    LoggingTable = schema(Common, "LoggingTable", {"level": "log_level", "requests": "log_requests"})
    TracingTable = schema(Common, "TracingTable", {"endpoint": "tracing_endpoint", "service_name": "service_name"})
    ProfilingTable = schema(Common, "ProfilingTable", {"enabled": "profiling"})


class AuthTable(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    tokens: tuple[TokenTable, ...] = ()


class CommonFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The shared tables; a service's file subclasses it with its own."""

    server: ServerTable = msgspec.field(default_factory=ServerTable)
    tls: Optional[TlsTable] = None
    auth: AuthTable = msgspec.field(default_factory=AuthTable)
    logging: LoggingTable = msgspec.field(default_factory=LoggingTable)
    tracing: TracingTable = msgspec.field(default_factory=TracingTable)
    profiling: ProfilingTable = msgspec.field(default_factory=ProfilingTable)
    state: StateTable = msgspec.field(default_factory=StateTable)


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


def _choices_at(file_schema: type, path: str) -> tuple | None:
    """The allowed values of the Literal-typed key at ``path`` of the file's schema, if it is one."""
    kind: Any = file_schema
    for key, _ in _PATH_PART.findall(path):
        while typing.get_origin(kind) in (typing.Union, tuple, Annotated):
            kind = next(a for a in typing.get_args(kind) if a is not type(None) and a is not Ellipsis)
        if key:
            fields = {f.name: f.type for f in msgspec.structs.fields(kind)} if isinstance(kind, type) else {}
            kind = fields.get(key)
    while typing.get_origin(kind) in (typing.Union, Annotated):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else None


def _config_error(error: msgspec.ValidationError, data: dict, file_schema: type) -> ConfigError:
    """One line naming the key path and what is expected, from msgspec's message."""
    message, _, at = str(error).partition(" - at `$")
    path = at.rstrip("`")
    where = path.lstrip(".") or "config"
    if match := _EXPECTED.match(message):
        expected = match.group(1)
        for word, toml in _TOML_WORDS:
            expected = expected.replace(word, toml)
        message = f"expected {expected}, got {_value_at(data, path)!r}"
    elif message.startswith("Invalid enum value") and (choices := _choices_at(file_schema, path)):
        message = f"expected one of {', '.join(map(str, choices))}, got {_value_at(data, path)!r}"
    elif match := re.match(r"^Object contains unknown field `(.*)`$", message):
        message = f"unknown key {match.group(1)!r}"
    elif match := re.match(r"^Object missing required field `(.*)`$", message):
        message = f"missing required key {match.group(1)!r}"
    return ConfigError(f"{where}: {message}")


def build(cls, table: msgspec.Struct, **changes):
    return cls(**{**msgspec.structs.asdict(table), **changes})


def decode(data: dict, file_schema: type[msgspec.Struct]):
    """``data`` (a parsed TOML document) as ``file_schema``, or one-line ConfigError."""
    try:
        return msgspec.convert(data, file_schema)
    except msgspec.ValidationError as error:
        raise _config_error(error, data, file_schema) from None


def common_sections(file: CommonFile, data: dict, base: pathlib.Path, **server_defaults) -> dict:
    """The shared sections of a decoded file (``data`` as parsed) as :class:`Common`'s fields,
    relative paths taken from ``base``. ``server_defaults`` are the service's own defaults for
    ``[server]`` keys the file does not set (its ports)."""
    tls = None
    if file.tls is not None:
        paths = {k: base / v for k, v in msgspec.structs.asdict(file.tls).items() if v is not None}
        for key, path in paths.items():
            if not path.is_file():
                raise ConfigError(f"tls.{key}: no such file {str(path)!r}")
        tls = TlsConfig(**paths)
    server = msgspec.structs.asdict(file.server)
    given = data.get("server", {})
    server.update({key: value for key, value in server_defaults.items() if key not in given})
    return dict(
        server=ServerConfig(**server), tls=tls, tokens=tuple(build(TokenEntry, t) for t in file.auth.tokens),
        log_level=file.logging.level, log_requests=file.logging.requests,
        tracing_endpoint=file.tracing.endpoint, service_name=file.tracing.service_name,
        profiling=file.profiling.enabled,
        state=build(StateConfig, file.state, path=None if file.state.path is None else base / file.state.path))


def service_config(cls, file: CommonFile, data: dict, base: pathlib.Path, values: dict, *, port: int,
                   http_port: int):
    """A service's configuration ``cls`` (a :class:`Common` subclass): the decoded file's shared sections with
    the service's default ports and name, and its own ``values``; a ValueError of its checks becomes a
    one-line ConfigError."""
    common = common_sections(file, data, base, port=port, http_port=http_port)
    if "service_name" not in data.get("tracing", {}):
        del common["service_name"]          # the service's own default, not the shared one
    try:
        return cls(**common, **values)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def read_toml(path: str | pathlib.Path | None, package: str, sample: str = "sample.toml") -> tuple[dict, pathlib.Path]:
    """Parse a TOML file (the service's shipped sample when ``path`` is None) and return it with the
    folder its relative paths resolve against: the file's own, or the working directory for the sample
    (so state never goes into the installed package)."""
    if path is None:
        text = importlib.resources.files(package).joinpath(sample).read_text()
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
        return tomllib.loads(text), base
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path or sample}: {error}") from None
