"""The records the engine's read views return, and the dtypes of its array views.

Defined once, in Python, so that the compiled engine builds them and its
stub re-exports them: one definition serves the runtime and the type checker.
"""
from typing import NamedTuple

import numpy as np

from riskcore._types import OrderStatus, Reason, TradingState


class Position(NamedTuple):
    """One account's position in one symbol (money in currency)."""

    account: str
    symbol: str
    quantity: int
    average_price: float
    realized: float
    unrealized: float


class Aggregate(NamedTuple):
    """An account's totals over its subtree (money in currency)."""

    account: str
    long: float
    short: float
    net: float
    gross: float
    working_buy: float
    working_sell: float
    realized: float
    unrealized: float
    daily_pnl: float
    open_orders: int
    state: TradingState


class OrderInfo(NamedTuple):
    """A booked order as the engine holds it."""

    order_id: int
    account: str
    symbol: str
    side: int
    price: float
    remaining: int
    filled: int
    market: bool
    status: OrderStatus


class BreachEvent(NamedTuple):
    """A limit breach the engine recorded (``drain_events``); ``time`` in ns."""

    time: int
    account: str
    symbol: str | None
    reason: Reason
    value: float
    limit: float


POSITION_DTYPE = np.dtype([
    ("account", np.int32), ("symbol", np.int32), ("quantity", np.int64),
    ("average_price", np.float64), ("realized", np.float64), ("unrealized", np.float64),
])
ORDER_DTYPE = np.dtype([
    ("order_id", np.int64), ("account", np.int32), ("symbol", np.int32), ("side", np.int8),
    ("market", np.bool_), ("price", np.float64), ("remaining", np.int64), ("filled", np.int64),
])
AGGREGATE_DTYPE = np.dtype([
    ("account", np.int32), ("parent", np.int32), ("long", np.int64), ("short", np.int64),
    ("working_buy", np.int64), ("working_sell", np.int64), ("realized", np.int64),
    ("unrealized", np.int64), ("daily_pnl", np.int64), ("open_orders", np.int64), ("state", np.int8),
])
