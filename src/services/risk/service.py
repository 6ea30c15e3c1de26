"""The risk service's data plane: protobuf in, kernel call, protobuf out.

Every request is validated here (a malformed field raises
:class:`InvalidArgument`, answered with INVALID_ARGUMENT) and turned into the
command it asks for; the command is applied to the one kernel engine and,
when it changed state, appended to the journal (:mod:`.records`). Deciding
is apart from its side effects: a live call and the journal's replay run the
same ``_apply_*`` method per command; only the live call adds metrics, log
lines, published breaches and the journal record (an :class:`Effects`;
replay passes :data:`NO_EFFECTS`). The engine's clock is a ManualClock that
this class moves to the wall time of each live command, or to the recorded
time of each replayed one, so every decision is deterministic.

Client order ids (strings) map to the kernel's integer ids, assigned in
command order. A repeated client order id with the same content (account,
symbol, side, quantity, price) gets its first answer again; with other
content it is rejected as DUPLICATE_ORDER_ID. An id is remembered while its
order is working and for the trading day it was submitted and the next: the
second :meth:`RiskService.roll_day` after that forgets it, as the kernel
forgets execution ids. All methods run on the event loop thread: the engine
is single-threaded.
"""
from __future__ import annotations

import asyncio
import math
import time
from itertools import islice
from typing import Any, Callable, Generator, Iterable, Optional, TypeVar

import numpy as np

from riskcore import (CapacityError, Decision, Limits, ManualClock, Reason, RiskEngine, TradingState,
                      UnknownOrderError)
from riskcore_services.common.auth import check_account, check_accounts, check_order, check_orders
from riskcore_services.common.errors import FailedPrecondition, InvalidArgument, shown
from riskcore_services.common.logging import get_logger
from riskcore_services.proto import risk_pb2
from riskcore_services.common.fanout import FanOut
from riskcore_services.common.journal import Journal, JournalError
from riskcore_services.risk import codec, records
from riskcore_services.risk.metrics import RiskMetrics
from riskcore_services.risk.records import RECORD_KIND, JournalRecord

log = get_logger("risk")

SNAPSHOT_VERSION = 2
# Batches are applied this many rows at a time (a few milliseconds of work), then give the event
# loop a few turns, so other calls wait about a chunk's time behind a large batch, not for all of it.
# Validation is cheaper per row: it runs four chunks' rows per step. Several turns, not one: a call
# needs a few (read, handle, write) to be answered. Zero-second sleeps, not a timed one: an idle turn
# costs microseconds, a timed sleep a millisecond or more (epoll's resolution), and both measured
# alike for the waiting calls (reads beside a 100k-row batch answered in ~10 ms, not ~300 ms).
BATCH_CHUNK = 4096
_VALIDATION_CHUNK = 4 * BATCH_CHUNK
_TURNS_BETWEEN_CHUNKS = 8
_EVENT_HANDLERS = {JournalRecord.OrderEvent.KIND_CANCELLED: "on_cancel",
                   JournalRecord.OrderEvent.KIND_EXPIRED: "on_expire",
                   JournalRecord.OrderEvent.KIND_REJECTED: "on_reject"}
_JOURNAL_STATES = {records.STATES[wire]: state for wire, state in codec.STATES.items()}
# Records replayed between yields to the event loop during recovery: a few milliseconds' work.
_REPLAY_SLICE = 2048


class OverCapacity(FailedPrecondition):
    """A fill or mark the engine's books cannot hold (FAILED_PRECONDITION).

    The kernel refused it whole and halted the account (fill) or the symbol
    (mark); the refusal is journaled, since the halt is state.
    """


_Result = TypeVar("_Result")


def _run(steps: Generator[None, None, _Result]) -> _Result:
    """Run a chunked command to its end without yielding (replay, direct calls); return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def _run_yielding(steps: Generator[None, None, _Result]) -> _Result:
    """Run a chunked command, letting the event loop serve other calls between its chunks."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        for _ in range(_TURNS_BETWEEN_CHUNKS):
            await asyncio.sleep(0)


class _OrderRows:
    """A validated OrderBatch as columns; ``codes`` is filled in as its chunks are applied."""

    __slots__ = ("cids", "accounts", "symbols", "sides", "quantities", "prices", "codes")

    def __init__(self, cids, accounts, symbols, sides, quantities, prices):
        self.cids, self.accounts, self.symbols = cids, accounts, symbols
        self.sides, self.quantities, self.prices = sides, quantities, prices
        self.codes = np.zeros(len(cids), dtype=np.uint8)


class Effects:
    """What a live command does besides deciding: metrics, log lines and published breaches.

    The journal record is the live call's own step (it needs the command as
    sent); replay applies the same commands with :data:`NO_EFFECTS`, since
    their effects happened when they were first applied.
    """

    def __init__(self, service: "RiskService"):
        self._service = service

    def duplicate_id(self) -> None:
        self._service.metrics.count(codec.DUPLICATE_ID)

    def batch(self, codes: np.ndarray) -> None:
        self._service.metrics.batch(np.bincount(codes, minlength=len(Reason)))

    def limits_changed(self, account: str, actor: str, limits: Limits, positions: list) -> None:
        log.info("limits changed", account=account, actor=actor, limits=limits.as_dict(), positions=positions)

    def state_changed(self, account: str, symbol: str, state: TradingState, actor: str) -> None:
        service = self._service
        log.warning("trading state changed", target=symbol or account, state=state.name, actor=actor)
        service.publish_breach(risk_pb2.Breach(
            time_unix_nano=service.clock.time_ns, account=account, symbol=symbol,
            reason="STATE_CHANGE", state=codec.STATE_TO_WIRE[int(state)], actor=actor))

    def day_rolled(self) -> None:
        log.info("start of day roll")


class _NoEffects(Effects):
    # Replay: the effects happened when the commands were first applied.
    def __init__(self) -> None:
        pass

    def duplicate_id(self) -> None:
        pass

    def batch(self, codes: np.ndarray) -> None:
        pass

    def limits_changed(self, account: str, actor: str, limits: Limits, positions: list) -> None:
        pass

    def state_changed(self, account: str, symbol: str, state: TradingState, actor: str) -> None:
        pass

    def day_rolled(self) -> None:
        pass


NO_EFFECTS: Effects = _NoEffects()


class RiskService:
    """Validated commands on one engine, journaled when a journal is attached.

    Parameters
    ----------
    engine : RiskEngine
        Its clock must be a ManualClock (this class drives it).
    default_account : str
        Account used when an order or fill leaves it empty.
    metrics : RiskMetrics
    journal : Journal, optional
        Either backend (:mod:`riskcore_services.common.journal`); None keeps state in memory only.
    snapshot_every : int
        Journal records between automatic snapshots.
    order_capacity : int
        Orders a restored engine's tables are sized for (``RiskEngine.reserve_orders``).

    Notes
    -----
    What a client order id remembers: its content (account, symbol, side,
    quantity, price) and its answer, in ``_answers`` (ids first used since the
    last day roll) and ``_answers_before`` (the day before); ``_order_ids``
    maps the ids of accepted orders to kernel ids until their order is done
    and a day roll has passed. A day roll drops the older day, carrying over
    the ids of orders still working, so memory and snapshots are bounded by
    two days of ids plus the working orders.
    """

    def __init__(self, engine: RiskEngine, default_account: str, metrics: RiskMetrics, journal: Journal | None = None,
                 snapshot_every: int = 200_000, order_capacity: int = 0, time_ns: Callable[[], int] = time.time_ns):
        if not isinstance(engine.clock, ManualClock):
            raise TypeError("the service drives the engine's clock: build the engine with a ManualClock")
        self.engine = engine
        self.clock: ManualClock = engine.clock
        self.time_ns = time_ns
        self.default_account = default_account
        self.metrics = metrics
        self.journal = journal
        self.breaches: FanOut[risk_pb2.Breach] = FanOut(on_drop=metrics.breaches_dropped.inc)
        self.on_breach: Callable[[risk_pb2.Breach], None] = lambda breach: None   # the event stream's hook
        self.last_seq = 0 if journal is None else journal.last_seq
        self.snapshot_every = snapshot_every
        self.order_capacity = order_capacity
        self._snapshot_seq = self.last_seq
        self.last_roll_ns = 0
        self.effects = Effects(self)
        self._order_ids: dict[str, int] = {}
        # client order id -> (account, symbol, side, quantity, price or 0.0, code) for batch rows, and
        # the same plus (node, value, limit, utilisation) for single orders.
        self._answers: dict[str, tuple] = {}
        self._answers_before: dict[str, tuple] = {}
        self._next_id = 1
        self._filled = metrics.fills.labels("applied")
        self._duplicate_fill = metrics.fills.labels("duplicate")

    # --------------------------------------------------------- plumbing

    def _tick(self) -> int:
        """Move the engine clock to now (a live command) and return it; it never goes back."""
        now = self.time_ns()
        if now > self.clock.time_ns:
            self.clock.time_ns = now
        return self.clock.time_ns

    def _record(self, command: str, message) -> None:
        """Journal a live command (``message`` as the JournalRecord's ``command`` field) at the engine's time."""
        if self.journal is not None:
            self.last_seq = self.journal.append(self.clock.time_ns, RECORD_KIND, records.encode(command, message))
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
        """The account an order or fill names: an empty name is the default account."""
        return check_account(self.engine, name or self.default_account)

    def _known(self, cid: str) -> Optional[tuple]:
        known = self._answers.get(cid)
        return self._answers_before.get(cid) if known is None else known

    # -------------------------------------------------------- decisions

    def _order_args(self, request) -> tuple:
        """(account, symbol, side, quantity, price) of a PositionRequest or OrderRequest, validated."""
        symbol, side, quantity = request.symbol, codec.SIDES.get(request.side), request.quantity
        if not symbol or side is None or not 0 < quantity <= codec.MAX_QUANTITY:
            # Raise the error of the first bad field, in field order.
            codec.text(symbol, "symbol")
            codec.side(request.side)
            codec.quantity(quantity)
        codec.bounded(symbol, "symbol")
        account = self.account(codec.bounded(request.account, "account"))
        return account, symbol, side, quantity, codec.price(request)

    def check_position(self, request: risk_pb2.PositionRequest) -> risk_pb2.CheckResponse:
        """A what-if check; changes nothing, so nothing is journaled."""
        args = self._order_args(request)
        self._tick()
        started = time.perf_counter_ns()
        decision = self.engine.check(*args)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        return codec.answer(decision, "", args[0], args[1])

    def submit_order(self, request: risk_pb2.OrderRequest) -> risk_pb2.CheckResponse:
        """Check and reserve; a known client order id gets its first answer, or DUPLICATE_ORDER_ID."""
        cid = codec.text(request.client_order_id, "client_order_id")
        args = self._order_args(request)
        known = self._known(cid)
        if known is not None:
            return self._repeat(cid, known, args)
        self._tick()
        started = time.perf_counter_ns()
        decision = self._book(cid, *args)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        account, symbol, side, quantity, price = args
        if self.journal is not None:  # the record is built for the journal only: this is the hot path
            self._record("submit", JournalRecord.Submit(client_order_id=cid, account=account, symbol=symbol,
                                                        side=side, quantity=quantity, price=price or 0.0))
        return codec.answer(decision, cid, account, symbol)

    def _apply_submit(self, command: JournalRecord.Submit) -> None:
        # Validated when first applied, and never a repeat: a repeat is answered, not journaled.
        self._book(command.client_order_id, self.account(command.account), command.symbol, command.side,
                   command.quantity, command.price or None)

    def _book(self, cid: str, account: str, symbol: str, side: int, quantity: int,
              price: Optional[float]) -> Decision:
        """Submit under the next order id; keep the id if accepted, and the content and answer for repeats."""
        order_id = self._next_id
        decision = self.engine.submit(order_id, account, symbol, side, quantity, price)
        if decision.code in codec.MALFORMED:
            raise InvalidArgument(decision.message)
        self._next_id = order_id + 1
        if decision.accepted:
            self._order_ids[cid] = order_id
        # Raw fields, not the message: replay stores millions of these and formats none.
        self._answers[cid] = (account, symbol, side, quantity, 0.0 if price is None else price, decision.code,
                              decision.node, decision.value, decision.limit, decision.utilisation)
        return decision

    def _repeat(self, cid: str, known: tuple, args: tuple) -> risk_pb2.CheckResponse:
        """The answer to a client order id seen before: its first answer if the content is the same."""
        account, symbol, side, quantity, price = args
        if known[:5] != (account, symbol, side, quantity, 0.0 if price is None else price):
            self.metrics.count(codec.DUPLICATE_ID)
            return risk_pb2.CheckResponse(
                accepted=False, reason=codec.REASON_NAMES[codec.DUPLICATE_ID], client_order_id=cid,
                message=f"client_order_id {shown(cid)} was already used for a different order "
                        f"({codec.describe_order(known)}); a repeat must have the same account, symbol, side, "
                        f"quantity and price")
        code = known[5]
        if len(known) == 6:
            # A batch row: only its code was kept.
            return risk_pb2.CheckResponse(accepted=code == 0, reason=codec.REASON_NAMES[code], client_order_id=cid,
                                          replayed=True,
                                          message="answer to an earlier submission of this client_order_id")
        node, value, limit, utilisation = known[6:]
        return risk_pb2.CheckResponse(accepted=code == 0, reason=codec.REASON_NAMES[code],
                                      message=codec.decision_message(code, node, value, limit, cid, account, symbol),
                                      utilisation=utilisation, node=node or "", client_order_id=cid, replayed=True)

    def submit_orders(self, request: risk_pb2.OrderBatch) -> risk_pb2.BatchResponse:
        """Submit a columnar batch in sequence, at once (replay and direct calls); a reason code per row."""
        return _run(self._submit_orders(request))

    async def submit_orders_chunked(self, request: risk_pb2.OrderBatch, max_rows: int) -> risk_pb2.BatchResponse:
        """Submit a batch of at most ``max_rows`` rows in sequence, serving other calls between its chunks.

        Notes
        -----
        The whole batch is validated before any row is applied. Rows are then
        applied ``BATCH_CHUNK`` at a time, each chunk journaled as a batch of
        its own, so a call applied between two chunks is journaled between
        them and replay makes the same decisions. A row still sees every row
        before it; it may also see orders other callers sent meanwhile.
        """
        codec.check_batch_rows(request, max_rows)
        return await _run_yielding(self._submit_orders(request))

    def _submit_orders(self, request: risk_pb2.OrderBatch) -> Generator[None, None, risk_pb2.BatchResponse]:
        rows = yield from self._order_rows(request)
        n = len(rows.cids)
        for start in range(0, n, BATCH_CHUNK):
            stop = min(start + BATCH_CHUNK, n)
            self._tick()
            if self._submit_chunk(rows, start, stop, self.effects) and self.journal is not None:
                self._record("submit_batch", JournalRecord.SubmitBatch(
                    client_order_ids=rows.cids[start:stop], accounts=rows.accounts[start:stop],
                    symbols=rows.symbols[start:stop], sides=rows.sides[start:stop].tolist(),
                    quantities=rows.quantities[start:stop].tolist(), prices=rows.prices[start:stop].tolist()))
            if stop < n:
                yield
        return codec.batch_response(rows.codes)

    def _apply_submit_batch(self, command: JournalRecord.SubmitBatch) -> None:
        rows = _OrderRows(list(command.client_order_ids), list(command.accounts), list(command.symbols),
                          np.asarray(command.sides, dtype=np.int8), np.asarray(command.quantities, dtype=np.int64),
                          np.asarray(command.prices, dtype=np.float64))
        self._submit_chunk(rows, 0, len(rows.cids), NO_EFFECTS)

    def _order_rows(self, request: risk_pb2.OrderBatch) -> Generator[None, None, _OrderRows]:
        """Validate a whole OrderBatch (nothing is applied until every row is valid), a chunk at a time."""
        n = len(request.client_order_ids)
        for field in ("accounts", "symbols", "sides", "quantities", "prices"):
            if len(getattr(request, field)) != n:
                raise InvalidArgument(f"{field} has {len(getattr(request, field))} rows, client_order_ids has {n}")
        sides = np.asarray(request.sides, dtype=np.int64)
        if (bad := codec.first_true((sides != risk_pb2.BUY) & (sides != risk_pb2.SELL))) >= 0:
            raise InvalidArgument(f"sides[{bad}] must be BUY or SELL")
        quantities = np.asarray(request.quantities, dtype=np.int64)
        if (bad := codec.first_true((quantities <= 0) | (quantities > codec.MAX_QUANTITY))) >= 0:
            raise InvalidArgument(f"quantities[{bad}] must be in 1..{codec.MAX_QUANTITY}, got {quantities[bad]}")
        prices = np.asarray(request.prices, dtype=np.float64)
        if (bad := codec.first_true(~np.isfinite(prices) | (prices < 0))) >= 0:
            raise InvalidArgument(f"prices[{bad}] must be finite and >= 0 (0 = market), got {prices[bad]}")
        cids: list[str] = []
        symbols: list[str] = []
        accounts: list[str] = []
        seen: set[str] = set()
        for start in range(0, n, _VALIDATION_CHUNK):
            stop = min(start + _VALIDATION_CHUNK, n)
            chunk = codec.column(request.client_order_ids[start:stop], "client_order_ids", True, start)
            seen.update(chunk)
            if len(seen) != stop:
                raise InvalidArgument("client_order_ids must be unique within a batch")
            cids += chunk
            symbols += codec.column(request.symbols[start:stop], "symbols", True, start)
            accounts += codec.column(request.accounts[start:stop], "accounts", False, start)
            if stop < n:
                yield
        check_accounts(self.engine, accounts, self.default_account)
        return _OrderRows(cids, accounts, symbols, np.where(sides == risk_pb2.BUY, 1, -1).astype(np.int8),
                          quantities, prices)

    def _submit_chunk(self, rows: _OrderRows, start: int, stop: int, effects: Effects) -> int:
        """Apply rows ``start:stop`` in sequence (repeats answered again); return how many were new orders."""
        cids = rows.cids[start:stop]
        default = self.default_account
        accounts = [name or default for name in rows.accounts[start:stop]]
        symbols = rows.symbols[start:stop]
        sides, quantities, prices = rows.sides[start:stop], rows.quantities[start:stop], rows.prices[start:stop]
        side_list, quantity_list, price_list = sides.tolist(), quantities.tolist(), prices.tolist()
        codes = rows.codes[start:stop]
        answers, answers_before = self._answers, self._answers_before
        fresh = []
        for i, cid in enumerate(cids):
            known = answers.get(cid)
            if known is None:
                known = answers_before.get(cid)
                if known is None:
                    fresh.append(i)
                    continue
            same = known[:5] == (accounts[i], symbols[i], side_list[i], quantity_list[i], price_list[i])
            if same:
                codes[i] = known[5]
            else:
                codes[i] = codec.DUPLICATE_ID
                effects.duplicate_id()
        if not fresh:
            return 0
        engine = self.engine
        picked = np.asarray(fresh, dtype=np.intp)
        account_ids = _ids([accounts[i] for i in fresh], engine.account_id)
        symbol_ids = _ids([symbols[i] for i in fresh], engine.symbol_id)
        order_ids = np.arange(self._next_id, self._next_id + len(fresh), dtype=np.int64)
        row_prices = prices[picked]
        result = engine.submit_batch(order_ids, account_ids, symbol_ids, sides[picked], quantities[picked],
                                     row_prices, market=row_prices == 0)
        self._next_id += len(fresh)
        codes[picked] = result
        for i, oid, code in zip(fresh, order_ids.tolist(), result.tolist()):
            cid = cids[i]
            answers[cid] = (accounts[i], symbols[i], side_list[i], quantity_list[i], price_list[i], code)
            if code == 0:
                self._order_ids[cid] = oid
        effects.batch(result)
        return len(fresh)

    def modify_order(self, request: risk_pb2.ModifyRequest) -> risk_pb2.CheckResponse:
        cid = codec.text(request.client_order_id, "client_order_id")
        quantity, price = codec.quantity(request.quantity), codec.price(request)
        self._tick()
        order_id = check_order(self.engine, self._order_ids.get(cid, -1), cid)
        started = time.perf_counter_ns()
        decision = self.engine.modify(order_id, quantity, price)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        response = self._order_answer(decision, cid, order_id)
        if decision.accepted:
            self._record("modify", JournalRecord.Modify(client_order_id=cid, quantity=quantity, price=price))
        return response

    def _apply_modify(self, command: JournalRecord.Modify) -> None:
        self.engine.modify(self._order_ids.get(command.client_order_id, -1), command.quantity,
                           command.price if command.HasField("price") else None)

    def request_cancel(self, request: risk_pb2.CancelRequest) -> risk_pb2.CheckResponse:
        cid = codec.text(request.client_order_id, "client_order_id")
        self._tick()
        order_id = check_order(self.engine, self._order_ids.get(cid, -1), cid)
        decision = self.engine.request_cancel(order_id)
        if decision.accepted:
            # Accepted cancel requests count against the cancel rate window: state.
            self._record("cancel_request", JournalRecord.CancelRequest(client_order_id=cid))
        return self._order_answer(decision, cid, order_id)

    def _apply_cancel_request(self, command: JournalRecord.CancelRequest) -> None:
        self.engine.request_cancel(self._order_ids.get(command.client_order_id, -1))

    def _order_answer(self, decision: Decision, cid: str, order_id: int) -> risk_pb2.CheckResponse:
        """The answer to a modify or cancel request; a rejection naming a symbol looks it up from the order."""
        if decision.code in codec.NAMED and decision.code != Reason.UNKNOWN_ORDER:
            order = self.engine.order(order_id)
            return codec.answer(decision, cid, order.account, order.symbol)
        return codec.answer(decision, cid)

    # ----------------------------------------------------------- events

    def report_fill(self, request: risk_pb2.Fill) -> risk_pb2.FillAck:
        """Apply a fill; ``applied`` is False when its exec id was seen before.

        A fill for an order this service does not know (never booked, or
        forgotten after its day rolls) with symbol and side (and account, empty
        meaning the default account) is booked as a fill without an order: a
        fill is never lost.
        """
        codec.bounded(request.client_order_id, "client_order_id")
        codec.text(request.exec_id, "exec_id")
        codec.bounded(request.account, "account")
        codec.bounded(request.symbol, "symbol")
        side = 0 if request.side == risk_pb2.SIDE_UNSPECIFIED else codec.side(request.side)
        codec.quantity(request.quantity)
        if not (math.isfinite(request.price) and request.price > 0):
            raise InvalidArgument(f"price must be finite and > 0, got {request.price}")
        cid = request.client_order_id
        if cid:
            check_order(self.engine, self._order_ids.get(cid), cid)
        command = JournalRecord.Fill(client_order_id=cid, exec_id=request.exec_id, account=request.account,
                                     symbol=request.symbol, side=side, quantity=request.quantity,
                                     price=request.price)
        self._tick()
        try:
            applied = self._fill(command)
        except CapacityError as error:
            self._over_capacity("fill", command)
            raise OverCapacity(str(error)) from None
        (self._filled if applied else self._duplicate_fill).inc()
        if applied:
            self._record("fill", command)
            self.publish_engine_events()
        return risk_pb2.FillAck(applied=applied)

    def _fill(self, command: JournalRecord.Fill) -> bool:
        """Apply a fill (live and replayed alike); False for a seen exec id."""
        cid = command.client_order_id
        order_id = self._order_ids.get(cid) if cid else None
        if order_id is not None:
            try:
                return self.engine.on_fill(order_id, command.quantity, command.price, command.exec_id)
            except UnknownOrderError:
                pass  # the kernel forgot the order: book it from the fill's own fields below
        if not (command.symbol and command.side):
            if not cid:
                raise InvalidArgument("client_order_id is required, or symbol and side to book a fill without "
                                     "an order")
            raise KeyError(f"unknown client_order_id {shown(cid)} (never booked, or forgotten after two day "
                           f"rolls); give symbol and side (and account) to book the fill without an order")
        return self.engine.book_fill(self.account(command.account), command.symbol, command.side,
                                     command.quantity, command.price, command.exec_id)

    def report_fills(self, request: risk_pb2.FillBatch) -> risk_pb2.FillBatchAck:
        """Apply a columnar batch of fills of booked orders at once (replay and direct calls)."""
        return _run(self._report_fills(request))

    async def report_fills_chunked(self, request: risk_pb2.FillBatch, max_rows: int) -> risk_pb2.FillBatchAck:
        """Apply a batch of at most ``max_rows`` fills, serving other calls between its chunks.

        Validated whole before any row is applied. Should a day roll between two
        chunks forget an order of a later row, that row is NOT_FOUND and the
        rows before it stay applied; resending the batch is safe (fills are
        idempotent on exec_id).
        """
        codec.check_batch_rows(request, max_rows)
        return await _run_yielding(self._report_fills(request))

    def _report_fills(self, request: risk_pb2.FillBatch) -> Generator[None, None, risk_pb2.FillBatchAck]:
        n = len(request.client_order_ids)
        for field in ("exec_ids", "quantities", "prices"):
            if len(getattr(request, field)) != n:
                raise InvalidArgument(f"{field} has {len(getattr(request, field))} rows, client_order_ids has {n}")
        cids = codec.column(request.client_order_ids, "client_order_ids", required=True)
        exec_ids = codec.column(request.exec_ids, "exec_ids", required=True)
        quantities = list(request.quantities)
        quantity_array = np.asarray(quantities, dtype=np.int64)
        if (bad := codec.first_true((quantity_array <= 0) | (quantity_array > codec.MAX_QUANTITY))) >= 0:
            raise InvalidArgument(f"quantities[{bad}] must be in 1..{codec.MAX_QUANTITY}, got {quantities[bad]}")
        prices = list(request.prices)
        price_array = np.asarray(prices, dtype=np.float64)
        if (bad := codec.first_true(~np.isfinite(price_array) | (price_array <= 0))) >= 0:
            raise InvalidArgument(f"prices[{bad}] must be finite and > 0, got {prices[bad]}")
        self._order_ids_of(cids)  # every row's order is known before any row is applied
        applied: list[bool] = []
        for start in range(0, n, BATCH_CHUNK):
            stop = min(start + BATCH_CHUNK, n)
            order_ids = self._order_ids_of(cids[start:stop], start)
            self._tick()
            chunk: list[bool] = []
            try:
                self._fill_rows(order_ids, quantities[start:stop], prices[start:stop], exec_ids[start:stop], chunk)
            except CapacityError as error:
                # Rows before this one are applied and its account is halted: journal the chunk, whose
                # replay stops at the same row.
                row = start + len(chunk)
                self._over_capacity("fill_batch", _fill_batch(cids, exec_ids, quantities, prices, start, stop))
                raise OverCapacity(f"client_order_ids[{row}] {shown(cids[row])}: {error}; the rows before it "
                                   f"were applied, none after it") from None
            applied.extend(chunk)
            count = sum(chunk)
            self._filled.inc(count)
            self._duplicate_fill.inc(len(chunk) - count)
            if count:
                if self.journal is not None:  # built for the journal only
                    self._record("fill_batch", _fill_batch(cids, exec_ids, quantities, prices, start, stop))
                self.publish_engine_events()
            if stop < n:
                yield
        return risk_pb2.FillBatchAck(applied=applied)

    def _fill_rows(self, order_ids: list[int], quantities, prices, exec_ids, applied: list[bool]) -> None:
        """Apply fills of booked orders in sequence, appending to ``applied`` as each is (rows before a
        CapacityError stay applied)."""
        on_fill = self.engine.on_fill
        for oid, q, p, x in zip(order_ids, quantities, prices, exec_ids):
            applied.append(on_fill(oid, q, p, x))

    def _apply_fill_batch(self, command: JournalRecord.FillBatch) -> None:
        self._fill_rows(self._order_ids_of(list(command.client_order_ids)), command.quantities, command.prices,
                        command.exec_ids, [])

    def _over_capacity(self, command: str, message) -> None:
        """Journal a command the kernel refused for capacity (its halt is state) and publish the breach."""
        self._record(command, message)
        self.publish_engine_events()

    def _order_ids_of(self, cids: list[str], first_row: int = 0) -> list[int]:
        """Kernel ids of the orders ``cids`` name; KeyError naming the first unknown one."""
        known = self._order_ids
        order_ids = [known.get(cid) for cid in cids]
        if None in order_ids:
            row = order_ids.index(None)
            applied = f"; rows before {first_row + row} were applied" if first_row else ""
            raise KeyError(f"unknown client_order_id {shown(cids[row])} (client_order_ids[{first_row + row}]; "
                           f"fills without a known order go to ReportFill with symbol and side){applied}")
        return check_orders(self.engine, order_ids, cids)

    def report_order_event(self, request: risk_pb2.OrderEvent) -> risk_pb2.OrderEventAck:
        """Apply a venue cancel, expiry or reject; ``applied`` False if the order was no longer working."""
        cid = codec.text(request.client_order_id, "client_order_id")
        kind = records.EVENT_KINDS.get(request.kind)
        if kind is None:
            raise InvalidArgument("kind must be CANCELLED, EXPIRED or REJECTED")
        if check_order(self.engine, self._order_ids.get(cid), cid) is None:
            raise KeyError(f"unknown client_order_id {shown(cid)}")
        command = JournalRecord.OrderEvent(client_order_id=cid, kind=kind)
        self._tick()
        applied = self._apply_order_event(command)
        if applied:
            self._record("order_event", command)
        return risk_pb2.OrderEventAck(applied=applied)

    def _apply_order_event(self, command: JournalRecord.OrderEvent) -> bool:
        handler = getattr(self.engine, _EVENT_HANDLERS[command.kind])
        return handler(self._order_ids[command.client_order_id])

    def update_prices(self, request: risk_pb2.PriceUpdates) -> risk_pb2.PriceUpdatesAck:
        """Apply marks; every row is validated before any is applied."""
        if len(request.symbols) != len(request.prices):
            raise InvalidArgument(f"symbols has {len(request.symbols)} rows, prices has {len(request.prices)}")
        prices = np.asarray(request.prices, dtype=np.float64)
        if (bad := codec.first_true(~np.isfinite(prices) | (prices <= 0))) >= 0:
            raise InvalidArgument(f"prices[{bad}] must be finite and > 0, got {prices[bad]}")
        symbols = codec.column(request.symbols, "symbols", required=True)
        ids = self._symbol_ids(symbols)
        command = JournalRecord.Marks(symbols=symbols, prices=request.prices)
        self._tick()
        try:
            self.engine.update_prices(ids, prices)
        except CapacityError as error:
            # The other rows are applied and the symbol is halted: journal the marks, whose replay does the same.
            self._over_capacity("marks", command)
            raise OverCapacity(str(error)) from None
        self._record("marks", command)
        self.publish_engine_events()
        return risk_pb2.PriceUpdatesAck(applied=len(ids))

    def _symbol_ids(self, symbols: list[str]) -> np.ndarray:
        """Kernel ids of ``symbols``; KeyError naming the first unknown one."""
        symbol_id = self.engine.symbol_id
        return np.fromiter((symbol_id(s) for s in symbols), dtype=np.int32, count=len(symbols))

    def _apply_marks(self, command: JournalRecord.Marks) -> None:
        self.engine.update_prices(self._symbol_ids(list(command.symbols)), np.asarray(command.prices, dtype=np.float64))

    # ------------------------------------------------------------ reads

    def _subtree(self, account: str) -> Optional[set[int]]:
        """Node ids under (and including) ``account``; None for an empty name (the whole firm)."""
        if not codec.bounded(account, "account"):
            return None
        root = self.engine.account_id(account)
        parents = self.engine.aggregates()["parent"].tolist()
        nodes = set()
        for node in range(len(parents)):
            walk = node
            while walk >= 0 and walk != root:
                walk = parents[walk]
            if walk == root:
                nodes.add(node)
        return nodes

    def get_positions(self, request: risk_pb2.PositionsRequest) -> risk_pb2.PositionsResponse:
        """Positions of the leaf accounts under ``account`` (empty: the whole firm)."""
        engine = self.engine
        accounts, symbols = engine.accounts, engine.symbols
        only = self._subtree(request.account)
        response = risk_pb2.PositionsResponse()
        for row in engine.positions():
            if only is None or int(row["account"]) in only:
                response.positions.add(
                    account=accounts[row["account"]], symbol=symbols[row["symbol"]], quantity=int(row["quantity"]),
                    average_price=float(row["average_price"]), realized_pnl=float(row["realized"]),
                    unrealized_pnl=float(row["unrealized"]))
        return response

    def get_exposure(self, request: risk_pb2.ExposureRequest) -> risk_pb2.ExposureResponse:
        """The account tree under ``account`` (empty: the whole firm) with its aggregates."""
        engine = self.engine
        names = engine.accounts
        only = self._subtree(request.account)
        response = risk_pb2.ExposureResponse()
        for row in engine.aggregates():
            node = int(row["account"])
            if only is not None and node not in only:
                continue
            long_, short = row["long"] / 1e6, row["short"] / 1e6
            working_buy, working_sell = row["working_buy"] / 1e6, row["working_sell"] / 1e6
            response.accounts.add(
                account=names[node], parent="" if row["parent"] < 0 else names[row["parent"]],
                long_notional=long_, short_notional=short, net_notional=long_ - short,
                gross_notional=long_ + short + working_buy + working_sell, working_buy_notional=working_buy,
                working_sell_notional=working_sell, realized_pnl=row["realized"] / 1e6,
                unrealized_pnl=row["unrealized"] / 1e6, daily_pnl=row["daily_pnl"] / 1e6,
                open_orders=int(row["open_orders"]), state=codec.STATE_TO_WIRE[int(row["state"])])
        return response

    def get_limits(self, request: risk_pb2.LimitsRequest) -> risk_pb2.LimitsResponse:
        """An account's limits; the account is required (the firm by its name)."""
        account = codec.text(request.account, "account")
        engine = self.engine
        limits = engine.limits(account)
        positions = []
        for symbol in engine.symbols:
            max_long, max_short = engine.position_limit(account, symbol)
            if max_long is not None or max_short is not None:
                positions.append((symbol, max_long, max_short))
        return risk_pb2.LimitsResponse(account=account, limits=codec.limits_to_proto(limits, positions))

    # ------------------------------------------------------------ admin

    def set_limits(self, request: risk_pb2.SetLimitsRequest, actor: str) -> risk_pb2.LimitsResponse:
        """Replace an account's node limits and set the given position limits; logged with the actor."""
        account = codec.text(request.account, "account")
        if not request.HasField("limits"):
            raise InvalidArgument("limits is required")
        limits, positions = codec.limits_from_proto(request.limits)
        engine = self.engine
        engine.account_id(account)
        for symbol, _, _ in positions:
            engine.symbol_id(symbol)
        command = records.limits_command(account, limits, positions, actor)
        self._tick()
        self._apply_set_limits(command, self.effects)
        self._record("set_limits", command)
        self.publish_engine_events()
        return self.get_limits(risk_pb2.LimitsRequest(account=account))

    def _apply_set_limits(self, command: JournalRecord.SetLimits, effects: Effects) -> None:
        account = command.account
        limits, positions = codec.limits_from_proto(command)
        self.engine.set_limits(account, limits)
        for symbol, max_long, max_short in positions:
            self.engine.set_position_limit(account, symbol, max_long, max_short)
        effects.limits_changed(account, command.actor, limits, positions)

    def set_trading_state(self, request: risk_pb2.TradingStateRequest, actor: str) -> risk_pb2.TradingStateResponse:
        """The kill switch on an account (the firm by its name) or a symbol; the state is required."""
        account, symbol = codec.bounded(request.account, "account"), codec.bounded(request.symbol, "symbol")
        if account and symbol:
            raise InvalidArgument("give account or symbol, not both")
        engine = self.engine
        if not (account or symbol):
            raise InvalidArgument(f"account or symbol is required (the whole firm is account {engine.accounts[0]!r})")
        state = codec.STATES.get(request.state)
        if state is None:
            name = (risk_pb2.TradingState.Name(request.state) if request.state in risk_pb2.TradingState.values()
                    else request.state)
            raise InvalidArgument(f"state must be ACTIVE, REDUCING or HALTED, got {name}")
        if symbol:
            engine.symbol_id(symbol)
        else:
            engine.account_id(account)
        command = JournalRecord.SetTradingState(account=account, symbol=symbol, state=records.STATES[request.state],
                                                actor=actor)
        self._tick()
        self._apply_trading_state(command, self.effects)
        self._record("set_trading_state", command)
        return risk_pb2.TradingStateResponse(target=symbol or account, state=codec.STATE_TO_WIRE[int(state)])

    def _apply_trading_state(self, command: JournalRecord.SetTradingState, effects: Effects) -> None:
        state = _JOURNAL_STATES[command.state]
        if command.symbol:
            self.engine.set_trading_state(state, symbol=command.symbol)
        else:
            self.engine.set_trading_state(state, account=command.account)
        effects.state_changed(command.account, command.symbol, state, command.actor)

    def roll_day(self) -> None:
        """Start a new trading day: daily P&L baselines, daily-loss states re-armed, old ids forgotten."""
        self._tick()
        self._apply_roll_day(self.effects)
        self._record("roll_day", JournalRecord.RollDay())

    def _apply_roll_day(self, effects: Effects) -> None:
        self.last_roll_ns = self.clock.time_ns
        self.engine.roll_day()
        self._forget_ids()
        effects.day_rolled()

    def _forget_ids(self) -> None:
        """Drop the client order ids of the day before yesterday, except those of orders still working."""
        working = set(self.engine.open_orders()["order_id"].tolist())
        self._order_ids = {cid: oid for cid, oid in self._order_ids.items() if oid in working}
        expired = self._answers_before
        self._answers_before = self._answers
        self._answers = {cid: expired[cid] for cid in self._order_ids if cid in expired}

    def publish_breach(self, breach: risk_pb2.Breach) -> None:
        """To WatchBreaches subscribers and the event stream (``on_breach``)."""
        self.breaches.publish(breach)
        self.on_breach(breach)

    def publish_engine_events(self) -> None:
        """Forward the kernel's breach events (daily loss, throttle) to subscribers and the log (live only:
        replay drops them, they were published when first applied)."""
        for event in self.engine.drain_events():
            log.warning("limit breach", account=event.account, reason=event.reason.name, value=event.value,
                        limit=event.limit)
            self.publish_breach(risk_pb2.Breach(
                time_unix_nano=event.time, account=event.account, symbol=event.symbol or "",
                reason=event.reason.name, value=event.value, limit=event.limit,
                state=codec.STATE_TO_WIRE[int(self.engine.trading_state(event.account))]))

    # ------------------------------------------------ snapshot and replay

    def to_state(self) -> dict:
        """The service's whole state as plain data (engine included)."""
        return {"version": SNAPSHOT_VERSION, "engine": self.engine.to_state(), "order_ids": dict(self._order_ids),
                "answers": dict(self._answers), "answers_before": dict(self._answers_before),
                "next_id": self._next_id, "last_roll_ns": self.last_roll_ns, "clock_ns": self.clock.time_ns}

    def restore(self, state: dict) -> None:
        """Replace the state with a :meth:`to_state` snapshot."""
        if state.get("version") != SNAPSHOT_VERSION:
            # An earlier release's journal: its records mean other things (TradingState was renumbered
            # when TRADING_STATE_UNSPECIFIED became 0), so it is refused, never replayed.
            raise JournalError(f"the journal's snapshot has service state version {state.get('version')!r}, written "
                               f"by another release; this one reads {SNAPSHOT_VERSION}: start on a new [state] path")
        self.clock.time_ns = state["clock_ns"]
        self.engine = RiskEngine.from_state(state["engine"], clock=self.clock)
        self.engine.reserve_orders(self.order_capacity)
        self.metrics.bind_engine(self.engine)
        self._order_ids = dict(state["order_ids"])
        self._answers = dict(state["answers"])
        self._answers_before = dict(state["answers_before"])
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

    def replay(self, records_in: Iterable[tuple[int, int, int, bytes]]) -> int:
        """Apply journaled commands at their recorded times, without journaling them again; return how many.

        Notes
        -----
        Recovery runs a million records through here: the loop is kept to a
        table lookup, a parse and the handler per record.
        """
        applied = 0
        clock = self.clock
        decode = records.decode
        try:
            for seq, time_ns, kind, payload in records_in:
                record = decode(seq, kind, payload)
                self.last_seq = seq
                if time_ns > clock.time_ns:
                    clock.time_ns = time_ns
                command = record.WhichOneof("command")
                apply = _APPLY.get(command)
                if apply is None:
                    raise JournalError(f"journal record {seq} holds no command")
                try:
                    apply(self, getattr(record, command))
                except (CapacityError, OverCapacity):
                    pass  # refused for capacity when first applied too, and journaled for the halt it made
                applied += 1
        finally:
            self.engine.drain_events()  # breaches were published when first applied
        return applied


# What replay runs for each command: the apply step live calls run too, with no effects.
_APPLY: dict[str, Callable[[RiskService, Any], object]] = {
    "submit": RiskService._apply_submit,
    "submit_batch": RiskService._apply_submit_batch,
    "modify": RiskService._apply_modify,
    "cancel_request": RiskService._apply_cancel_request,
    "fill": RiskService._fill,
    "fill_batch": RiskService._apply_fill_batch,
    "order_event": RiskService._apply_order_event,
    "marks": RiskService._apply_marks,
    "set_limits": lambda self, command: self._apply_set_limits(command, NO_EFFECTS),
    "set_trading_state": lambda self, command: self._apply_trading_state(command, NO_EFFECTS),
    "roll_day": lambda self, command: self._apply_roll_day(NO_EFFECTS),
}


def _fill_batch(cids: list[str], exec_ids: list[str], quantities: list[int], prices: list[float], start: int,
                stop: int) -> JournalRecord.FillBatch:
    """The FillBatch command of rows ``start:stop``."""
    return JournalRecord.FillBatch(client_order_ids=cids[start:stop], exec_ids=exec_ids[start:stop],
                                   quantities=quantities[start:stop], prices=prices[start:stop])


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
