"""The ingestion service's configuration: the shared sections and ``[ingest]``.

Declared once, on the frozen dataclasses the service reads; the file's
tables are derived from them (:func:`riskcore_services.common.config.schema`),
so an unknown key, a wrong type or a value out of range is one line naming
its key path (``ingest.replay.speed: expected float >= 0, got -1``).
Relative paths resolve against the file's folder (the working directory for
the shipped sample). See the README's "Market data service" section;
``sample.toml`` is a complete example.
"""
from __future__ import annotations

import pathlib
import zoneinfo
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal, Optional, TypeAlias, Union

import msgspec
from msgspec import Meta

from riskcore_services.common.config import (
    Common, CommonFile, ConfigError, Port, Seconds, ServerConfig, build, decode, read_toml, schema, service_config,
)
from riskcore_services.ingest.moldudp64 import SequencerConfig
from riskcore_services.ingest.simulate import SimulationConfig

__all__ = ["ConfigError", "IngestConfig", "MoldUDP64Config", "ReplayConfig", "SimulatedDay", "load_config",
           "parse_config", "split_address"]

GRPC_PORT = 50053
HTTP_PORT = 8083

# "host:port", or "" for none.
Address = Annotated[str, Meta(pattern=r"^$|^[^\s:]+:\d{1,5}$", max_length=256)]
NatsUrl = Annotated[str, Meta(pattern=r"^(nats|tls)://")]
# A NATS subject token or stream name: no dots, spaces or wildcards.
Token = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)]


def split_address(text: str, key: str) -> tuple[str, int] | None:
    """``"host:port"`` as (host, port); None for ``""``. ConfigError naming ``key`` for a bad port."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"{key}: port must be in 1..65535, got {text!r}")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class SimulatedDay:
    """A day the simulator writes to the replay file when the file is absent (seeded: same bytes every time)."""

    messages: Annotated[int, Meta(ge=1, le=100_000_000)] = 100_000
    symbols: Annotated[int, Meta(ge=1, le=65_535)] = 20
    seed: int = 0
    names: tuple[str, ...] = ()               # tickers of the first symbols (the others are drawn)

    def __post_init__(self) -> None:
        self.simulation()                     # its own bounds, as a ValueError

    def simulation(self) -> SimulationConfig:
        return SimulationConfig(self.messages, self.symbols, self.seed, self.names)


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """``[ingest.replay]``: a NASDAQ day file (plain or gzip) fed to the book."""

    file: Optional[pathlib.Path] = None       # required when source = "replay"
    speed: Annotated[float, Meta(ge=0, le=1e9)] = 0.0    # recorded time / speed; 0: as fast as possible
    loop: bool = False                        # start again (on an empty book) at the end of the file
    # Bytes read and fed at a time: the longest a GetBook waits for the feed. At least two of the largest frames.
    chunk_bytes: Annotated[int, Meta(ge=2 * (2 + 0xFFFF), le=2**30)] = 1 << 20
    generate: Optional[SimulatedDay] = None   # write this simulated day to ``file`` first when it is absent


@dataclass(frozen=True, slots=True)
class MoldUDP64Config:
    """``[ingest.moldudp64]``: one MoldUDP64 session over UDP, its re-request server and SoupBinTCP recovery."""

    group: str = "127.0.0.1"                  # a multicast group to join, or a unicast address to bind
    port: Port = 26400
    interface: str = "0.0.0.0"                # local address a multicast group is joined on
    session: Annotated[str, Meta(max_length=10)] = ""   # "": the first packet's session
    rerequest: Address = ""                   # host:port of the re-request server; "": gaps are not re-requested
    soup: Address = ""                        # host:port of a SoupBinTCP server replaying the session; "": none
    soup_username: Annotated[str, Meta(max_length=6)] = ""
    soup_password: Annotated[str, Meta(max_length=10)] = ""
    # A gap of more messages than this goes to SoupBinTCP (or the recovery file) at once, when configured,
    # instead of re-requests, as does a gap the re-requests could not fill.
    soup_after: Annotated[int, Meta(ge=1)] = 10_000
    # A day file of this session (plain or gzip; message i is sequence number i) to recover from when there
    # is no SoupBinTCP server.
    recovery_file: Optional[pathlib.Path] = None
    # Messages one SoupBinTCP recovery step fetches at most (its memory bound); a larger gap takes several.
    soup_batch: Annotated[int, Meta(ge=1, le=10_000_000)] = 1_000_000
    reorder_limit: Annotated[int, Meta(ge=0, le=10_000_000)] = 100_000
    request_max: Annotated[int, Meta(ge=1, le=0xFFFE)] = 1_000
    retry_after: Annotated[float, Meta(gt=0, le=60)] = 0.05
    max_retries: Annotated[int, Meta(ge=0, le=10_000)] = 20
    # SO_RCVBUF: a burst the receive loop has not taken yet waits here (past net.core.rmem_max only with
    # CAP_NET_ADMIN); a full buffer drops packets, which come back as a gap.
    receive_buffer: Annotated[int, Meta(ge=1 << 16, le=2**31)] = 64 << 20
    exchange_timezone: str = "America/New_York"   # ITCH stamps are ns since midnight there (for the lag)

    def __post_init__(self) -> None:
        split_address(self.rerequest, "rerequest")
        split_address(self.soup, "soup")
        self.sequencer()
        try:
            zoneinfo.ZoneInfo(self.exchange_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.exchange_timezone!r} in exchange_timezone") from None

    def sequencer(self) -> SequencerConfig:
        return SequencerConfig(self.reorder_limit, self.request_max, self.retry_after, self.max_retries)


@dataclass(frozen=True, slots=True)
class IngestConfig(Common):
    """Everything the ingestion service needs: the shared sections and ``[ingest]``."""

    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=GRPC_PORT, http_port=HTTP_PORT))
    service_name: str = "riskcore-ingest"
    source: Literal["replay", "moldudp64"] = "replay"
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    moldudp64: MoldUDP64Config = field(default_factory=MoldUDP64Config)
    risk_target: Address = ""                 # host:port of the risk engine that gets marks; "": none
    risk_token_file: Optional[pathlib.Path] = None   # a file holding an admin bearer token for UpdatePrices
    risk_deadline: Annotated[float, Meta(gt=0, le=60)] = 1.0   # seconds per UpdatePrices attempt
    # At most one UpdatePrices call and one NATS round per interval; a symbol that changes more often
    # sends its latest mark (conflation).
    marks_interval: Seconds = 0.1
    marks_batch: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000   # rows per UpdatePrices call at most
    nats_servers: tuple[NatsUrl, ...] = ()    # (): no NATS publishing
    nats_stream: Token = "MD"
    nats_subject: Token = "md"                # quotes go to <nats_subject>.<symbol>
    nats_history: Annotated[int, Meta(ge=1, le=1_000_000)] = 100   # messages the stream keeps per symbol
    # Symbols one subscriber's buffer holds at most (one quote each): a slow subscriber gets the latest quote
    # of each; past this bound the oldest waiting symbol is dropped (counted).
    subscriber_buffer: Annotated[int, Meta(ge=1, le=65_535)] = 65_535

    def __post_init__(self) -> None:
        if self.source == "replay" and self.replay.file is None:
            raise ConfigError('ingest.replay.file: required when ingest.source = "replay"')
        split_address(self.risk_target, "ingest.risk_target")


# ------------------------------------------------------------------ the file's schema

_INGEST_KEYS = ("source", "risk_target", "risk_token_file", "risk_deadline", "marks_interval", "marks_batch",
                "nats_servers", "nats_stream", "nats_subject", "nats_history", "subscriber_buffer",
                "replay", "moldudp64")

if TYPE_CHECKING:
    from riskcore_services.common.config import Table  # built at import time: see Table

    SimulatedDayTable: TypeAlias = Table
    ReplayTable: TypeAlias = Table
    MoldUDP64Table: TypeAlias = Table
    IngestTable: TypeAlias = Table
else:
    SimulatedDayTable = schema(SimulatedDay, "SimulatedDayTable")
    ReplayTable = schema(ReplayConfig, "ReplayTable", file=Optional[str], generate=Optional[SimulatedDayTable])
    MoldUDP64Table = schema(MoldUDP64Config, "MoldUDP64Table", recovery_file=Optional[str])
    IngestTable = schema(
        IngestConfig, "IngestTable", {key: key for key in _INGEST_KEYS},
        defaults={"replay": msgspec.field(default_factory=ReplayTable),
                  "moldudp64": msgspec.field(default_factory=MoldUDP64Table)},
        replay=ReplayTable, moldudp64=MoldUDP64Table, risk_token_file=Optional[str],
        # "" reads as none, like the addresses of this table; one URL as a string is a list of one.
        nats_servers=Union[str, tuple[NatsUrl, ...]])


class ConfigFile(CommonFile, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole file: the shared tables and ``[ingest]``."""

    ingest: IngestTable = msgspec.field(default_factory=IngestTable)


def _nats_servers(value: str | tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, str):
        return value
    if value == "":
        return ()
    if value.startswith(("nats://", "tls://")):
        return (value,)
    raise ConfigError(f'ingest.nats_servers: expected a list of nats:// or tls:// URLs, or "" for none, '
                      f'got {value!r}')


def parse_config(data: dict, base: pathlib.Path) -> IngestConfig:
    """Validate a parsed TOML document; relative paths are taken from ``base``."""
    file = decode(data, ConfigFile)
    table = file.ingest
    replay = table.replay
    replay_config = build(ReplayConfig, replay, file=None if replay.file is None else base / replay.file,
                          generate=None if replay.generate is None else build(SimulatedDay, replay.generate))
    values = {key: getattr(table, key) for key in _INGEST_KEYS}
    mold = table.moldudp64
    mold_config = build(MoldUDP64Config, mold,
                        recovery_file=None if mold.recovery_file is None else base / mold.recovery_file)
    values.update(replay=replay_config, moldudp64=mold_config,
                  nats_servers=_nats_servers(table.nats_servers),
                  risk_token_file=None if table.risk_token_file is None else base / table.risk_token_file)
    return service_config(IngestConfig, file, data, base, values, port=GRPC_PORT, http_port=HTTP_PORT)


def load_config(path: str | pathlib.Path | None = None) -> IngestConfig:
    """Load a TOML configuration file, or the shipped sample when ``path`` is None."""
    return parse_config(*read_toml(path, "riskcore_services.ingest"))
