"""A client for strategy code: deadlines, retries, a circuit breaker, and fail-closed orders.

Every call carries a deadline. Idempotent calls (checks, submits keyed by a
client order id, fills keyed by an exec id, reads, admin setters) are retried
on UNAVAILABLE with exponential backoff and jitter. A circuit breaker opens
after repeated outages and then fails fast. While the engine cannot be
reached, order calls return a rejection (``ENGINE_UNAVAILABLE``): the client
never approves an order the engine did not see.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

from riskcore_services.common.client import ServiceClient, ServiceUnavailable
from riskcore_services.proto import risk_pb2, risk_pb2_grpc

ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"
UNAVAILABLE_CODE = 255
EngineUnavailable = ServiceUnavailable


class RiskClient(ServiceClient):
    """Synchronous client of the risk engine service (see :class:`~riskcore_services.common.client.ServiceClient`
    for the connection, deadline, retry and breaker options)."""

    def __init__(self, target: str = "localhost:50051", **options):
        super().__init__(target, risk_pb2_grpc.RiskEngineStub, **options)

    def _order_call(self, method: str, request, idempotent: bool = True) -> risk_pb2.CheckResponse:
        try:
            return self._call(method, request, idempotent)
        except EngineUnavailable as error:
            return risk_pb2.CheckResponse(accepted=False, reason=ENGINE_UNAVAILABLE, message=str(error),
                                          client_order_id=getattr(request, "client_order_id", ""))

    # ------------------------------------------------------------- orders

    def check_position(self, symbol: str, quantity: int, side: str, account: str = "",
                       price: Optional[float] = None) -> risk_pb2.CheckResponse:
        """What-if check (empty account: the engine's default account); a rejection, never an approval,
        when the engine is unreachable."""
        return self._order_call("CheckPosition", risk_pb2.PositionRequest(
            account=account, symbol=symbol, side=side, quantity=quantity, price=price))

    def submit_order(self, client_order_id: str, symbol: str, quantity: int, side: str, account: str = "",
                     price: Optional[float] = None) -> risk_pb2.CheckResponse:
        """Check and reserve; fails closed.

        Idempotent on ``client_order_id``: a retry with the same content gets the
        first answer (``replayed``); the same id with other content is rejected
        with DUPLICATE_ORDER_ID.
        """
        return self._order_call("SubmitOrder", risk_pb2.OrderRequest(
            client_order_id=client_order_id, account=account, symbol=symbol, side=side,
            quantity=quantity, price=price))

    def submit_orders(self, batch: risk_pb2.OrderBatch) -> risk_pb2.BatchResponse:
        """Submit a columnar batch; when unreachable every row is rejected."""
        try:
            return self._call("SubmitOrders", batch)
        except EngineUnavailable:
            response = risk_pb2.BatchResponse(accepted=0)
            response.reason_codes.extend([UNAVAILABLE_CODE] * len(batch.client_order_ids))
            response.reason_names[UNAVAILABLE_CODE] = ENGINE_UNAVAILABLE
            return response

    def modify_order(self, client_order_id: str, quantity: int,
                     price: Optional[float] = None) -> risk_pb2.CheckResponse:
        """Cancel/replace (not retried: a modify counts against rate limits); fails closed."""
        return self._order_call("ModifyOrder", risk_pb2.ModifyRequest(
            client_order_id=client_order_id, quantity=quantity, price=price), idempotent=False)

    def request_cancel(self, client_order_id: str) -> risk_pb2.CheckResponse:
        return self._order_call("RequestCancel", risk_pb2.CancelRequest(client_order_id=client_order_id),
                                idempotent=False)

    # ------------------------------------------------------------- events

    def report_fill(self, client_order_id: str, exec_id: str, quantity: int, price: float, *,
                    account: str = "", symbol: str = "", side: str = "SIDE_UNSPECIFIED") -> bool:
        """Report a fill; True when applied, False when the exec id was already seen.

        ``symbol`` and ``side`` (and ``account``, empty meaning the default
        account) book the fill when the engine does not know the order.
        """
        return self._call("ReportFill", risk_pb2.Fill(
            client_order_id=client_order_id, exec_id=exec_id, quantity=quantity, price=price,
            account=account, symbol=symbol, side=side)).applied

    def report_order_event(self, client_order_id: str, kind: str) -> bool:
        """Report CANCELLED, EXPIRED or REJECTED; False when the order was no longer working."""
        return self._call("ReportOrderEvent", risk_pb2.OrderEvent(client_order_id=client_order_id,
                                                                  kind=kind)).applied

    def update_prices(self, symbols: Sequence[str], prices: Sequence[float]) -> int:
        return self._call("UpdatePrices", risk_pb2.PriceUpdates(symbols=symbols, prices=prices)).applied

    # -------------------------------------------------------------- reads

    def get_positions(self, account: str = "") -> list[risk_pb2.Position]:
        """Positions under ``account`` (empty: the whole firm)."""
        return list(self._call("GetPositions", risk_pb2.PositionsRequest(account=account)).positions)

    def get_exposure(self, account: str = "") -> list[risk_pb2.AccountExposure]:
        """The account tree under ``account`` (empty: the whole firm) with its aggregates."""
        return list(self._call("GetExposure", risk_pb2.ExposureRequest(account=account)).accounts)

    def get_limits(self, account: str) -> risk_pb2.Limits:
        """An account's limits (the firm by its name)."""
        return self._call("GetLimits", risk_pb2.LimitsRequest(account=account)).limits

    # -------------------------------------------------------------- admin

    def set_limits(self, account: str, limits: risk_pb2.Limits) -> risk_pb2.Limits:
        return self._call("SetLimits", risk_pb2.SetLimitsRequest(account=account, limits=limits)).limits

    def set_trading_state(self, state: str, account: str = "", symbol: str = "",
                          timeout: Optional[float] = None) -> risk_pb2.TradingStateResponse:
        """The kill switch: ACTIVE, REDUCING or HALTED on ``account`` (the firm by its name) or ``symbol``.

        ``timeout`` narrows each attempt's deadline (the time left of the call made on behalf of).
        """
        return self._call("SetTradingState", risk_pb2.TradingStateRequest(account=account, symbol=symbol,
                                                                           state=state), timeout=timeout)

    def watch_breaches(self) -> Iterator[risk_pb2.Breach]:
        """Stream breach and state-change events until the caller stops iterating."""
        return self._stub.WatchBreaches(risk_pb2.WatchRequest(), metadata=self._metadata)
