"""gRPC front-end of the risk service: protobuf in, kernel call, protobuf out.

Requests are validated here, so a malformed field fails with
INVALID_ARGUMENT naming it; business rejections are CheckResponse answers.
"""
from __future__ import annotations

import math

import numpy as np

from riskcore import Decision, Limits, Reason, TradingState
from services.common.calls import CallHandling
from services.proto import risk_pb2, risk_pb2_grpc
from services.risk.service import RiskService

_SIDES = {risk_pb2.BUY: 1, risk_pb2.SELL: -1}
_EVENTS = {risk_pb2.OrderEvent.CANCELLED: "cancel", risk_pb2.OrderEvent.EXPIRED: "expire",
           risk_pb2.OrderEvent.REJECTED: "reject"}
# Kernel reasons that mean the request itself was malformed, not a business rejection.
_MALFORMED = {Reason.INVALID_SIDE, Reason.INVALID_QUANTITY, Reason.INVALID_PRICE}
_REASON_NAMES = [r.name for r in Reason]


class InvalidRequest(ValueError):
    """A request field is malformed (answered with INVALID_ARGUMENT)."""


def _side(value: int, field: str = "side") -> int:
    side = _SIDES.get(value)
    if side is None:
        raise InvalidRequest(f"{field} must be BUY or SELL, got {risk_pb2.Side.Name(value) if value in risk_pb2.Side.values() else value}")
    return side


def _quantity(value: int, field: str = "quantity") -> int:
    if value <= 0:
        raise InvalidRequest(f"{field} must be > 0, got {value}")
    return value


def _price(request, field: str = "price") -> float | None:
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


def _answer(decision: Decision | int, client_order_id: str = "") -> risk_pb2.CheckResponse:
    if isinstance(decision, int):
        # A batch row answered again by id: only its code was kept.
        return risk_pb2.CheckResponse(accepted=decision == 0, reason=_REASON_NAMES[decision],
                                      message="answer to an earlier submission of this client_order_id",
                                      client_order_id=client_order_id)
    if decision.reason in _MALFORMED:
        raise InvalidRequest(decision.message)
    return risk_pb2.CheckResponse(accepted=decision.accepted, reason=decision.reason.name,
                                  message=decision.message, utilisation=decision.utilisation,
                                  node=decision.node or "", client_order_id=client_order_id)


def _limits_from_proto(message: risk_pb2.Limits) -> tuple[Limits, list]:
    def opt(name):
        return getattr(message, name) if message.HasField(name) else None

    def window(name):
        if not message.HasField(name):
            return None
        w = getattr(message, name)
        return (w.count, w.seconds)

    limits = Limits(
        max_order_quantity=opt("max_order_quantity"), max_order_notional=opt("max_order_notional"),
        max_gross_notional=opt("max_gross_notional"), max_net_notional=opt("max_net_notional"),
        max_open_orders=opt("max_open_orders"), max_daily_loss=opt("max_daily_loss"),
        new_order_rate=window("new_order_rate"), modify_rate=window("modify_rate"),
        cancel_rate=window("cancel_rate"), fill_throttle=window("fill_throttle"))
    positions = []
    for i, p in enumerate(message.position_limits):
        _text(p.symbol, f"limits.position_limits[{i}].symbol")
        max_long = p.max_long if p.HasField("max_long") else None
        max_short = p.max_short if p.HasField("max_short") else None
        for name, value in (("max_long", max_long), ("max_short", max_short)):
            if value is not None and value < 0:
                raise InvalidRequest(f"limits.position_limits[{i}].{name} must be >= 0, got {value}")
        positions.append((p.symbol, max_long, max_short))
    return limits, positions


def _limits_to_proto(limits: Limits, position_limits: list) -> risk_pb2.Limits:
    message = risk_pb2.Limits()
    for name, value in limits.as_dict().items():
        if value is None:
            continue
        if isinstance(value, tuple):
            getattr(message, name).CopyFrom(risk_pb2.Window(count=value[0], seconds=value[1]))
        else:
            setattr(message, name, value)
    for symbol, max_long, max_short in position_limits:
        message.position_limits.add(symbol=symbol, max_long=max_long, max_short=max_short)
    return message


def make_servicer(service: RiskService, calls: CallHandling) -> risk_pb2_grpc.RiskEngineServicer:
    """Return the RiskEngine servicer bound to ``service``, each method wrapped by ``calls``."""

    class RiskEngineServicer(risk_pb2_grpc.RiskEngineServicer):
        @calls.unary("CheckPosition")
        async def CheckPosition(self, request, call):
            return _answer(service.check(request.account, _text(request.symbol, "symbol"), _side(request.side),
                                         _quantity(request.quantity), _price(request)))

        @calls.unary("SubmitOrder")
        async def SubmitOrder(self, request, call):
            return self._submit(request)

        def _submit(self, request):
            cid = _text(request.client_order_id, "client_order_id")
            decision = service.submit(cid, request.account, _text(request.symbol, "symbol"), _side(request.side),
                                      _quantity(request.quantity), _price(request))
            return _answer(decision, cid)

        @calls.unary("SubmitOrders")
        async def SubmitOrders(self, request, call):
            n = len(request.client_order_ids)
            for field in ("accounts", "symbols", "sides", "quantities", "prices"):
                if len(getattr(request, field)) != n:
                    raise InvalidRequest(f"{field} has {len(getattr(request, field))} rows, "
                                         f"client_order_ids has {n}")
            cids = list(request.client_order_ids)
            if len(set(cids)) != n or (n and not all(cids)):
                raise InvalidRequest("client_order_ids must be non-empty and unique within a batch")
            sides = np.asarray(request.sides, dtype=np.int8)
            bad = np.flatnonzero((sides != risk_pb2.BUY) & (sides != risk_pb2.SELL))
            if bad.size:
                raise InvalidRequest(f"sides[{bad[0]}] must be BUY or SELL")
            quantities = np.asarray(request.quantities, dtype=np.int64)
            bad = np.flatnonzero(quantities <= 0)
            if bad.size:
                raise InvalidRequest(f"quantities[{bad[0]}] must be > 0, got {quantities[bad[0]]}")
            prices = np.asarray(request.prices, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(prices) | (prices < 0))
            if bad.size:
                raise InvalidRequest(f"prices[{bad[0]}] must be finite and >= 0 (0 = market), got {prices[bad[0]]}")
            symbols = list(request.symbols)
            if n and not all(symbols):
                raise InvalidRequest(f"symbols[{symbols.index('')}] is required")
            codes = service.submit_batch(cids, list(request.accounts), symbols,
                                         np.where(sides == risk_pb2.BUY, 1, -1).astype(np.int8), quantities, prices)
            malformed = np.flatnonzero(np.isin(codes, [int(r) for r in _MALFORMED]))
            if malformed.size:
                i = malformed[0]
                raise InvalidRequest(f"row {i}: {_REASON_NAMES[codes[i]]}")
            response = risk_pb2.BatchResponse(accepted=int(np.count_nonzero(codes == 0)))
            response.reason_codes.extend(codes.tolist())
            for code in np.unique(codes).tolist():
                response.reason_names[code] = _REASON_NAMES[code]
            return response

        @calls.stream("SubmitStream")
        async def SubmitStream(self, request_iterator, context, call):
            async for request in request_iterator:
                yield self._submit(request)

        @calls.unary("ModifyOrder")
        async def ModifyOrder(self, request, call):
            cid = _text(request.client_order_id, "client_order_id")
            return _answer(service.modify(cid, _quantity(request.quantity), _price(request)), cid)

        @calls.unary("RequestCancel")
        async def RequestCancel(self, request, call):
            cid = _text(request.client_order_id, "client_order_id")
            return _answer(service.request_cancel(cid), cid)

        @calls.unary("ReportFill")
        async def ReportFill(self, request, call):
            exec_id = _text(request.exec_id, "exec_id")
            quantity = _quantity(request.quantity)
            if not (math.isfinite(request.price) and request.price > 0):
                raise InvalidRequest(f"price must be finite and > 0, got {request.price}")
            side = _side(request.side) if request.side else 0
            applied = service.fill(request.client_order_id, exec_id, quantity, request.price,
                                   request.account, request.symbol, side)
            return risk_pb2.FillAck(applied=applied)

        @calls.unary("ReportOrderEvent")
        async def ReportOrderEvent(self, request, call):
            cid = _text(request.client_order_id, "client_order_id")
            kind = _EVENTS.get(request.kind)
            if kind is None:
                raise InvalidRequest("kind must be CANCELLED, EXPIRED or REJECTED")
            return risk_pb2.OrderEventAck(applied=service.order_event(cid, kind))

        @calls.unary("UpdatePrices", admin=True)
        async def UpdatePrices(self, request, call):
            if len(request.symbols) != len(request.prices):
                raise InvalidRequest(f"symbols has {len(request.symbols)} rows, prices has {len(request.prices)}")
            prices = np.asarray(request.prices, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(prices) | (prices <= 0))
            if bad.size:
                raise InvalidRequest(f"prices[{bad[0]}] must be finite and > 0, got {prices[bad[0]]}")
            return risk_pb2.PriceUpdatesAck(applied=service.update_prices(list(request.symbols), prices))

        @calls.unary("GetPositions")
        async def GetPositions(self, request, call):
            engine = service.engine
            accounts, symbols = engine.accounts, engine.symbols
            only = engine.account_id(request.account) if request.account else None
            response = risk_pb2.PositionsResponse()
            for row in engine.positions():
                if only is None or row["account"] == only:
                    response.positions.add(
                        account=accounts[row["account"]], symbol=symbols[row["symbol"]],
                        quantity=int(row["quantity"]), average_price=float(row["average_price"]),
                        realized_pnl=float(row["realized"]), unrealized_pnl=float(row["unrealized"]))
            return response

        @calls.unary("GetExposure")
        async def GetExposure(self, request, call):
            engine = service.engine
            names = engine.accounts
            root = engine.account_id(request.account) if request.account else 0
            response = risk_pb2.ExposureResponse()
            for row in engine.aggregates():
                node = int(row["account"])
                if root and not _descends(engine, node, root):
                    continue
                long_, short = row["long"] / 1e6, row["short"] / 1e6
                working_buy, working_sell = row["working_buy"] / 1e6, row["working_sell"] / 1e6
                response.accounts.add(
                    account=names[node], parent="" if row["parent"] < 0 else names[row["parent"]],
                    long_notional=long_, short_notional=short, net_notional=long_ - short,
                    gross_notional=long_ + short + working_buy + working_sell,
                    working_buy_notional=working_buy, working_sell_notional=working_sell,
                    realized_pnl=row["realized"] / 1e6, unrealized_pnl=row["unrealized"] / 1e6,
                    daily_pnl=row["daily_pnl"] / 1e6, open_orders=int(row["open_orders"]),
                    state=int(row["state"]))
            return response

        @calls.unary("GetLimits")
        async def GetLimits(self, request, call):
            return self._limits(service.account(request.account))

        def _limits(self, account):
            engine = service.engine
            positions = []
            for symbol in engine.symbols:
                max_long, max_short = engine.position_limit(account, symbol)
                if max_long is not None or max_short is not None:
                    positions.append((symbol, max_long, max_short))
            return risk_pb2.LimitsResponse(account=account,
                                           limits=_limits_to_proto(engine.limits(account), positions))

        @calls.unary("SetLimits", admin=True)
        async def SetLimits(self, request, call):
            if not request.HasField("limits"):
                raise InvalidRequest("limits is required")
            limits, positions = _limits_from_proto(request.limits)
            account = service.account(request.account)
            service.set_limits(account, limits, positions, call.identity.name)
            return self._limits(account)

        @calls.unary("SetTradingState", admin=True)
        async def SetTradingState(self, request, call):
            if request.account and request.symbol:
                raise InvalidRequest("give account or symbol, not both")
            if request.state not in risk_pb2.TradingState.values():
                raise InvalidRequest(f"state must be ACTIVE, REDUCING or HALTED, got {request.state}")
            if request.account:
                service.engine.account_id(request.account)
            if request.symbol:
                service.engine.symbol_id(request.symbol)
            state = TradingState(request.state)
            target = service.set_trading_state(request.account, request.symbol, state, call.identity.name)
            return risk_pb2.TradingStateResponse(target=target, state=int(state))

        @calls.stream("WatchBreaches")
        async def WatchBreaches(self, request, context, call):
            queue = service.breaches.subscribe()
            try:
                while True:
                    yield await queue.get()
            finally:
                service.breaches.unsubscribe(queue)

    return RiskEngineServicer()


def _descends(engine, node: int, root: int) -> bool:
    names = engine.accounts
    name = names[node]
    while name is not None:
        if engine.account_id(name) == root:
            return True
        name = engine.parent(name)
    return False
