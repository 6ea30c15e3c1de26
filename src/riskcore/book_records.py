"""The records the ITCH book's read views return.

Defined once, in Python, so that the compiled book builds them and its stub
re-exports them: one definition serves the runtime and the type checker.
Prices are Price(4) integers (1/10,000 of a dollar), None where there is none
(an empty side, no trade yet); sizes are shares; times are ns since midnight.
"""
from typing import NamedTuple


class Top(NamedTuple):
    """A symbol's best bid and offer and its last trade price (``Book.top``)."""

    bid_price: int | None
    bid_size: int
    ask_price: int | None
    ask_size: int
    last_price: int | None


class Level(NamedTuple):
    """One price level of a side: its displayed shares and live orders."""

    price: int
    shares: int
    orders: int


class Depth(NamedTuple):
    """Both sides' price levels, best first (``Book.depth``)."""

    bids: list[Level]
    asks: list[Level]


class LastTrade(NamedTuple):
    """A symbol's last trade (``Book.last_trade``)."""

    price: int
    shares: int
    timestamp: int


class Mark(NamedTuple):
    """A symbol's top of book, last trade and halt (``Book.marks``); ``symbol`` None without a directory entry."""

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
    """A live order as the book holds it (``Book.order``); ``side`` 'B' or 'S'."""

    ref: int
    locate: int
    side: str
    price: int
    shares: int
