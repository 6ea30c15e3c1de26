"""The risk service's data plane: one kernel engine and what the wire needs around it.

The gRPC servicer validates requests and calls these methods; every state
change goes through here, so this is where durability, metrics and breach
events attach. Client order ids (strings) map to the kernel's integer ids;
a repeated client order id gets its original answer (submits are idempotent).
All methods run on the event loop thread: the engine is single-threaded.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from riskcore import Decision, Limits, Reason, RiskEngine, TradingState
from services.common.logging import get_logger
from services.proto import risk_pb2
from services.risk.breaches import BreachHub
from services.risk.metrics import RiskMetrics

log = get_logger("risk")


class RiskService:
    """Pre-trade decisions, order and fill events, marks and admin changes.

    Parameters
    ----------
    engine : RiskEngine
    default_account : str
        Account used when a request leaves it empty.
    metrics : RiskMetrics
    """

    def __init__(self, engine: RiskEngine, default_account: str, metrics: RiskMetrics):
        self.engine = engine
        self.default_account = default_account
        self.metrics = metrics
        self.breaches = BreachHub(on_drop=metrics.breaches_dropped.inc)
        self._order_ids: dict[str, int] = {}
        self._answers: dict[str, Decision | int] = {}
        self._next_id = 1

    # ----------------------------------------------------------- decisions

    def account(self, name: str) -> str:
        return name or self.default_account

    def check(self, account: str, symbol: str, side: int, quantity: int, price: Optional[float]) -> Decision:
        """A what-if check; changes nothing."""
        started = time.perf_counter_ns()
        decision = self.engine.check(self.account(account), symbol, side, quantity, price)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        return decision

    def submit(self, client_order_id: str, account: str, symbol: str, side: int, quantity: int,
               price: Optional[float]) -> Decision | int:
        """Check and reserve; a known client order id returns its first answer."""
        answer = self._answers.get(client_order_id)
        if answer is not None:
            return answer
        order_id = self._next_id
        self._next_id += 1
        started = time.perf_counter_ns()
        decision = self.engine.submit(order_id, self.account(account), symbol, side, quantity, price)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        if decision.accepted:
            self._order_ids[client_order_id] = order_id
        self._answers[client_order_id] = decision
        return decision

    def submit_batch(self, client_order_ids: list[str], accounts: list[str], symbols: list[str],
                     sides: np.ndarray, quantities: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """Submit a columnar batch in sequence; returns a reason code per row."""
        n = len(client_order_ids)
        codes = np.zeros(n, dtype=np.uint8)
        answers = self._answers
        fresh = np.fromiter((cid not in answers for cid in client_order_ids), dtype=bool, count=n)
        for i in np.flatnonzero(~fresh):
            known = answers[client_order_ids[i]]
            codes[i] = known if isinstance(known, int) else known.code
        rows = np.flatnonzero(fresh)
        if rows.size:
            engine = self.engine
            account_ids = _ids([self.account(accounts[i]) for i in rows], engine.account_id)
            symbol_ids = _ids([symbols[i] for i in rows], engine.symbol_id)
            order_ids = np.arange(self._next_id, self._next_id + rows.size, dtype=np.int64)
            self._next_id += rows.size
            row_prices = prices[rows]
            result = engine.submit_batch(order_ids, account_ids, symbol_ids, sides[rows], quantities[rows],
                                         row_prices, market=row_prices == 0)
            codes[rows] = result
            for i, oid, code in zip(rows.tolist(), order_ids.tolist(), result.tolist()):
                cid = client_order_ids[i]
                answers[cid] = code
                if code == 0:
                    self._order_ids[cid] = oid
            self.metrics.batch(np.bincount(result, minlength=len(Reason)))
        return codes

    def modify(self, client_order_id: str, quantity: int, price: Optional[float]) -> Decision:
        order_id = self._order_ids.get(client_order_id, -1)
        started = time.perf_counter_ns()
        decision = self.engine.modify(order_id, quantity, price)
        self.metrics.decision(decision.code, (time.perf_counter_ns() - started) / 1e9)
        return decision

    def request_cancel(self, client_order_id: str) -> Decision:
        return self.engine.request_cancel(self._order_ids.get(client_order_id, -1))

    # --------------------------------------------------------------- events

    def fill(self, client_order_id: str, exec_id: str, quantity: int, price: float,
             account: str = "", symbol: str = "", side: int = 0) -> bool:
        """Apply a fill; False when its exec id was seen before.

        A fill for an order this service never booked needs account, symbol and
        side, and is booked as a fill without an order (never lost).

        Raises
        ------
        KeyError
            Unknown order and no account/symbol/side to book it on.
        """
        order_id = self._order_ids.get(client_order_id)
        if order_id is not None:
            applied = self.engine.on_fill(order_id, quantity, price, exec_id)
        elif account and symbol and side:
            applied = self.engine.book_fill(account, symbol, side, quantity, price, exec_id)
        else:
            raise KeyError(f"unknown client_order_id {client_order_id!r}; give account, symbol and side "
                           f"to book a fill without an order")
        self.metrics.fills.labels("applied" if applied else "duplicate").inc()
        self.publish_engine_events()
        return applied

    def order_event(self, client_order_id: str, kind: str) -> bool:
        """Apply a venue cancel, expiry or reject; False if the order was no longer working."""
        order_id = self._order_ids.get(client_order_id)
        if order_id is None:
            raise KeyError(f"unknown client_order_id {client_order_id!r}")
        handler = {"cancel": self.engine.on_cancel, "expire": self.engine.on_expire,
                   "reject": self.engine.on_reject}[kind]
        return handler(order_id)

    def update_prices(self, symbols: list[str], prices: np.ndarray) -> int:
        """Apply marks; every row is validated before any is applied."""
        engine = self.engine
        ids = np.fromiter((engine.symbol_id(s) for s in symbols), dtype=np.int32, count=len(symbols))
        engine.update_prices(ids, prices)
        self.publish_engine_events()
        return len(symbols)

    # ---------------------------------------------------------------- admin

    def set_limits(self, account: str, limits: Limits, position_limits: list[tuple[str, Optional[int], Optional[int]]],
                   actor: str) -> None:
        """Replace an account's limits (and the given position limits); logged with the actor."""
        account = self.account(account)
        self.engine.account_id(account)
        for symbol, _, _ in position_limits:
            self.engine.symbol_id(symbol)
        self.engine.set_limits(account, limits)
        for symbol, max_long, max_short in position_limits:
            self.engine.set_position_limit(account, symbol, max_long, max_short)
        log.info("limits changed", account=account, actor=actor, limits=limits.as_dict(),
                 position_limits=position_limits)
        self.publish_engine_events()

    def set_trading_state(self, account: str, symbol: str, state: TradingState, actor: str) -> str:
        """Set the kill switch on an account, a symbol or (neither) the firm; return the target."""
        if symbol:
            self.engine.set_trading_state(state, symbol=symbol)
            target = symbol
        else:
            target = account or self.engine.accounts[0]
            self.engine.set_trading_state(state, account=target)
        log.warning("trading state changed", target=target, state=state.name, actor=actor)
        self.breaches.publish(risk_pb2.Breach(
            time_unix_nano=time.time_ns(), account="" if symbol else target, symbol=symbol,
            reason="STATE_CHANGE", state=int(state), actor=actor))
        return target

    def publish_engine_events(self) -> None:
        """Forward the kernel's breach events (daily loss, throttle) to subscribers and the log."""
        for event in self.engine.drain_events():
            # Daily-loss figures are money (micro-units in the kernel); throttle figures are fill counts.
            scale = 1e6 if event.reason == Reason.DAILY_LOSS_LIMIT else 1.0
            value, limit = event.value / scale, event.limit / scale
            log.warning("limit breach", account=event.account, reason=event.reason.name, value=value, limit=limit)
            self.breaches.publish(risk_pb2.Breach(
                time_unix_nano=event.time, account=event.account, symbol=event.symbol or "",
                reason=event.reason.name, value=value, limit=limit,
                state=int(self.engine.trading_state(event.account))))


def _ids(names: list[str], lookup) -> np.ndarray:
    """Integer ids of names; unknown names get -1 (the kernel answers UNKNOWN_*)."""
    cache: dict[str, int] = {}
    out = np.empty(len(names), dtype=np.int32)
    for i, name in enumerate(names):
        sid = cache.get(name)
        if sid is None:
            try:
                sid = lookup(name)
            except KeyError:
                sid = -1
            cache[name] = sid
        out[i] = sid
    return out
