"""The risk service's wire side: validating the public request messages and building the answers.

Every check here names the field and the bad value (``InvalidArgument``:
INVALID_ARGUMENT); nothing here reads or changes the engine. The service
(:mod:`.service`) turns validated requests into commands and decisions back
into answers through these functions.
"""
from __future__ import annotations

import math
from typing import Optional, TypeVar

import numpy as np

from riskcore import Decision, Limits, Reason, TradingState
from riskcore.decision import describe
from riskcore_services.common.errors import InvalidArgument, shown
from riskcore_services.proto import risk_pb2
from riskcore_services.proto.journal_pb2 import JournalRecord

# Ids and names (accounts, symbols, client order ids, exec ids) are at most this many bytes of UTF-8.
MAX_NAME_BYTES = 128
SIDES: dict[int, int] = {risk_pb2.BUY: 1, risk_pb2.SELL: -1}
SIDE_NAMES = {1: "BUY", -1: "SELL"}
# The wire enum starts at TRADING_STATE_UNSPECIFIED = 0 (refused); the kernel's at ACTIVE = 0.
STATES = {risk_pb2.ACTIVE: TradingState.ACTIVE, risk_pb2.REDUCING: TradingState.REDUCING,
          risk_pb2.HALTED: TradingState.HALTED}
STATE_TO_WIRE = [wire for wire, _ in sorted(STATES.items(), key=lambda item: int(item[1]))]
# Kernel reasons that mean the request itself was malformed, not a business rejection.
# Reason codes as plain ints: Reason members hash through Python-level Enum.__hash__.
MALFORMED = frozenset({int(Reason.INVALID_SIDE), int(Reason.INVALID_QUANTITY), int(Reason.INVALID_PRICE)})
# Rejections whose kernel message cannot name the thing (the kernel knows integer ids only): said here.
NAMED: dict[int, str] = {
    int(Reason.UNKNOWN_SYMBOL): "unknown symbol {symbol}",
    int(Reason.UNKNOWN_ACCOUNT): "unknown account {account}",
    int(Reason.UNKNOWN_ORDER): "client_order_id {cid} is unknown or no longer working",
    int(Reason.DUPLICATE_ORDER_ID): "client_order_id {cid} was used before",
    int(Reason.SYMBOL_RESTRICTED): "symbol {symbol} is restricted",
    int(Reason.SYMBOL_NOT_PERMITTED): "{node} is not permitted to trade {symbol}",
    int(Reason.NO_REFERENCE_PRICE): "no reference price for {symbol}",
}
DUPLICATE_ID = int(Reason.DUPLICATE_ORDER_ID)
REASON_NAMES = [r.name for r in Reason]


def bounded(value: str, field: str) -> str:
    """``value``, refused when longer than MAX_NAME_BYTES of UTF-8 (empty is allowed)."""
    # A code point is at most 4 bytes, so only a long string needs encoding to know.
    if len(value) > MAX_NAME_BYTES // 4 and len(value.encode()) > MAX_NAME_BYTES:
        raise InvalidArgument(f"{field} must be at most {MAX_NAME_BYTES} bytes of UTF-8, "
                             f"got {len(value.encode())}: {shown(value)}")
    return value


def text(value: str, field: str) -> str:
    """A required id or name: non-empty and within the bound."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    return bounded(value, field)


def column(values, field: str, required: bool, first_row: int = 0) -> list[str]:
    """Rows of a repeated id or name field (from ``first_row``) as a list; each within the bound (and
    non-empty if ``required``)."""
    values = list(values)
    # Two passes at C speed over the lengths; the per-row walk only runs to find the bad row.
    if values and (max(map(len, values)) > MAX_NAME_BYTES // 4 or (required and not min(map(len, values)))):
        for i, value in enumerate(values, first_row):
            if required and not value:
                raise InvalidArgument(f"{field}[{i}] is required")
            bounded(value, f"{field}[{i}]")
    return values


def side(value: int, field: str = "side") -> int:
    side = SIDES.get(value)
    if side is None:
        name = risk_pb2.Side.Name(value) if value in risk_pb2.Side.values() else value
        raise InvalidArgument(f"{field} must be BUY or SELL, got {name}")
    return side


MAX_QUANTITY = 10**12


def quantity(value: int, field: str = "quantity") -> int:
    if not 0 < value <= MAX_QUANTITY:
        raise InvalidArgument(f"{field} must be in 1..{MAX_QUANTITY}, got {value}")
    return value


def price(request, field: str = "price") -> Optional[float]:
    if not request.HasField(field):
        return None
    value = getattr(request, field)
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(f"{field} must be finite and > 0, got {value}")
    return value


def first_true(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask)
    return int(rows[0]) if rows.size else -1


def check_batch_rows(request, max_rows: int) -> None:
    """Refuse (INVALID_ARGUMENT) a request with more than ``max_rows`` rows in a repeated field.

    The servicer applies ``[engine] max_batch_rows`` to live calls; replay
    does not, so a journal written under a larger bound still replays.
    """
    for field in request.DESCRIPTOR.fields:
        if field.is_repeated:
            rows = len(getattr(request, field.name))
            if rows > max_rows:
                raise InvalidArgument(f"{field.name} has {rows} rows, over the bound of {max_rows} rows "
                                     f"([engine] max_batch_rows)")


def decision_message(code: int, node, value: float, limit: float, cid: str, account: Optional[str],
              symbol: Optional[str]) -> str:
    """A decision's message, naming the symbol, account or client order id where the kernel cannot."""
    said = NAMED.get(code)
    if said is None:
        return describe(code, node, value, limit)
    return said.format(symbol=shown(symbol or ""), account=shown(account or ""), cid=shown(cid), node=node)


def answer(decision: Decision, cid: str = "", account: Optional[str] = None,
            symbol: Optional[str] = None) -> risk_pb2.CheckResponse:
    code = decision.code
    if code in MALFORMED:
        raise InvalidArgument(decision.message)
    said = decision.message if code not in NAMED else decision_message(
        code, decision.node, decision.value, decision.limit, cid, account, symbol)
    return risk_pb2.CheckResponse(accepted=code == 0, reason=REASON_NAMES[code], message=said,
                                  utilisation=decision.utilisation, node=decision.node or "", client_order_id=cid)


def batch_response(codes: np.ndarray) -> risk_pb2.BatchResponse:
    response = risk_pb2.BatchResponse(accepted=int(np.count_nonzero(codes == 0)))
    response.reason_codes.extend(codes.tolist())
    for code in np.unique(codes).tolist():
        response.reason_names[code] = REASON_NAMES[code]
    return response


def limits_from_proto(message: risk_pb2.Limits | JournalRecord.SetLimits) -> tuple[Limits, list]:
    """Kernel :class:`Limits` and position limits from the wire message (or the journal's, which has the
    same fields)."""
    def opt(name):
        return getattr(message, name) if message.HasField(name) else None

    def window(name):
        return (getattr(message, name).count, getattr(message, name).seconds) if message.HasField(name) else None

    limits = Limits(
        max_order_quantity=opt("max_order_quantity"), max_order_notional=opt("max_order_notional"),
        max_gross_notional=opt("max_gross_notional"), max_net_notional=opt("max_net_notional"),
        max_open_orders=opt("max_open_orders"), max_daily_loss=opt("max_daily_loss"),
        new_order_rate=window("new_order_rate"), modify_rate=window("modify_rate"),
        cancel_rate=window("cancel_rate"), fill_throttle=window("fill_throttle"))
    positions = []
    for i, p in enumerate(message.position_limits):
        text(p.symbol, f"limits.position_limits[{i}].symbol")
        bounds = [getattr(p, name) if p.HasField(name) else None for name in ("max_long", "max_short")]
        for name, value in zip(("max_long", "max_short"), bounds):
            if value is not None and value < 0:
                raise InvalidArgument(f"limits.position_limits[{i}].{name} must be >= 0, got {value}")
        positions.append((p.symbol, *bounds))
    return limits, positions


def limits_to_proto(limits: Limits, position_limits: list) -> risk_pb2.Limits:
    return write_limits(risk_pb2.Limits(), limits, position_limits)


_M = TypeVar("_M", risk_pb2.Limits, JournalRecord.SetLimits)


def write_limits(message: _M, limits: Limits, position_limits: list) -> _M:
    """Set the wire's Limits (or the journal's SetLimits, which has the same fields) from kernel limits and
    ``(symbol, max_long, max_short)`` position limits; return ``message``."""
    for name, value in limits.as_dict().items():
        if isinstance(value, tuple):
            window = getattr(message, name)
            window.SetInParent()
            window.count, window.seconds = value
        elif value is not None:
            setattr(message, name, value)
    for symbol, max_long, max_short in position_limits:
        message.position_limits.add(symbol=symbol, max_long=max_long, max_short=max_short)
    return message


def describe_order(known: tuple) -> str:
    account, symbol, side, quantity, price = known[:5]
    return f"{SIDE_NAMES[side]} {quantity} {shown(symbol)} {'at market' if price == 0 else f'at {price:g}'} " \
           f"on {shown(account)}"


