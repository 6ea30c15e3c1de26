"""The answer to a pre-trade check.

Decisions are tiny, immutable and not tracked by the garbage collector (they
hold no containers), so checking an order never feeds a GC pause.
"""
cimport cython
from libc.stdint cimport uint8_t

from riskcore._types import Reason

_REASONS = tuple(Reason(i) for i in range(len(Reason)))

# What each reason means; {node}, {value} and {limit} are filled in.
_TEMPLATES = {
    Reason.OK: "accepted",
    Reason.INVALID_SIDE: "side must be BUY or SELL",
    Reason.INVALID_QUANTITY: "quantity must be a whole number > 0 and <= 1e12, got {value:g}",
    Reason.INVALID_PRICE: "price must be finite and > 0, got {value:g}",
    Reason.DUPLICATE_ORDER_ID: "order id {value:.0f} was used before",
    Reason.UNKNOWN_ORDER: "order {value:.0f} is unknown or no longer working",
    Reason.UNKNOWN_SYMBOL: "symbol is not known",
    Reason.SYMBOL_RESTRICTED: "symbol is restricted",
    Reason.UNKNOWN_ACCOUNT: "account is not known",
    Reason.ACCOUNT_NOT_TRADABLE: "account {node} has sub-accounts; orders go to leaf accounts",
    Reason.SYMBOL_NOT_PERMITTED: "{node} is not permitted to trade the symbol",
    Reason.LOT_SIZE: "quantity {value:g} is not a multiple of the lot size {limit:g}",
    Reason.TICK_SIZE: "price {value:g} is not on the tick grid of {limit:g}",
    Reason.NOTIONAL_OVERFLOW: "order notional {value:g} is beyond the engine's range",
    Reason.TRADING_HALTED: "trading is halted at {node}",
    Reason.REDUCE_ONLY: "{node} is reduce-only and the order would not reduce the position",
    Reason.DAILY_LOSS_LIMIT: "{node} hit its daily loss limit and is reduce-only",
    Reason.EXECUTION_THROTTLE: "{node} was halted by its fill throttle",
    Reason.NO_REFERENCE_PRICE: "no reference price for the symbol",
    Reason.STALE_REFERENCE_PRICE: "reference price is {value:g} s old, limit {limit:g} s",
    Reason.PRICE_OUT_OF_RANGE: "price {value:g} is outside the allowed band (limit {limit:g})",
    Reason.PRICE_COLLAR: "price {value:g} is outside the collar (limit {limit:g})",
    Reason.MAX_ORDER_QUANTITY: "quantity {value:g} exceeds max_order_quantity {limit:g} at {node}",
    Reason.MAX_ORDER_NOTIONAL: "notional {value:.2f} exceeds max_order_notional {limit:.2f} at {node}",
    Reason.POSITION_LIMIT: "worst-case position {value:g} exceeds the position limit {limit:g} at {node}",
    Reason.MAX_GROSS_NOTIONAL: "gross notional {value:.2f} would exceed {limit:.2f} at {node}",
    Reason.MAX_NET_NOTIONAL: "net notional {value:.2f} would exceed {limit:.2f} at {node}",
    Reason.MAX_OPEN_ORDERS: "open orders {value:g} would exceed {limit:g} at {node}",
    Reason.ORDER_RATE_LIMIT: "{value:g} new orders already in the window, limit {limit:g} at {node}",
    Reason.MODIFY_RATE_LIMIT: "{value:g} modifies already in the window, limit {limit:g} at {node}",
    Reason.CANCEL_RATE_LIMIT: "{value:g} cancels already in the window, limit {limit:g} at {node}",
    Reason.DUPLICATE_ORDER: "same order accepted {value:g} s ago, inside the duplicate window",
    Reason.SELF_MATCH: "order would cross the account's own working order at {limit:g}",
}
# Indexed by code: a Reason as a dict key hashes through Python-level Enum.__hash__.
_TEMPLATES_BY_CODE = tuple(_TEMPLATES[reason] for reason in _REASONS)


@cython.no_gc
@cython.freelist(64)
@cython.final
cdef class Decision:
    """The result of a check: accepted, or the first failing reason.

    Attributes
    ----------
    accepted : bool
    reason : Reason
        ``Reason.OK`` when accepted.
    code : int
        The reason as an integer.
    utilisation : float
        Highest ratio of value-after-order to limit among the limits checked.
    node : str or None
        The account whose limit or state decided a rejection.
    """

    @property
    def accepted(self):
        return self.code == 0

    @property
    def reason(self):
        return _REASONS[self.code]

    @property
    def message(self):
        """A human-readable explanation naming the limit and the values."""
        return describe(self.code, self.node, self.value, self.limit)

    def __bool__(self):
        return self.code == 0

    def __repr__(self):
        return f"Decision({self.reason.name}, utilisation={self.utilisation:.3f}, message={self.message!r})"

    def __eq__(self, other):
        if not isinstance(other, Decision):
            return NotImplemented
        cdef Decision o = other
        return self.code == o.code and self.node == o.node

    def __hash__(self):
        return hash((self.code, self.node))


def describe(int code, node, double value, double limit):
    """The message of a decision from its fields (code, deciding node, value, limit)."""
    return _TEMPLATES_BY_CODE[code].format(node=node, value=value, limit=limit)


cdef Decision make_decision(uint8_t code, double utilisation, str node, double value, double limit):
    cdef Decision d = Decision.__new__(Decision)
    d.code = code
    d.utilisation = utilisation
    d.node = node
    d.value = value
    d.limit = limit
    return d
