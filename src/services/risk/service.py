"""The risk service's data plane: protobuf in, kernel call, protobuf out.

Every request is validated here (a malformed field raises
:class:`InvalidRequest`, answered with INVALID_ARGUMENT), applied to the one
kernel engine, and, when it changes state, appended to the journal as the
command it was. Replaying the journal through the same methods rebuilds the
same state: the engine's clock is a ManualClock that this class moves to the
wall time of each command (or to the recorded time during replay), so every
decision is deterministic.

Client order ids (strings) map to the kernel's integer ids, assigned in
command order; a repeated client order id gets its first answer. All methods
run on the event loop thread: the engine is single-threaded.
"""
from __future__ import annotations

import asyncio
import math
import time
from enum import IntEnum
from itertools import islice
from typing import Iterable, Optional

import numpy as np

from riskcore import Decision, Limits, ManualClock, Reason, RiskEngine, TradingState
from riskcore.decision import describe
from services.common.auth import check_account, check_order, check_orders
from services.common.logging import get_logger
from services.proto import risk_pb2
from services.risk.breaches import BreachHub
from services.risk.journal import JournalError
from services.risk.metrics import RiskMetrics

log = get_logger("risk")

SNAPSHOT_VERSION = 1
_SIDES = {risk_pb2.BUY: 1, risk_pb2.SELL: -1}
_EVENTS = {risk_pb2.OrderEvent.CANCELLED: "cancel", risk_pb2.OrderEvent.EXPIRED: "expire",
           risk_pb2.OrderEvent.REJECTED: "reject"}
# Kernel reasons that mean the request itself was malformed, not a business rejection.
# Reason codes as plain ints: Reason members hash through Python-level Enum.__hash__.
_MALFORMED = frozenset({int(Reason.INVALID_SIDE), int(Reason.INVALID_QUANTITY), int(Reason.INVALID_PRICE)})
_REASON_NAMES = [r.name for r in Reason]
# Records replayed between yields to the event loop during recovery: a few milliseconds' work.
_REPLAY_SLICE = 2048


class Command(IntEnum):
    """Kinds of journal records; the payload is the request's protobuf."""

    SUBMIT = 1
    SUBMIT_BATCH = 2
    MODIFY = 3
    CANCEL_REQUEST = 4
    FILL = 5
    FILL_BATCH = 6
    ORDER_EVENT = 7
    PRICES = 8
    SET_LIMITS = 9
    SET_STATE = 10
    ROLL_DAY = 11


class InvalidRequest(ValueError):
    """A request field is malformed (answered with INVALID_ARGUMENT)."""


def _side(value: int, field: str = "side") -> int:
    side = _SIDES.get(value)
    if side is None:
        name = risk_pb2.Side.Name(value) if value in risk_pb2.Side.values() else value
        raise InvalidRequest(f"{field} must be BUY or SELL, got {name}")
    return side


MAX_QUANTITY = 10**12


def _quantity(value: int, field: str = "quantity") -> int:
    if not 0 < value <= MAX_QUANTITY:
        raise InvalidRequest(f"{field} must be in 1..{MAX_QUANTITY}, got {value}")
    return value


def _price(request, field: str = "price") -> Optional[float]:
    if not request.HasField(field):
        return None
    value = getattr(request, field)
    if not (math.isfinite(value) and value > 0):
        raise InvalidRequest(f"{field} must be finite and > 0, got {value}")
    return value


def _text(value: str, field: str) -> str:
    if not value:
        raise InvalidRequest(f"{field} is required")
    return value


def _first(mask: np.ndarray) -> int:
    rows = np.flatnonzero(mask)
    return int(rows[0]) if rows.size else -1


def _answer(decision: Decision, client_order_id: str = "") -> risk_pb2.CheckResponse:
    code = decision.code
    if code in _MALFORMED:
        raise InvalidRequest(decision.message)
    return risk_pb2.CheckResponse(accepted=code == 0, reason=_REASON_NAMES[code],
                                  message=decision.message, utilisation=decision.utilisation,
                                  node=decision.node or "", client_order_id=client_order_id)


def limits_from_proto(message: risk_pb2.Limits) -> tuple[Limits, list]:
    """Kernel :class:`Limits` and position limits from the wire message."""
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
        _text(p.symbol, f"limits.position_limits[{i}].symbol")
        bounds = [getattr(p, name) if p.HasField(name) else None for name in ("max_long", "max_short")]
        for name, value in zip(("max_long", "max_short"), bounds):
            if value is not None and value < 0:
                raise InvalidRequest(f"limits.position_limits[{i}].{name} must be >= 0, got {value}")
        positions.append((p.symbol, *bounds))
    return limits, positions


def limits_to_proto(limits: Limits, position_limits: list) -> risk_pb2.Limits:
    message = risk_pb2.Limits()
    for name, value in limits.as_dict().items():
        if isinstance(value, tuple):
            getattr(message, name).CopyFrom(risk_pb2.Window(count=value[0], seconds=value[1]))
        elif value is not None:
            setattr(message, name, value)
    for symbol, max_long, max_short in position_limits:
        message.position_limits.add(symbol=symbol, max_long=max_long, max_short=max_short)
    return message


class RiskService:
    """Validated commands on one engine, journaled when a journal is attached.

    Parameters
    ----------
    engine : RiskEngine
        Its clock must be a ManualClock (this class drives it).
    default_account : str
        Account used when a request leaves it empty.
    metrics : RiskMetrics
    journal : SqliteJournal, optional
    snapshot_every : int
        Journal records between automatic snapshots.
    order_capacity : int
        Orders a restored engine's tables are sized for (``RiskEngine.reserve_orders``).
    """

    def __init__(self, engine: RiskEngine, default_account: str, metrics: RiskMetrics, journal=None,
                 snapshot_every: int = 200_000, order_capacity: int = 0):
        if not isinstance(engine.clock, ManualClock):
            raise TypeError("the service drives the engine's clock: build the engine with a ManualClock")
        self.engine = engine
        self.clock: ManualClock = engine.clock
        self.default_account = default_account
        self.metrics = metrics
        self.journal = journal
        self.breaches = BreachHub(on_drop=metrics.breaches_dropped.inc)
        self.last_seq = 0 if journal is None else journal.last_seq
        self.snapshot_every = snapshot_every
        self.order_capacity = order_capacity
        self._snapshot_seq = self.last_seq
        self.last_roll_ns = 0
        self._replay_time: Optional[int] = None
        self._order_ids: dict[str, int] = {}
        self._answers: dict[str, tuple | int] = {}
        self._next_id = 1
        self._filled = metrics.fills.labels("applied")
        self._duplicate_fill = metrics.fills.labels("duplicate")

    # --------------------------------------------------------- plumbing

    def _tick(self) -> int:
        """Move the engine clock to now (or to the replayed command's time) and return it."""
        now = self._replay_time if self._replay_time is not None else time.time_ns()
        if now > self.clock.time_ns:
            self.clock.time_ns = now
        return self.clock.time_ns

    def _record(self, kind: Command, request) -> None:
        if self.journal is not None and self._replay_time is None:
            self.last_seq = self.journal.append(self.clock.time_ns, kind,
                                                b"" if request is None else request.SerializeToString())
            if self.last_seq - self._snapshot_seq >= self.snapshot_every:
                self.snapshot()

    def snapshot(self) -> None:
        """Queue a snapshot of the state as of the last journaled command."""
        if self.journal is not None:
            self.journal.snapshot(self.last_seq, self.to_state())
            self._snapshot_seq = self.last_seq

    async def durable(self) -> None:
        """Return once every command applied so far is in the journal (no-op without one)."""
        if self.journal is not None:
            await self.journal.wait(self.last_seq)

    def account(self, name: str) -> str:
        return check_account(self.engine, name or self.default_account)

    # -------------------------------------------------------- decisions

    def _order_args(self, request) -> tuple:
        """(account, symbol, side, quantity, price) of a PositionRequest or OrderRequest, validated."""
        symbol, side, quantity = request.symbol, _SIDES.get(request.side), request.quantity
        if not symbol or side is None or not 0 < quantity <= MAX_QUANTITY:
            # Raise the error of the first bad field, in field order.
            _text(symbol, "symbol")
            _side(request.side)
            _quantity(quantity)
        return self.account(request.account), symbol, side, quantity, _price(request)

    def check_position(self, request: risk_pb2.PositionRequest) -> risk_pb2.CheckResponse:
        """A what-if check; changes nothing, so nothing is journaled."""
        args = self._order_args(request)
        self._tick()
        started = time.perf_counter_ns()
        decision = self.engine.check(*args)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        return _answer(decision)

    def submit_order(self, request: risk_pb2.OrderRequest) -> risk_pb2.CheckResponse:
        """Check and reserve; a known client order id returns its first answer."""
        cid = _text(request.client_order_id, "client_order_id")
        known = self._answers.get(cid)
        if known is not None:
            return self._replay_answer(cid, known)
        args = self._order_args(request)
        self._tick()
        started = time.perf_counter_ns()
        decision = self._book(cid, *args)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        self._record(Command.SUBMIT, request)
        return _answer(decision, cid)

    def _replay_submit(self, request: risk_pb2.OrderRequest) -> None:
        # Validated when first applied, and never a repeat: a repeat is answered, not journaled.
        self._tick()
        self._book(request.client_order_id, self.account(request.account), request.symbol, _SIDES[request.side],
                   request.quantity, request.price if request.HasField("price") else None)

    def _book(self, cid: str, account: str, symbol: str, side: int, quantity: int,
              price: Optional[float]) -> Decision:
        """Submit under the next order id; keep the id if accepted, and the answer for repeats of ``cid``."""
        order_id = self._next_id
        decision = self.engine.submit(order_id, account, symbol, side, quantity, price)
        if decision.code in _MALFORMED:
            raise InvalidRequest(decision.message)
        self._next_id = order_id + 1
        if decision.accepted:
            self._order_ids[cid] = order_id
        # Raw fields, not the message: replay stores millions of these and formats none.
        self._answers[cid] = (decision.code, decision.node, decision.value, decision.limit, decision.utilisation)
        return decision

    def _replay_answer(self, cid: str, known: tuple | int) -> risk_pb2.CheckResponse:
        if isinstance(known, int):
            # A batch row: only its code was kept.
            return risk_pb2.CheckResponse(accepted=known == 0, reason=_REASON_NAMES[known], client_order_id=cid,
                                          message="answer to an earlier submission of this client_order_id")
        code, node, value, limit, utilisation = known
        return risk_pb2.CheckResponse(accepted=code == 0, reason=_REASON_NAMES[code],
                                      message=describe(code, node, value, limit), utilisation=utilisation,
                                      node=node or "", client_order_id=cid)

    def submit_orders(self, request: risk_pb2.OrderBatch) -> risk_pb2.BatchResponse:
        """Submit a columnar batch in sequence; a reason code per row."""
        n = len(request.client_order_ids)
        for field in ("accounts", "symbols", "sides", "quantities", "prices"):
            if len(getattr(request, field)) != n:
                raise InvalidRequest(f"{field} has {len(getattr(request, field))} rows, client_order_ids has {n}")
        cids = list(request.client_order_ids)
        if len(set(cids)) != n or not all(cids):
            raise InvalidRequest("client_order_ids must be non-empty and unique within a batch")
        sides = np.asarray(request.sides, dtype=np.int64)
        if (bad := _first((sides != risk_pb2.BUY) & (sides != risk_pb2.SELL))) >= 0:
            raise InvalidRequest(f"sides[{bad}] must be BUY or SELL")
        quantities = np.asarray(request.quantities, dtype=np.int64)
        if (bad := _first((quantities <= 0) | (quantities > MAX_QUANTITY))) >= 0:
            raise InvalidRequest(f"quantities[{bad}] must be in 1..{MAX_QUANTITY}, got {quantities[bad]}")
        prices = np.asarray(request.prices, dtype=np.float64)
        if (bad := _first(~np.isfinite(prices) | (prices < 0))) >= 0:
            raise InvalidRequest(f"prices[{bad}] must be finite and >= 0 (0 = market), got {prices[bad]}")
        symbols = list(request.symbols)
        if not all(symbols):
            raise InvalidRequest(f"symbols[{symbols.index('')}] is required")
        codes = np.zeros(n, dtype=np.uint8)
        answers = self._answers
        fresh = np.fromiter((cid not in answers for cid in cids), dtype=bool, count=n)
        for i in np.flatnonzero(~fresh).tolist():
            known = answers[cids[i]]
            codes[i] = known if isinstance(known, int) else known[0]
        rows = np.flatnonzero(fresh)
        if rows.size:
            self._tick()
            engine = self.engine
            accounts = request.accounts
            account_ids = _ids([self.account(accounts[i]) for i in rows.tolist()], engine.account_id)
            symbol_ids = _ids([symbols[i] for i in rows.tolist()], engine.symbol_id)
            order_ids = np.arange(self._next_id, self._next_id + rows.size, dtype=np.int64)
            row_prices = prices[rows]
            result = engine.submit_batch(order_ids, account_ids, symbol_ids,
                                         np.where(sides[rows] == risk_pb2.BUY, 1, -1).astype(np.int8),
                                         quantities[rows], row_prices, market=row_prices == 0)
            self._next_id += rows.size
            codes[rows] = result
            for i, oid, code in zip(rows.tolist(), order_ids.tolist(), result.tolist()):
                answers[cids[i]] = code
                if code == 0:
                    self._order_ids[cids[i]] = oid
            if self._replay_time is None:
                self.metrics.batch(np.bincount(result, minlength=len(Reason)))
                self._record(Command.SUBMIT_BATCH, request)
        response = risk_pb2.BatchResponse(accepted=int(np.count_nonzero(codes == 0)))
        response.reason_codes.extend(codes.tolist())
        for code in np.unique(codes).tolist():
            response.reason_names[code] = _REASON_NAMES[code]
        return response

    def modify_order(self, request: risk_pb2.ModifyRequest) -> risk_pb2.CheckResponse:
        cid = _text(request.client_order_id, "client_order_id")
        quantity, price = _quantity(request.quantity), _price(request)
        self._tick()
        started = time.perf_counter_ns()
        decision = self.engine.modify(check_order(self.engine, self._order_ids.get(cid, -1), cid), quantity, price)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        response = _answer(decision, cid)
        if decision.accepted:
            self._record(Command.MODIFY, request)
        return response

    def request_cancel(self, request: risk_pb2.CancelRequest) -> risk_pb2.CheckResponse:
        cid = _text(request.client_order_id, "client_order_id")
        self._tick()
        decision = self.engine.request_cancel(check_order(self.engine, self._order_ids.get(cid, -1), cid))
        if decision.accepted:
            # Accepted cancel requests count against the cancel rate window: state.
            self._record(Command.CANCEL_REQUEST, request)
        return _answer(decision, cid)

    # ----------------------------------------------------------- events

    def report_fill(self, request: risk_pb2.Fill) -> risk_pb2.FillAck:
        """Apply a fill; ``applied`` is False when its exec id was seen before.

        A fill for an order this service never booked needs account, symbol and
        side, and is booked as a fill without an order: a fill is never lost.
        """
        _text(request.exec_id, "exec_id")
        _quantity(request.quantity)
        if not (math.isfinite(request.price) and request.price > 0):
            raise InvalidRequest(f"price must be finite and > 0, got {request.price}")
        applied = self._fill(request)
        (self._filled if applied else self._duplicate_fill).inc()
        if applied:
            self._record(Command.FILL, request)
            self.publish_engine_events()
        return risk_pb2.FillAck(applied=applied)

    def _fill(self, request: risk_pb2.Fill) -> bool:
        """Apply a validated fill (replay applies journaled ones as they are); False for a seen exec id."""
        order_id = check_order(self.engine, self._order_ids.get(request.client_order_id), request.client_order_id)
        if order_id is None and not (request.account and request.symbol and request.side):
            raise KeyError(f"unknown client_order_id {request.client_order_id!r}; give account, symbol and side "
                           f"to book a fill without an order")
        side = _side(request.side) if order_id is None else 0
        self._tick()
        if order_id is not None:
            return self.engine.on_fill(order_id, request.quantity, request.price, request.exec_id)
        return self.engine.book_fill(self.account(request.account), request.symbol, side, request.quantity,
                                     request.price,
                                     request.exec_id)

    def report_fills(self, request: risk_pb2.FillBatch) -> risk_pb2.FillBatchAck:
        """Apply a columnar batch of fills of booked orders, validated whole before any is applied."""
        n = len(request.client_order_ids)
        for field in ("exec_ids", "quantities", "prices"):
            if len(getattr(request, field)) != n:
                raise InvalidRequest(f"{field} has {len(getattr(request, field))} rows, client_order_ids has {n}")
        exec_ids = list(request.exec_ids)
        if not all(exec_ids):
            raise InvalidRequest(f"exec_ids[{exec_ids.index('')}] is required")
        quantities = list(request.quantities)
        quantity_array = np.asarray(quantities, dtype=np.int64)
        if (bad := _first((quantity_array <= 0) | (quantity_array > MAX_QUANTITY))) >= 0:
            raise InvalidRequest(f"quantities[{bad}] must be in 1..{MAX_QUANTITY}, got {quantities[bad]}")
        prices = list(request.prices)
        price_array = np.asarray(prices, dtype=np.float64)
        if (bad := _first(~np.isfinite(price_array) | (price_array <= 0))) >= 0:
            raise InvalidRequest(f"prices[{bad}] must be finite and > 0, got {prices[bad]}")
        order_ids = check_orders(self.engine, [self._order_ids.get(cid) for cid in request.client_order_ids],
                                 request.client_order_ids)
        if None in order_ids:
            raise KeyError(f"unknown client_order_id {request.client_order_ids[order_ids.index(None)]!r}")
        self._tick()
        on_fill = self.engine.on_fill
        applied = [on_fill(oid, q, p, x) for oid, q, p, x in zip(order_ids, quantities, prices, exec_ids)]
        count = sum(applied)
        if self._replay_time is None:
            self._filled.inc(count)
            self._duplicate_fill.inc(n - count)
        if count:
            self._record(Command.FILL_BATCH, request)
            self.publish_engine_events()
        return risk_pb2.FillBatchAck(applied=applied)

    def report_order_event(self, request: risk_pb2.OrderEvent) -> risk_pb2.OrderEventAck:
        """Apply a venue cancel, expiry or reject; ``applied`` False if the order was no longer working."""
        cid = _text(request.client_order_id, "client_order_id")
        kind = _EVENTS.get(request.kind)
        if kind is None:
            raise InvalidRequest("kind must be CANCELLED, EXPIRED or REJECTED")
        order_id = check_order(self.engine, self._order_ids.get(cid), cid)
        if order_id is None:
            raise KeyError(f"unknown client_order_id {cid!r}")
        self._tick()
        handler = {"cancel": self.engine.on_cancel, "expire": self.engine.on_expire,
                   "reject": self.engine.on_reject}[kind]
        applied = handler(order_id)
        if applied:
            self._record(Command.ORDER_EVENT, request)
        return risk_pb2.OrderEventAck(applied=applied)

    def update_prices(self, request: risk_pb2.PriceUpdates) -> risk_pb2.PriceUpdatesAck:
        """Apply marks; every row is validated before any is applied."""
        if len(request.symbols) != len(request.prices):
            raise InvalidRequest(f"symbols has {len(request.symbols)} rows, prices has {len(request.prices)}")
        prices = np.asarray(request.prices, dtype=np.float64)
        if (bad := _first(~np.isfinite(prices) | (prices <= 0))) >= 0:
            raise InvalidRequest(f"prices[{bad}] must be finite and > 0, got {prices[bad]}")
        if not all(request.symbols):
            raise InvalidRequest(f"symbols[{list(request.symbols).index('')}] is required")
        engine = self.engine
        ids = np.fromiter((engine.symbol_id(s) for s in request.symbols), dtype=np.int32,
                          count=len(request.symbols))
        self._tick()
        engine.update_prices(ids, prices)
        self._record(Command.PRICES, request)
        self.publish_engine_events()
        return risk_pb2.PriceUpdatesAck(applied=len(ids))

    # ------------------------------------------------------------ reads

    def get_positions(self, request: risk_pb2.PositionsRequest) -> risk_pb2.PositionsResponse:
        engine = self.engine
        accounts, symbols = engine.accounts, engine.symbols
        only = engine.account_id(request.account) if request.account else None
        response = risk_pb2.PositionsResponse()
        for row in engine.positions():
            if only is None or row["account"] == only:
                response.positions.add(
                    account=accounts[row["account"]], symbol=symbols[row["symbol"]], quantity=int(row["quantity"]),
                    average_price=float(row["average_price"]), realized_pnl=float(row["realized"]),
                    unrealized_pnl=float(row["unrealized"]))
        return response

    def get_exposure(self, request: risk_pb2.ExposureRequest) -> risk_pb2.ExposureResponse:
        """The account tree (or the subtree under ``account``) with its aggregates."""
        engine = self.engine
        names = engine.accounts
        rows = engine.aggregates()
        parents = rows["parent"].tolist()
        root = engine.account_id(request.account) if request.account else 0

        def under_root(node: int) -> bool:
            while node >= 0 and node != root:
                node = parents[node]
            return node == root

        response = risk_pb2.ExposureResponse()
        for row in rows:
            node = int(row["account"])
            if not under_root(node):
                continue
            long_, short = row["long"] / 1e6, row["short"] / 1e6
            working_buy, working_sell = row["working_buy"] / 1e6, row["working_sell"] / 1e6
            response.accounts.add(
                account=names[node], parent="" if row["parent"] < 0 else names[row["parent"]],
                long_notional=long_, short_notional=short, net_notional=long_ - short,
                gross_notional=long_ + short + working_buy + working_sell, working_buy_notional=working_buy,
                working_sell_notional=working_sell, realized_pnl=row["realized"] / 1e6,
                unrealized_pnl=row["unrealized"] / 1e6, daily_pnl=row["daily_pnl"] / 1e6,
                open_orders=int(row["open_orders"]), state=int(row["state"]))
        return response

    def get_limits(self, request: risk_pb2.LimitsRequest) -> risk_pb2.LimitsResponse:
        account = self.account(request.account)
        engine = self.engine
        positions = []
        for symbol in engine.symbols:
            max_long, max_short = engine.position_limit(account, symbol)
            if max_long is not None or max_short is not None:
                positions.append((symbol, max_long, max_short))
        return risk_pb2.LimitsResponse(account=account, limits=limits_to_proto(engine.limits(account), positions))

    # ------------------------------------------------------------ admin

    def set_limits(self, request: risk_pb2.SetLimitsRequest, actor: str) -> risk_pb2.LimitsResponse:
        """Replace an account's node limits and set the given position limits; logged with the actor."""
        if not request.HasField("limits"):
            raise InvalidRequest("limits is required")
        limits, positions = limits_from_proto(request.limits)
        account = self.account(request.account)
        engine = self.engine
        engine.account_id(account)
        for symbol, _, _ in positions:
            engine.symbol_id(symbol)
        self._tick()
        engine.set_limits(account, limits)
        for symbol, max_long, max_short in positions:
            engine.set_position_limit(account, symbol, max_long, max_short)
        self._record(Command.SET_LIMITS, request)
        if self._replay_time is None:
            log.info("limits changed", account=account, actor=actor, limits=limits.as_dict(), positions=positions)
        self.publish_engine_events()
        return self.get_limits(risk_pb2.LimitsRequest(account=account))

    def set_trading_state(self, request: risk_pb2.TradingStateRequest, actor: str) -> risk_pb2.TradingStateResponse:
        """The kill switch on an account, a symbol, or (neither) the firm."""
        if request.account and request.symbol:
            raise InvalidRequest("give account or symbol, not both")
        if request.state not in risk_pb2.TradingState.values():
            raise InvalidRequest(f"state must be ACTIVE, REDUCING or HALTED, got {request.state}")
        state = TradingState(request.state)
        engine = self.engine
        if request.symbol:
            engine.symbol_id(request.symbol)
        target = request.symbol or request.account or engine.accounts[0]
        self._tick()
        if request.symbol:
            engine.set_trading_state(state, symbol=target)
        else:
            engine.set_trading_state(state, account=target)
        self._record(Command.SET_STATE, request)
        if self._replay_time is None:
            log.warning("trading state changed", target=target, state=state.name, actor=actor)
            self.breaches.publish(risk_pb2.Breach(
                time_unix_nano=self.clock.time_ns, account="" if request.symbol else target, symbol=request.symbol,
                reason="STATE_CHANGE", state=int(state), actor=actor))
        return risk_pb2.TradingStateResponse(target=target, state=int(state))

    def roll_day(self) -> None:
        """Start a new trading day (daily P&L baselines, daily-loss states re-armed)."""
        self.last_roll_ns = self._tick()
        self.engine.roll_day()
        self._record(Command.ROLL_DAY, None)
        if self._replay_time is None:
            log.info("start of day roll")

    def publish_engine_events(self) -> None:
        """Forward the kernel's breach events (daily loss, throttle) to subscribers and the log."""
        if self._replay_time is not None:
            return  # replay() drops them: they were published when first applied
        for event in self.engine.drain_events():
            log.warning("limit breach", account=event.account, reason=event.reason.name, value=event.value,
                        limit=event.limit)
            self.breaches.publish(risk_pb2.Breach(
                time_unix_nano=event.time, account=event.account, symbol=event.symbol or "",
                reason=event.reason.name, value=event.value, limit=event.limit,
                state=int(self.engine.trading_state(event.account))))

    # ------------------------------------------------ snapshot and replay

    def to_state(self) -> dict:
        """The service's whole state as plain data (engine included)."""
        return {"version": SNAPSHOT_VERSION, "engine": self.engine.to_state(), "order_ids": dict(self._order_ids),
                "answers": dict(self._answers), "next_id": self._next_id, "last_roll_ns": self.last_roll_ns,
                "clock_ns": self.clock.time_ns}

    def restore(self, state: dict) -> None:
        """Replace the state with a :meth:`to_state` snapshot."""
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"service snapshot version {state.get('version')!r} is not {SNAPSHOT_VERSION}")
        self.clock.time_ns = state["clock_ns"]
        self.engine = RiskEngine.from_state(state["engine"], clock=self.clock)
        self.engine.reserve_orders(self.order_capacity)
        self.metrics.bind_engine(self.engine)
        self._order_ids = dict(state["order_ids"])
        self._answers = dict(state["answers"])
        self._next_id = state["next_id"]
        self.last_roll_ns = state["last_roll_ns"]

    async def recover(self, base: int, state: Optional[dict], records) -> dict:
        """Restore the snapshot taken after record ``base`` and replay ``records``; return counts and timings.

        Runs on the event loop (the engine's only thread), yielding to it
        every few thousand records so health checks and metrics stay answered.
        Raises StateError when the recovered state fails its consistency check.
        """
        started = time.perf_counter()
        if state is not None:
            self.restore(state)
        else:
            # No base snapshot: replay at the recorded times from the start.
            self.clock.time_ns = 0
        loaded = time.perf_counter()
        replayed = 0
        records = iter(records)
        while applied := self.replay(islice(records, _REPLAY_SLICE)):
            replayed += applied
            await asyncio.sleep(0)
        self.last_seq = max(self.last_seq, base)
        self._snapshot_seq = base
        self.engine.verify()
        done = time.perf_counter()
        return {"snapshot_seq": base, "replayed": replayed, "last_seq": self.last_seq,
                "snapshot_seconds": round(loaded - started, 4), "replay_seconds": round(done - loaded, 4),
                "positions": len(self.engine.positions()), "open_orders": len(self.engine.open_orders())}

    def replay(self, records: Iterable[tuple[int, int, int, bytes]]) -> int:
        """Apply journaled commands at their recorded times, without journaling them again; return how many.

        Notes
        -----
        Recovery runs a million records through here: the loop is kept to a
        table lookup, a parse and the handler per record.
        """
        applied = 0
        try:
            for seq, time_ns, kind, payload in records:
                self.last_seq = seq
                entry = _REPLAY.get(kind)
                if entry is None:
                    raise JournalError(f"journal record {seq} has an unknown kind {kind}")
                self._replay_time = time_ns
                entry[0](self, entry[1](payload))
                applied += 1
        finally:
            self._replay_time = None
            self.engine.drain_events()  # breaches were published when first applied
        return applied


_REPLAY = {
    Command.SUBMIT: (RiskService._replay_submit, risk_pb2.OrderRequest.FromString),
    Command.SUBMIT_BATCH: (RiskService.submit_orders, risk_pb2.OrderBatch.FromString),
    Command.MODIFY: (RiskService.modify_order, risk_pb2.ModifyRequest.FromString),
    Command.CANCEL_REQUEST: (RiskService.request_cancel, risk_pb2.CancelRequest.FromString),
    Command.FILL: (RiskService._fill, risk_pb2.Fill.FromString),
    Command.FILL_BATCH: (RiskService.report_fills, risk_pb2.FillBatch.FromString),
    Command.ORDER_EVENT: (RiskService.report_order_event, risk_pb2.OrderEvent.FromString),
    Command.PRICES: (RiskService.update_prices, risk_pb2.PriceUpdates.FromString),
    Command.SET_LIMITS: (lambda self, request: RiskService.set_limits(self, request, "journal"),
                         risk_pb2.SetLimitsRequest.FromString),
    Command.SET_STATE: (lambda self, request: RiskService.set_trading_state(self, request, "journal"),
                        risk_pb2.TradingStateRequest.FromString),
    Command.ROLL_DAY: (lambda self, request: RiskService.roll_day(self), lambda payload: None),
}


def _ids(names: list[str], lookup) -> np.ndarray:
    """Integer ids of names; unknown names get -1 (the kernel answers UNKNOWN_*)."""
    cache: dict[str, int] = {}
    out = np.empty(len(names), dtype=np.int32)
    for i, name in enumerate(names):
        found = cache.get(name)
        if found is None:
            try:
                found = lookup(name)
            except KeyError:
                found = -1
            cache[name] = found
        out[i] = found
    return out
