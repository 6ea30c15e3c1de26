"""What the durable-state tests share: engines in child processes, a NATS server,
traders that record every acknowledgement, and an independent position model.

The model (:class:`Book`) is the README's "Positions and P&L" section in
integers: quantities, prices in ticks, money (cost included) in micro-units. A test compares the
engine's answers, converted back to those integers, with the book built from
the acknowledgements the test received, so "equal" means exactly equal.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
import random
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskcore_services.proto import risk_pb2, risk_pb2_grpc
from riskcore_services.testing import Children, ServerProcess, wait_until

# Seconds allowed for any single RPC or HTTP request in these tests.
DEADLINE = 5.0
# Seconds allowed for a child engine to log something or exit.
START_TIMEOUT = 30.0

BUY, SELL = risk_pb2.BUY, risk_pb2.SELL
# Reconnect within tens of milliseconds of an engine coming (back) up, not after gRPC's default 1 s+ backoff.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.min_reconnect_backoff_ms", 20),
                  ("grpc.max_reconnect_backoff_ms", 100)]
# Calls that fail with these codes may or may not have reached the engine: they are "in flight".
OUTAGE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
          grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


@dataclasses.dataclass(frozen=True)
class Spec:
    """An instrument as the model sees it: integer ticks and micro-units."""

    tick_size: float
    multiplier: float
    reference_ticks: int
    buy_ticks: tuple[int, int]   # limit prices of generated buys (all below every sell)
    sell_ticks: tuple[int, int]
    fill_ticks: tuple[int, int]
    max_quantity: int

    @property
    def tick_value(self) -> int:
        return round(self.tick_size * self.multiplier * 1e6)

    def price(self, ticks: int) -> float:
        return ticks * self.tick_size

    def ticks(self, price: float) -> int:
        return round(price / self.tick_size)


INSTRUMENTS = {
    "AAPL": Spec(0.01, 1.0, 19000, (18800, 18995), (19005, 19200), (18900, 19100), 400),
    "MSFT": Spec(0.01, 1.0, 42000, (41700, 41990), (42010, 42300), (41800, 42200), 300),
    "ESZ6": Spec(0.25, 50.0, 24000, (23900, 23998), (24002, 24100), (23950, 24050), 15),
}
TRADERS = ("t0", "t1", "t2", "t3")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


def write_config(directory: pathlib.Path, state: dict, name: str = "riskcore.toml") -> pathlib.Path:
    """A configuration with the test instruments, a desk of traders, generous limits and this ``[state]``."""
    lines = ["[engine]", 'firm = "FIRM"', 'default_account = "t0"', "",
             "[logging]", 'level = "info"', 'requests = "errors"', "", "[state]"]
    lines += [f"{key} = {_toml(value)}" for key, value in state.items()]
    for symbol, spec in INSTRUMENTS.items():
        lines += ["", "[[instruments]]", f'symbol = "{symbol}"', f"tick_size = {spec.tick_size!r}",
                  f"multiplier = {spec.multiplier!r}", f"reference_price = {spec.price(spec.reference_ticks)!r}"]
    lines += ["", "[[accounts]]", 'name = "FIRM"', "[accounts.limits]", "max_gross_notional = 1.0e12",
              "", "[[accounts]]", 'name = "desk"', 'parent = "FIRM"', "[accounts.limits]",
              "max_gross_notional = 1.0e12", "max_order_quantity = 1000000"]
    for trader in TRADERS:
        lines += ["", "[[accounts]]", f'name = "{trader}"', 'parent = "desk"', "[accounts.limits]",
                  "max_order_notional = 1.0e11"]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ child engines

class Engine(ServerProcess):
    """``python -m riskcore_services.risk`` in a child process, restartable on the same ports."""

    def __init__(self, directory: pathlib.Path, config: pathlib.Path, name: str = "engine"):
        super().__init__(name, directory, config)
        self._health: health_pb2_grpc.HealthStub | None = None

    def start(self) -> "Engine":
        self._health = None
        return super().start()

    def wait_refusal(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the engine to exit; fail at once (naming its output) if it starts serving instead."""
        def over():
            if not self.running():
                return True
            if self.events("risk engine started"):
                raise AssertionError(f"{self.name} started instead of refusing:\n{self.output(4000)}")
            return False
        wait_until(over, timeout, f"{self.name} to exit")
        return self.process.returncode

    def stub(self) -> risk_pb2_grpc.RiskEngineStub:
        return risk_pb2_grpc.RiskEngineStub(self.channel(options=FAST_RECONNECT))

    def health(self) -> int | None:
        """gRPC health of the whole server (SERVING=1, NOT_SERVING=2), None while unreachable."""
        if self._health is None:
            self._health = health_pb2_grpc.HealthStub(self.channel(options=FAST_RECONNECT))
        try:
            return self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0).status
        except grpc.RpcError:
            return None


@pytest.fixture
def engines(tmp_path):
    """Make child engines: ``engines(config, name)``, started with ``.start()``; every one is killed at teardown."""
    with Children(tmp_path) as children:
        yield lambda config, name="engine": children.add(Engine(tmp_path, config, name))


# ------------------------------------------------------------------ the model

@dataclasses.dataclass
class _Order:
    account: str
    symbol: str
    side: int
    price_ticks: int
    remaining: int


class Book:
    """Positions, P&L and working orders implied by a sequence of events (README "Risk model").

    Per (account, symbol): ``[pos, cost, realized]``, cost and realized in micro-units.
    """

    def __init__(self):
        self.orders: dict[str, _Order] = {}
        self.answers: dict[str, bool] = {}
        self.positions: dict[tuple[str, str], list[int]] = {}
        self.exec_ids: set[str] = set()

    def copy(self) -> "Book":
        return copy.deepcopy(self)

    def submit(self, cid: str, account: str, symbol: str, side: int, quantity: int, price: float,
               accepted: bool) -> None:
        if cid in self.answers:
            return
        self.answers[cid] = accepted
        if accepted:
            spec = INSTRUMENTS[symbol]
            self.orders[cid] = _Order(account, symbol, side, spec.ticks(price), quantity)

    def fill(self, exec_id: str, quantity: int, price: float, cid: str = "", account: str = "",
             symbol: str = "", side: int = 0) -> bool:
        if exec_id in self.exec_ids:
            return False
        self.exec_ids.add(exec_id)
        order = self.orders.get(cid)
        if order is not None:
            account, symbol, side = order.account, order.symbol, order.side
            order.remaining = max(0, order.remaining - quantity)
        spec = INSTRUMENTS[symbol]
        slot = self.positions.setdefault((account, symbol), [0, 0, 0])
        pos, cost, realized = slot
        s, p, tv = side * quantity, spec.ticks(price), spec.tick_value
        if pos == 0 or (s > 0) == (pos > 0):
            pos, cost = pos + s, cost + s * p * tv
        else:
            closed = min(abs(s), abs(pos))
            removed = _tdiv(cost * closed, abs(pos))
            sign = 1 if pos > 0 else -1
            realized += sign * closed * p * tv - removed
            cost -= removed
            pos += (1 if s > 0 else -1) * closed
            rest = abs(s) - closed
            if rest:
                pos, cost = (1 if s > 0 else -1) * rest, (1 if s > 0 else -1) * rest * p * tv
        slot[:] = [pos, cost, realized]
        return True

    # What GetPositions and GetExposure should say, as integers.

    def expected_positions(self, account: str | None = None) -> dict:
        out = {}
        for (acc, symbol), (pos, cost, realized) in self.positions.items():
            if account is not None and acc != account:
                continue
            spec = INSTRUMENTS[symbol]
            if pos or realized:
                out[(acc, symbol)] = (pos, cost, realized, pos * spec.reference_ticks * spec.tick_value - cost)
        return out

    def expected_working(self, account: str) -> tuple[int, int, int]:
        """(open orders, working buy notional, working sell notional in micro-units) of a leaf account."""
        count = buy = sell = 0
        for order in self.orders.values():
            if order.account == account and order.remaining > 0:
                count += 1
                notional = order.remaining * order.price_ticks * INSTRUMENTS[order.symbol].tick_value
                if order.side > 0:
                    buy += notional
                else:
                    sell += notional
        return count, buy, sell

    def realized(self, account: str) -> int:
        return sum(r for (acc, _), (_, _, r) in self.positions.items() if acc == account)


def _tdiv(a: int, b: int) -> int:
    """Integer division truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _side_sign(side: int) -> int:
    return 1 if side == BUY else -1


def apply_request(book: Book, method: str, request, response=None) -> None:
    """Apply one request to ``book`` with the engine's ``response`` (None: as if it was applied, all accepted).

    Fills are applied once per exec id whatever the response says, which is what
    "exactly once" means for a re-sent fill that was already durable.
    """
    if method == "SubmitOrder":
        book.submit(request.client_order_id, request.account, request.symbol, _side_sign(request.side),
                    request.quantity, request.price, True if response is None else response.accepted)
    elif method == "SubmitOrders":
        for i, cid in enumerate(request.client_order_ids):
            accepted = True if response is None else response.reason_codes[i] == 0
            book.submit(cid, request.accounts[i], request.symbols[i], _side_sign(request.sides[i]),
                        request.quantities[i], request.prices[i], accepted)
    elif method == "ReportFill":
        book.fill(request.exec_id, request.quantity, request.price, request.client_order_id, request.account,
                  request.symbol, _side_sign(request.side) if request.side else 0)
    elif method == "ReportFills":
        for cid, exec_id, quantity, price in zip(request.client_order_ids, request.exec_ids, request.quantities,
                                                 request.prices):
            book.fill(exec_id, quantity, price, cid)
    else:
        raise ValueError(method)


def observed_positions(stub, account: str | None = None) -> dict:
    """GetPositions as ``{(account, symbol): (qty, cost micros, realized micros, unrealized micros)}``."""
    out = {}
    for p in stub.GetPositions(risk_pb2.PositionsRequest(account=account or ""), timeout=DEADLINE).positions:
        spec = INSTRUMENTS[p.symbol]
        cost = round(p.average_price * p.quantity / spec.tick_size * spec.tick_value) if p.quantity else 0
        realized = round(p.realized_pnl * 1e6)
        if p.quantity or realized:
            out[(p.account, p.symbol)] = (p.quantity, cost, realized, round(p.unrealized_pnl * 1e6))
    return out


def observed_working(stub) -> dict[str, tuple[int, int, int]]:
    """GetExposure as ``{account: (open orders, working buy micros, working sell micros)}``."""
    rows = stub.GetExposure(risk_pb2.ExposureRequest(), timeout=DEADLINE).accounts
    return {r.account: (r.open_orders, round(r.working_buy_notional * 1e6), round(r.working_sell_notional * 1e6))
            for r in rows}


def observed_realized(stub) -> dict[str, int]:
    rows = stub.GetExposure(risk_pb2.ExposureRequest(), timeout=DEADLINE).accounts
    return {r.account: round(r.realized_pnl * 1e6) for r in rows}


def account_state(stub, account: str) -> tuple:
    """Everything the tests compare for one leaf account, from the engine."""
    return observed_positions(stub, account), observed_working(stub)[account], observed_realized(stub)[account]


def expected_state(book: Book, account: str) -> tuple:
    return book.expected_positions(account), book.expected_working(account), book.realized(account)


# ------------------------------------------------------------------ traders

class Trader:
    """One strategy streaming orders and fills for its own account at full speed.

    Every acknowledged request goes into :attr:`book` (in the order the engine
    answered) and :attr:`acked`; the request that was on the wire when the
    engine went away is :attr:`in_flight` until :meth:`resend_in_flight`.
    Accounts are disjoint, so one trader's events commute with the others'.
    """

    def __init__(self, account: str, seed: int):
        self.account = account
        self.rng = random.Random(seed)
        self.book = Book()
        self.acked: list[tuple[str, object, object]] = []
        self.in_flight: tuple[str, object] | None = None
        self.error: BaseException | None = None
        self._working: dict[str, int] = {}   # acked working orders -> remaining, to pick fills from
        self._count = 0
        self._thread: threading.Thread | None = None

    # -- request generation

    def _id(self, prefix: str) -> str:
        self._count += 1
        return f"{self.account}-{prefix}{self._count}"

    def _order(self):
        symbol = self.rng.choice(list(INSTRUMENTS))
        spec = INSTRUMENTS[symbol]
        side = self.rng.choice((BUY, SELL))
        ticks = self.rng.randint(*(spec.buy_ticks if side == BUY else spec.sell_ticks))
        return self._id("o"), symbol, side, self.rng.randint(1, spec.max_quantity), spec.price(ticks)

    def _fill_price(self, symbol: str) -> float:
        spec = INSTRUMENTS[symbol]
        return spec.price(self.rng.randint(*spec.fill_ticks))

    def _symbol_of(self, cid: str) -> str:
        return self.book.orders[cid].symbol

    def _fill_quantity(self, cid: str) -> int:
        # Half the fills complete their order, so the working set stays small.
        remaining = self._working[cid]
        return remaining if self.rng.random() < 0.5 else self.rng.randint(1, remaining)

    def next_request(self) -> tuple[str, object]:
        roll = self.rng.random()
        working = list(self._working)
        if roll < 0.25 or not working:
            cid, symbol, side, quantity, price = self._order()
            return "SubmitOrder", risk_pb2.OrderRequest(client_order_id=cid, account=self.account, symbol=symbol,
                                                        side=side, quantity=quantity, price=price)
        if roll < 0.40:
            batch = risk_pb2.OrderBatch()
            for _ in range(self.rng.randint(2, 8)):
                cid, symbol, side, quantity, price = self._order()
                batch.client_order_ids.append(cid)
                batch.accounts.append(self.account)
                batch.symbols.append(symbol)
                batch.sides.append(side)
                batch.quantities.append(quantity)
                batch.prices.append(price)
            return "SubmitOrders", batch
        if roll < 0.65:
            cid = self.rng.choice(working)
            quantity = self._fill_quantity(cid)
            return "ReportFill", risk_pb2.Fill(client_order_id=cid, exec_id=self._id("x"), quantity=quantity,
                                               price=self._fill_price(self._symbol_of(cid)))
        if roll < 0.95:
            batch = risk_pb2.FillBatch()
            for cid in self.rng.sample(working, min(len(working), self.rng.randint(2, 6))):
                batch.client_order_ids.append(cid)
                batch.exec_ids.append(self._id("x"))
                batch.quantities.append(self._fill_quantity(cid))
                batch.prices.append(self._fill_price(self._symbol_of(cid)))
            return "ReportFills", batch
        # A fill with no booked order (drop copy): account, symbol and side instead of an order.
        symbol = self.rng.choice(list(INSTRUMENTS))
        return "ReportFill", risk_pb2.Fill(
            exec_id=self._id("x"), quantity=self.rng.randint(1, INSTRUMENTS[symbol].max_quantity),
            price=self._fill_price(symbol), account=self.account, symbol=symbol, side=self.rng.choice((BUY, SELL)))

    # -- acknowledgements

    def _acknowledged(self, method: str, request, response) -> None:
        # Generated orders never break a limit and fills carry fresh exec ids: anything else is an engine bug.
        if method == "SubmitOrder":
            assert response.accepted, f"{request.client_order_id} rejected: {response.reason} {response.message}"
        elif method == "SubmitOrders":
            assert response.accepted == len(request.client_order_ids), f"batch rows rejected: {response}"
        elif method == "ReportFill":
            assert response.applied, f"fresh exec id {request.exec_id} not applied"
        elif method == "ReportFills":
            assert all(response.applied), f"fresh exec ids not applied: {list(response.applied)}"
        self.record(method, request, response)

    def record(self, method: str, request, response) -> None:
        apply_request(self.book, method, request, response)
        self.acked.append((method, request, response))
        if method == "SubmitOrder":
            touched = [request.client_order_id]
        elif method in ("SubmitOrders", "ReportFills"):
            touched = list(request.client_order_ids)
        else:
            touched = [request.client_order_id]
        for cid in touched:
            order = self.book.orders.get(cid)
            if order is not None and order.remaining > 0:
                self._working[cid] = order.remaining
            else:
                self._working.pop(cid, None)

    def run(self, stub, stop: threading.Event) -> None:
        """Send requests one after another until ``stop`` or an outage (which leaves one in flight)."""
        try:
            while not stop.is_set():
                method, request = self.next_request()
                self.in_flight = (method, request)
                try:
                    response = getattr(stub, method)(request, timeout=DEADLINE)
                except grpc.RpcError as error:
                    if error.code() in OUTAGE:
                        return
                    raise
                self.in_flight = None
                self._acknowledged(method, request, response)
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            self.error = error

    def send(self, stub, count: int) -> None:
        """Send ``count`` requests from this thread, each acknowledged before the next."""
        for _ in range(count):
            method, request = self.next_request()
            self._acknowledged(method, request, getattr(stub, method)(request, timeout=DEADLINE))

    def start(self, stub, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stub, stop), name=f"trader-{self.account}",
                                        daemon=True)
        self._thread.start()

    def join(self, timeout: float = 2 * DEADLINE) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"trader {self.account} did not stop"
        if self.error is not None:
            raise self.error

    # -- after a restart

    def book_with_in_flight(self) -> Book:
        """The book as it would be had the in-flight request been applied (and accepted) before the outage."""
        book = self.book.copy()
        if self.in_flight is not None:
            apply_request(book, *self.in_flight)
        return book

    def resend_in_flight(self, stub) -> None:
        """Send the in-flight request again (idempotent by client order id / exec id) and book its answer."""
        if self.in_flight is not None:
            method, request = self.in_flight
            self.record(method, request, getattr(stub, method)(request, timeout=DEADLINE))
            self.in_flight = None

    def acked_fills(self) -> tuple[list[risk_pb2.FillBatch], list[risk_pb2.Fill]]:
        """Every acknowledged fill again: batches of booked-order fills (<= 1000 rows), single unbooked fills."""
        batches, singles, batch = [], [], risk_pb2.FillBatch()
        for method, request, _ in self.acked:
            rows = []
            if method == "ReportFill":
                if request.client_order_id:
                    rows = [(request.client_order_id, request.exec_id, request.quantity, request.price)]
                else:
                    singles.append(request)
            elif method == "ReportFills":
                rows = zip(request.client_order_ids, request.exec_ids, request.quantities, request.prices)
            for cid, exec_id, quantity, price in rows:
                batch.client_order_ids.append(cid)
                batch.exec_ids.append(exec_id)
                batch.quantities.append(quantity)
                batch.prices.append(price)
                if len(batch.exec_ids) == 1000:
                    batches.append(batch)
                    batch = risk_pb2.FillBatch()
        if batch.exec_ids:
            batches.append(batch)
        return batches, singles

    def acked_orders(self) -> list[tuple[str, object, object]]:
        return [(m, r, a) for m, r, a in self.acked if m in ("SubmitOrder", "SubmitOrders")]


# ------------------------------------------------------------------ journals made directly

def write_journal(path: pathlib.Path, records: list[tuple[int, bytes]], start_ns: int | None = None) -> None:
    """Append ``(kind, payload)`` records to the journal file at ``path``, 1 µs apart, and close it."""
    import asyncio

    from riskcore_services.common.journal.sqlite import SqliteJournal

    async def write():
        journal = SqliteJournal(str(path), "NORMAL")
        journal.start(asyncio.get_running_loop())
        now = time.time_ns() if start_ns is None else start_ns
        seq = 0
        for i, (kind, payload) in enumerate(records):
            seq = journal.append(now + 1000 * i, kind, payload)
        await asyncio.wait_for(journal.wait(seq), 60)
        await journal.aclose()

    asyncio.run(write())


# ------------------------------------------------------------------ in-process services

_SERVICE_METHODS = {"SubmitOrder": "submit_order", "SubmitOrders": "submit_orders", "ReportFill": "report_fill",
                    "ReportFills": "report_fills", "GetPositions": "get_positions", "GetExposure": "get_exposure"}


class ServiceStub:
    """Calls a :class:`RiskService` directly with the stub's method names (for :class:`Trader` in-process)."""

    def __init__(self, service):
        self._service = service

    def __getattr__(self, method: str):
        function = getattr(self._service, _SERVICE_METHODS[method])
        return lambda request, timeout=None: function(request)


def make_service(config_path: pathlib.Path, journal=None, snapshot_every: int = 10**9):
    """A RiskService on the engine that ``config_path`` describes (what RiskServer builds)."""
    from prometheus_client import CollectorRegistry

    from riskcore import ManualClock
    from riskcore_services.risk.config import build_engine, load_config
    from riskcore_services.risk.metrics import RiskMetrics
    from riskcore_services.risk.service import RiskService

    config = load_config(config_path)
    engine = build_engine(config, clock=ManualClock(time.time_ns()))
    return RiskService(engine, config.default_account, RiskMetrics(CollectorRegistry(), engine), journal,
                       snapshot_every)


def with_journal(path: pathlib.Path, config_path: pathlib.Path, action, snapshot_every: int = 10**9):
    """Recover a service from the journal at ``path``, run ``action(service)`` on it, wait until durable, close.

    Returns what ``action`` returned.
    """
    import asyncio

    from riskcore_services.common.journal.sqlite import SqliteJournal

    async def run():
        journal = SqliteJournal(str(path), "NORMAL")
        service = make_service(config_path, journal, snapshot_every)
        try:
            await service.recover(*journal.load())
            journal.start(asyncio.get_running_loop())
            result = action(service)
            await asyncio.wait_for(service.durable(), 30)
            return result
        finally:
            await journal.aclose()

    return asyncio.run(run())
