from typing import NamedTuple

from typing_extensions import Buffer, disjoint_base

PRICE_SCALE: int
COUNTER_NAMES: tuple[str, ...]
MAX_LOCATE: int

class Top(NamedTuple):
    bid_price: int | None
    bid_size: int
    ask_price: int | None
    ask_size: int
    last_price: int | None

class Level(NamedTuple):
    price: int
    shares: int
    orders: int

class Depth(NamedTuple):
    bids: list[Level]
    asks: list[Level]

class LastTrade(NamedTuple):
    price: int
    shares: int
    timestamp: int

class Mark(NamedTuple):
    symbol: str | None
    locate: int
    bid_price: int | None
    bid_size: int
    ask_price: int | None
    ask_size: int
    last_price: int | None
    last_size: int
    last_time: int
    halted: bool

class OrderEntry(NamedTuple):
    ref: int
    locate: int
    side: str
    price: int
    shares: int

_Symbol = str | int

def format_price(price: int | None) -> str: ...

@disjoint_base
class Book:
    def __init__(self, order_capacity: int = 0) -> None: ...
    # buffer: contiguous uint8 bytes-like (bytes, bytearray, memoryview, numpy uint8)
    def feed(self, buffer: Buffer) -> int: ...
    def feed_chunk(self, buffer: Buffer, until: int | None = None) -> int: ...
    def reset(self) -> None: ...
    def top(self, symbol: _Symbol) -> Top: ...
    def depth(self, symbol: _Symbol, n: int = 10) -> Depth: ...
    def last_trade(self, symbol: _Symbol) -> LastTrade | None: ...
    def trading_state(self, symbol: _Symbol) -> str: ...
    def halted(self, symbol: _Symbol) -> bool: ...
    def symbols(self) -> list[str]: ...
    def locate(self, symbol: _Symbol) -> int: ...
    def symbol_name(self, locate: int) -> str | None: ...
    def order(self, ref: int) -> OrderEntry | None: ...
    @property
    def orders(self) -> int: ...
    def counters(self) -> dict[str, int]: ...
    def message_counts(self) -> dict[str, int]: ...
    @property
    def last_timestamp(self) -> int: ...
    @property
    def system_event(self) -> tuple[str, int] | None: ...
    @property
    def session_ended(self) -> bool: ...
    def marks(self, changed_only: bool = True) -> list[Mark]: ...
