"""gRPC glue of the risk service: each RPC calls the data plane and, when the
call changed state, answers only once that change is durable in the journal.

The wire bound on batch rows (``[engine] max_batch_rows``) is applied here,
to live calls only: journal replay is not bounded by today's configuration.
"""
from __future__ import annotations

from riskcore_services.common.calls import CallHandling, MalformedRequest
from riskcore_services.common.errors import FailedPrecondition, InvalidArgument
from riskcore_services.common.failover import Role
from riskcore_services.common.logging import get_logger
from riskcore_services.proto import risk_pb2, risk_pb2_grpc
from riskcore_services.risk.codec import MAX_NAME_BYTES, check_batch_rows
from riskcore_services.risk.events import RiskEvents
from riskcore_services.risk.service import RiskService

log = get_logger("risk")


def refused_in_stream(request, error: Exception) -> risk_pb2.CheckResponse:
    """The in-stream answer to a SubmitStream message that cannot be applied.

    ``reason`` is the status the same message would get as a SubmitOrder call
    (INVALID_ARGUMENT or NOT_FOUND); the stream stays open.
    """
    reason = "NOT_FOUND" if isinstance(error, KeyError) else "INVALID_ARGUMENT"
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    cid = getattr(request, "client_order_id", "")
    if len(cid) > MAX_NAME_BYTES // 4 and len(cid.encode()) > MAX_NAME_BYTES:
        cid = ""  # never echo an oversized id; the message names it, cut short
    log.info("stream message refused", reason=reason, error=message)
    return risk_pb2.CheckResponse(accepted=False, reason=reason, message=message, client_order_id=cid)


def make_servicer(service: RiskService, calls: CallHandling, server, events: RiskEvents
                  ) -> risk_pb2_grpc.RiskEngineServicer:
    """Return the RiskEngine servicer bound to ``service``, each method wrapped by ``calls``.

    ``server`` (a RiskServer) answers Promote; its ``config.max_batch_rows``
    bounds the rows of batch calls. ``events`` hears of every rejection and
    of every call that changed state.
    """
    max_rows = server.config.max_batch_rows
    changed, rejected, rejected_rows = events.changed, events.rejected, events.rejected_rows

    def decided(request, response: risk_pb2.CheckResponse) -> risk_pb2.CheckResponse:
        if not response.accepted:
            rejected(request.account)
        return response

    def query(name, apply):
        @calls.rpc(name)
        def handler(self, request, call):
            return apply(request)

        return handler

    def command(name, apply, admin=False):
        @calls.rpc(name, admin=admin, changes=True)
        async def handler(self, request, call):
            try:
                response = apply(request, call.identity.name)
            finally:
                # A refusal may be journaled too (a fill over capacity halts its account): even an
                # error is answered once what the call journaled is durable.
                await service.durable()
                changed()
            return response

        return handler

    def chunked(name, apply, decided_rows=None):
        # Large batches are applied in chunks, serving other calls in between.
        @calls.rpc(name, changes=True)
        async def handler(self, request, call):
            try:
                response = await apply(request, max_rows)
            finally:
                await service.durable()
                changed()
            if decided_rows is not None:
                decided_rows(request, response)
            return response

        return handler

    def update_prices(request, actor):
        check_batch_rows(request, max_rows)
        return service.update_prices(request)

    def set_limits(request, actor):
        check_batch_rows(request.limits, max_rows)
        return service.set_limits(request, actor)

    class RiskEngineServicer(risk_pb2_grpc.RiskEngineServicer):
        CheckPosition = query("CheckPosition", lambda request: decided(request, service.check_position(request)))
        GetPositions = query("GetPositions", service.get_positions)
        GetExposure = query("GetExposure", service.get_exposure)
        GetLimits = query("GetLimits", service.get_limits)
        SubmitOrder = command("SubmitOrder", lambda request, actor: decided(request, service.submit_order(request)))
        SubmitOrders = chunked("SubmitOrders", service.submit_orders_chunked, rejected_rows)
        ModifyOrder = command("ModifyOrder", lambda request, actor: service.modify_order(request))
        RequestCancel = command("RequestCancel", lambda request, actor: service.request_cancel(request))
        ReportFill = command("ReportFill", lambda request, actor: service.report_fill(request))
        ReportFills = chunked("ReportFills", service.report_fills_chunked)
        ReportOrderEvent = command("ReportOrderEvent", lambda request, actor: service.report_order_event(request))
        UpdatePrices = command("UpdatePrices", update_prices, admin=True)
        SetLimits = command("SetLimits", set_limits, admin=True)
        SetTradingState = command("SetTradingState", service.set_trading_state, admin=True)

        @calls.rpc("SubmitStream", changes=True, stream_errors=True)
        async def SubmitStream(self, requests, call):
            # A message that cannot be applied is answered in-stream; the stream goes on.
            async for request in requests:
                try:
                    if type(request) is MalformedRequest:
                        raise InvalidArgument(request.error)
                    response = decided(request, service.submit_order(request))
                except (ValueError, KeyError) as error:
                    response = refused_in_stream(request, error)
                else:
                    await service.durable()
                    changed()
                await call.context.write(response)

        @calls.rpc("Promote", admin=True, always=True, changes=True)
        async def Promote(self, request, call):
            if server.role is Role.STANDALONE:
                raise FailedPrecondition("this engine has no replicated journal to take over")
            role = await server.promote()
            return risk_pb2.PromoteResponse(role=role.value, last_seq=service.last_seq)

        @calls.rpc("WatchBreaches")
        async def WatchBreaches(self, request, call):
            queue = service.breaches.subscribe()
            try:
                while True:
                    await call.context.write(await queue.get())
            finally:
                service.breaches.unsubscribe(queue)

    return RiskEngineServicer()
