"""The risk service's journal records (``proto/riskcore/v1/journal.proto``): the commands as applied.

Format 2 (this release): every record has kind :data:`RECORD_KIND` and holds
a ``JournalRecord`` whose ``format`` is :data:`RECORD_FORMAT` and whose
``command`` is one state change as the service applied it (validated, sides
and states as the kernel counts them). The public request messages can then
change without changing what a journal means.

Format 1 (earlier releases) had one record kind per command (:class:`LegacyKind`)
and the public request message as its payload. :func:`decode` turns both into
``JournalRecord`` commands, so replay has one path; a record of a format this
release does not know is a :class:`JournalError`, which stops the start.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Callable

from google.protobuf.message import Message

from riskcore import Limits
from riskcore_services.common.journal import JournalError
from riskcore_services.proto import journal_pb2, risk_pb2
from riskcore_services.risk.codec import limits_from_proto, write_limits

RECORD_FORMAT = 2
RECORD_KIND = 16      # apart from the format 1 kinds, 1..11

JournalRecord = journal_pb2.JournalRecord
_SIDES = {risk_pb2.BUY: 1, risk_pb2.SELL: -1}
# The wire's enums to the journal's (the same meanings; the journal's numbers never move).
EVENT_KINDS = {risk_pb2.OrderEvent.CANCELLED: JournalRecord.OrderEvent.KIND_CANCELLED,
                risk_pb2.OrderEvent.EXPIRED: JournalRecord.OrderEvent.KIND_EXPIRED,
                risk_pb2.OrderEvent.REJECTED: JournalRecord.OrderEvent.KIND_REJECTED}
STATES = {risk_pb2.ACTIVE: JournalRecord.SetTradingState.STATE_ACTIVE,
           risk_pb2.REDUCING: JournalRecord.SetTradingState.STATE_REDUCING,
           risk_pb2.HALTED: JournalRecord.SetTradingState.STATE_HALTED}


class LegacyKind(IntEnum):
    """Format 1 record kinds; the payload was the public request message named."""

    SUBMIT = 1              # OrderRequest
    SUBMIT_BATCH = 2        # OrderBatch
    MODIFY = 3              # ModifyRequest
    CANCEL_REQUEST = 4      # CancelRequest
    FILL = 5                # Fill
    FILL_BATCH = 6          # FillBatch
    ORDER_EVENT = 7         # OrderEvent
    PRICES = 8              # PriceUpdates
    SET_LIMITS = 9          # SetLimitsRequest
    SET_STATE = 10          # TradingStateRequest
    ROLL_DAY = 11           # no payload


def encode(command: str, message: Message) -> bytes:
    """The payload of a format 2 record holding ``message`` as its ``command`` field."""
    return _holding(RECORD_FORMAT, command, message).SerializeToString()


def _holding(format: int, command: str, message: Message) -> JournalRecord:
    record = JournalRecord(format=format)
    getattr(record, command).CopyFrom(message)
    return record


def decode(seq: int, kind: int, payload: bytes) -> JournalRecord:
    """The command of journal record ``seq``, of either format; JournalError when this release cannot read it."""
    if kind == RECORD_KIND:
        record = JournalRecord.FromString(payload)
        if record.format != RECORD_FORMAT:
            newer = "a newer release" if record.format > RECORD_FORMAT else "no release"
            raise JournalError(f"journal record {seq} has format {record.format}, written by {newer}; this "
                               f"release reads formats 1 and {RECORD_FORMAT}")
        return record
    legacy = _LEGACY.get(kind)
    if legacy is None:
        raise JournalError(f"journal record {seq} has an unknown kind {kind}")
    return _holding(1, legacy[0], legacy[1](payload))


def limits_command(account: str, limits: Limits, positions: list, actor: str) -> JournalRecord.SetLimits:
    """The SetLimits command for an account's kernel limits and ``(symbol, max_long, max_short)`` position limits."""
    return write_limits(JournalRecord.SetLimits(account=account, actor=actor), limits, positions)


def _submit(payload: bytes) -> JournalRecord.Submit:
    r = risk_pb2.OrderRequest.FromString(payload)
    return JournalRecord.Submit(client_order_id=r.client_order_id, account=r.account, symbol=r.symbol,
                                side=_SIDES[r.side], quantity=r.quantity, price=r.price)


def _submit_batch(payload: bytes) -> JournalRecord.SubmitBatch:
    r = risk_pb2.OrderBatch.FromString(payload)
    return JournalRecord.SubmitBatch(client_order_ids=r.client_order_ids, accounts=r.accounts, symbols=r.symbols,
                                     sides=[_SIDES[s] for s in r.sides], quantities=r.quantities, prices=r.prices)


def _modify(payload: bytes) -> JournalRecord.Modify:
    r = risk_pb2.ModifyRequest.FromString(payload)
    return JournalRecord.Modify(client_order_id=r.client_order_id, quantity=r.quantity,
                                price=r.price if r.HasField("price") else None)


def _fill(payload: bytes) -> JournalRecord.Fill:
    r = risk_pb2.Fill.FromString(payload)
    return JournalRecord.Fill(client_order_id=r.client_order_id, exec_id=r.exec_id, account=r.account,
                              symbol=r.symbol, side=_SIDES.get(r.side, 0), quantity=r.quantity, price=r.price)


def _fill_batch(payload: bytes) -> JournalRecord.FillBatch:
    r = risk_pb2.FillBatch.FromString(payload)
    return JournalRecord.FillBatch(client_order_ids=r.client_order_ids, exec_ids=r.exec_ids,
                                   quantities=r.quantities, prices=r.prices)


def _order_event(payload: bytes) -> JournalRecord.OrderEvent:
    r = risk_pb2.OrderEvent.FromString(payload)
    return JournalRecord.OrderEvent(client_order_id=r.client_order_id, kind=EVENT_KINDS[r.kind])


def _marks(payload: bytes) -> JournalRecord.Marks:
    r = risk_pb2.PriceUpdates.FromString(payload)
    return JournalRecord.Marks(symbols=r.symbols, prices=r.prices)


def _set_limits(payload: bytes) -> JournalRecord.SetLimits:
    r = risk_pb2.SetLimitsRequest.FromString(payload)
    return limits_command(r.account, *limits_from_proto(r.limits), actor="journal")


def _set_state(payload: bytes) -> JournalRecord.SetTradingState:
    r = risk_pb2.TradingStateRequest.FromString(payload)
    return JournalRecord.SetTradingState(account=r.account, symbol=r.symbol, state=STATES[r.state], actor="journal")


_LEGACY: dict[int, tuple[str, Callable[[bytes], Message]]] = {
    LegacyKind.SUBMIT: ("submit", _submit),
    LegacyKind.SUBMIT_BATCH: ("submit_batch", _submit_batch),
    LegacyKind.MODIFY: ("modify", _modify),
    LegacyKind.CANCEL_REQUEST: ("cancel_request",
                                lambda payload: JournalRecord.CancelRequest(
                                    client_order_id=risk_pb2.CancelRequest.FromString(payload).client_order_id)),
    LegacyKind.FILL: ("fill", _fill),
    LegacyKind.FILL_BATCH: ("fill_batch", _fill_batch),
    LegacyKind.ORDER_EVENT: ("order_event", _order_event),
    LegacyKind.PRICES: ("marks", _marks),
    LegacyKind.SET_LIMITS: ("set_limits", _set_limits),
    LegacyKind.SET_STATE: ("set_trading_state", _set_state),
    LegacyKind.ROLL_DAY: ("roll_day", lambda payload: JournalRecord.RollDay()),
}
