"""Validated, immutable definitions of instruments and limits.

Money is given in account currency, prices in price units, time in seconds;
the engine converts them to its integer units (see the README's Risk model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

from riskcore.errors import InvalidConfigError

Window = tuple[int, float]
# The kernel's numeric domain (src/riskcore/bounds.pxd derives it; the README's
# "Bounds" states it); a test checks these equal the compiled constants.
MAX_QUANTITY = 10**12               # units per order or fill, and any quantity limit
MAX_PRICE_TICKS = 10**15            # a price is below this many ticks
MAX_TICK_VALUE = 10**10             # micro-units per tick per unit
CAPACITY = 2**62                    # micro-units: every money total the engine keeps
# Limits are held in signed 64-bit micro-units: 9.2e12 currency units at most.
MAX_MONEY = 9.0e12
MAX_COUNT = 2**31 - 1               # open orders, and the counts of rate windows
MAX_SECONDS = 10**9                 # windows and ages: their nanoseconds fit 64 bits


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidConfigError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _whole(name: str, value: int | None, most: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise InvalidConfigError(f"{name} must be an integer from 0 to {most}, got {value!r}")


def _at_most(name: str, value: float | None, most: float) -> None:
    if value is not None and value > most:
        raise InvalidConfigError(f"{name} must be at most {most:g}, got {value!r}")


def _window(name: str, value: Window | None) -> None:
    if value is None:
        return
    if not (isinstance(value, tuple) and len(value) == 2):
        raise InvalidConfigError(f"{name} must be (count, seconds), got {value!r}")
    count, seconds = value
    _whole(f"{name} count", count, MAX_COUNT)
    _positive(f"{name} seconds", seconds)
    _at_most(f"{name} seconds", seconds, MAX_SECONDS)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument.

    Parameters
    ----------
    symbol : str
        Unique symbol.
    tick_size, lot_size, multiplier
        Price grid, quantity grid (whole units) and contract multiplier;
        ``tick_size * multiplier`` must be a whole number of micro-units.
    reference_price : float, optional
        Initial reference (last trade or mark).
    tradable : bool
        False restricts the symbol: every order is rejected.
    collar_bps_buy, collar_bps_sell, collar_ticks_buy, collar_ticks_sell
        Price collar around the reference, per side; the tighter one applies.
    min_price, max_price : float, optional
        Absolute price band.
    max_reference_age : float, optional
        Seconds after which the reference is stale.
    require_reference : bool
        Reject orders when there is no fresh reference.
    """

    symbol: str
    tick_size: float = 0.01
    lot_size: int = 1
    multiplier: float = 1.0
    reference_price: Optional[float] = None
    tradable: bool = True
    collar_bps_buy: Optional[int] = None
    collar_bps_sell: Optional[int] = None
    collar_ticks_buy: Optional[int] = None
    collar_ticks_sell: Optional[int] = None
    min_price: Optional[float] = None
    max_price: Optional[float] = None
    max_reference_age: Optional[float] = None
    require_reference: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise InvalidConfigError(f"symbol must be a non-empty string, got {self.symbol!r}")
        _positive("tick_size", self.tick_size)
        _positive("multiplier", self.multiplier)
        if isinstance(self.lot_size, bool) or not isinstance(self.lot_size, int) or self.lot_size <= 0:
            raise InvalidConfigError(f"lot_size must be a positive integer, got {self.lot_size!r}")
        micros = self.tick_size * self.multiplier * 1e6
        if round(micros) < 1 or abs(micros - round(micros)) > 1e-9 * max(1.0, micros):
            raise InvalidConfigError(
                f"tick_size * multiplier must be a whole number of micro-units, "
                f"got {self.tick_size!r} * {self.multiplier!r}"
            )
        if round(micros) > MAX_TICK_VALUE:
            raise InvalidConfigError(f"tick_size * multiplier must be at most {MAX_TICK_VALUE // 10**6} in money, "
                                     f"got {self.tick_size!r} * {self.multiplier!r}")
        _whole("lot_size", self.lot_size, MAX_QUANTITY)
        for name in ("collar_bps_buy", "collar_bps_sell", "collar_ticks_buy", "collar_ticks_sell"):
            _whole(name, getattr(self, name), MAX_PRICE_TICKS)
        for name in ("reference_price", "min_price", "max_price"):
            _positive(name, getattr(self, name))
            _at_most(name, getattr(self, name), (MAX_PRICE_TICKS - 1) * self.tick_size)
        _positive("max_reference_age", self.max_reference_age)
        _at_most("max_reference_age", self.max_reference_age, MAX_SECONDS)
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise InvalidConfigError(f"min_price {self.min_price} is above max_price {self.max_price}")

    @property
    def tick_value(self) -> int:
        """Money micro-units per tick per unit."""
        return round(self.tick_size * self.multiplier * 1e6)


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one node of the account tree; ``None`` means unlimited.

    Money limits are in account currency; windows are ``(count, seconds)``.
    """

    max_order_quantity: Optional[int] = None
    max_order_notional: Optional[float] = None
    max_gross_notional: Optional[float] = None
    max_net_notional: Optional[float] = None
    max_open_orders: Optional[int] = None
    max_daily_loss: Optional[float] = None
    new_order_rate: Optional[Window] = None
    modify_rate: Optional[Window] = None
    cancel_rate: Optional[Window] = None
    fill_throttle: Optional[Window] = None

    def __post_init__(self) -> None:
        _whole("max_order_quantity", self.max_order_quantity, MAX_QUANTITY)
        _whole("max_open_orders", self.max_open_orders, MAX_COUNT)
        for name in ("max_order_notional", "max_gross_notional", "max_net_notional", "max_daily_loss"):
            _positive(name, getattr(self, name), allow_zero=True)
            if getattr(self, name) is not None and getattr(self, name) > MAX_MONEY:
                raise InvalidConfigError(f"{name} must be at most {MAX_MONEY:g}, got {getattr(self, name)!r}")
        for name in ("new_order_rate", "modify_rate", "cancel_rate", "fill_throttle"):
            _window(name, getattr(self, name))

    def as_dict(self) -> dict:
        """Return the limits as a plain dict (for configuration files and the wire)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
