"""gRPC glue of the risk service: each RPC calls the data plane and, when the
call changed state, answers only once that change is durable in the journal."""
from __future__ import annotations

from services.common.calls import CallHandling, FailedPrecondition
from services.proto import risk_pb2, risk_pb2_grpc
from services.risk.service import RiskService


def make_servicer(service: RiskService, calls: CallHandling, server) -> risk_pb2_grpc.RiskEngineServicer:
    """Return the RiskEngine servicer bound to ``service``, each method wrapped by ``calls``.

    ``server`` (a RiskServer) answers Promote.
    """

    def query(name, apply):
        @calls.rpc(name)
        def handler(self, request, call):
            return apply(request)

        return handler

    def command(name, apply, admin=False):
        @calls.rpc(name, admin=admin, changes=True)
        async def handler(self, request, call):
            response = apply(request, call.identity.name)
            await service.durable()
            return response

        return handler

    class RiskEngineServicer(risk_pb2_grpc.RiskEngineServicer):
        CheckPosition = query("CheckPosition", service.check_position)
        GetPositions = query("GetPositions", service.get_positions)
        GetExposure = query("GetExposure", service.get_exposure)
        GetLimits = query("GetLimits", service.get_limits)
        SubmitOrder = command("SubmitOrder", lambda request, actor: service.submit_order(request))
        SubmitOrders = command("SubmitOrders", lambda request, actor: service.submit_orders(request))
        ModifyOrder = command("ModifyOrder", lambda request, actor: service.modify_order(request))
        RequestCancel = command("RequestCancel", lambda request, actor: service.request_cancel(request))
        ReportFill = command("ReportFill", lambda request, actor: service.report_fill(request))
        ReportFills = command("ReportFills", lambda request, actor: service.report_fills(request))
        ReportOrderEvent = command("ReportOrderEvent", lambda request, actor: service.report_order_event(request))
        UpdatePrices = command("UpdatePrices", lambda request, actor: service.update_prices(request), admin=True)
        SetLimits = command("SetLimits", service.set_limits, admin=True)
        SetTradingState = command("SetTradingState", service.set_trading_state, admin=True)

        @calls.rpc("SubmitStream", changes=True)
        async def SubmitStream(self, requests, call):
            async for request in requests:
                response = service.submit_order(request)
                await service.durable()
                await call.context.write(response)

        @calls.rpc("Promote", admin=True, always=True, changes=True)
        async def Promote(self, request, call):
            if server.role == "standalone":
                raise FailedPrecondition("this engine has no replicated journal to take over")
            role = await server.promote()
            return risk_pb2.PromoteResponse(role=role, last_seq=service.last_seq)

        @calls.rpc("WatchBreaches")
        async def WatchBreaches(self, request, call):
            queue = service.breaches.subscribe()
            try:
                while True:
                    await call.context.write(await queue.get())
            finally:
                service.breaches.unsubscribe(queue)

    return RiskEngineServicer()
