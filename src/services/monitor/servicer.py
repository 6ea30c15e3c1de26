"""gRPC glue of the Alerts service: the alerts firing now, then every change as it happens."""
from __future__ import annotations

from typing import TYPE_CHECKING

from riskcore_services.common.calls import CallHandling
from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc

if TYPE_CHECKING:
    from riskcore_services.monitor.server import MonitorServer

ALERTS_SERVICE = monitor_pb2.DESCRIPTOR.services_by_name["Alerts"]


def make_servicer(server: "MonitorServer", calls: CallHandling) -> monitor_pb2_grpc.AlertsServicer:
    class AlertsServicer(monitor_pb2_grpc.AlertsServicer):
        @calls.rpc("ListAlerts")
        def ListAlerts(self, request, call):
            return monitor_pb2.ListAlertsResponse(alerts=server.book.firing())

        @calls.rpc("WatchAlerts")
        async def WatchAlerts(self, request, call):
            # Subscribe before taking the replay, so nothing falls between the two.
            queue = server.watchers.subscribe()
            try:
                await call.context.send_initial_metadata(())   # the caller knows it is subscribed
                for alert in server.book.firing():
                    alert.replay = True
                    await call.context.write(alert)
                while True:
                    await call.context.write(await queue.get())
            finally:
                server.watchers.unsubscribe(queue)

    return AlertsServicer()
