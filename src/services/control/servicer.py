"""gRPC glue of the ControlPlane service: check the request, call the supervisor, answer.

Every method is wrapped by :meth:`CallHandling.rpc` (request id, auth,
readiness, status mapping, metrics, log line): a refused lifecycle move is the
lifecycle's FailedPrecondition, an unknown strategy NotFound, an unreachable
risk engine Unavailable, a malformed field INVALID_ARGUMENT naming it.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from riskcore_services.common.calls import CallHandling
from riskcore_services.common.errors import InvalidArgument
from riskcore_services.control.lifecycle import State
from riskcore_services.control.supervisor import Event, StrategySpec
from riskcore_services.proto import control_pb2, control_pb2_grpc

if TYPE_CHECKING:
    from riskcore_services.control.server import ControlServer


def wire_state(state: State) -> control_pb2.StrategyState:
    return control_pb2.StrategyState.Value(f"STRATEGY_STATE_{state.name}")


def strategy_message(info: dict[str, Any]) -> control_pb2.Strategy:
    return control_pb2.Strategy(
        name=info["name"], entry=info["entry"], account=info["account"], state=wire_state(info["state"]),
        pid=info["pid"], uptime_seconds=info["uptime"], restarts=info["restarts"], last_error=info["last_error"],
        heartbeat_age_seconds=info["heartbeat_age"], backoff_seconds=info["backoff"])


def event_message(event: Event) -> control_pb2.LifecycleEvent:
    return control_pb2.LifecycleEvent(strategy=event.strategy, state=wire_state(event.state),
                                      previous=wire_state(event.previous), reason=event.reason, pid=event.pid,
                                      restarts=event.restarts, time=event.time)


def register_spec(request: control_pb2.RegisterStrategyRequest) -> StrategySpec:
    try:
        config = json.loads(request.config_json) if request.config_json else {}
    except ValueError as error:
        raise InvalidArgument(f"config_json: not JSON ({error})") from None
    if not isinstance(config, dict):
        raise InvalidArgument(f"config_json: expected a JSON object, got {type(config).__name__}")
    try:
        return StrategySpec(request.name, request.entry, request.account, config)
    except ValueError as error:
        raise InvalidArgument(str(error)) from None


def left(call: Any) -> Optional[float]:
    """Seconds left of the call's deadline (None without one): the risk engine's calls made for it get no more."""
    return call.context.time_remaining()


def make_servicer(server: "ControlServer", calls: CallHandling) -> control_pb2_grpc.ControlPlaneServicer:
    """Return the ControlPlane servicer driving ``server.supervisor``, each method wrapped by ``calls``."""
    supervisor = server.supervisor

    def answer(name: str) -> control_pb2.Strategy:
        return strategy_message(supervisor.info(name))

    class ControlPlaneServicer(control_pb2_grpc.ControlPlaneServicer):
        @calls.rpc("RegisterStrategy", admin=True, changes=True)
        async def RegisterStrategy(self, request, call):
            spec = register_spec(request)
            await supervisor.register(spec)
            return answer(spec.name)

        @calls.rpc("Start", admin=True, changes=True)
        async def Start(self, request, call):
            await supervisor.start(request.name, timeout=left(call))
            return answer(request.name)

        @calls.rpc("Stop", admin=True, changes=True)
        async def Stop(self, request, call):
            await supervisor.stop(request.name, timeout=left(call))
            return answer(request.name)

        @calls.rpc("Pause", admin=True, changes=True)
        async def Pause(self, request, call):
            await supervisor.pause(request.name, timeout=left(call))
            return answer(request.name)

        @calls.rpc("Resume", admin=True, changes=True)
        async def Resume(self, request, call):
            await supervisor.resume(request.name, timeout=left(call))
            return answer(request.name)

        @calls.rpc("Restart", admin=True, changes=True)
        async def Restart(self, request, call):
            await supervisor.restart(request.name, timeout=left(call))
            return answer(request.name)

        @calls.rpc("Reset", admin=True, changes=True)
        async def Reset(self, request, call):
            await supervisor.reset(request.name)
            return answer(request.name)

        @calls.rpc("Remove", admin=True, changes=True)
        async def Remove(self, request, call):
            await supervisor.remove(request.name)
            return control_pb2.RemoveResponse()

        @calls.rpc("ListStrategies")
        def ListStrategies(self, request, call):
            return control_pb2.ListStrategiesResponse(
                strategies=[strategy_message(supervisor.info(name)) for name in supervisor.names()])

        @calls.rpc("GetStrategy")
        def GetStrategy(self, request, call):
            return answer(request.name)

        @calls.rpc("KillSwitch", admin=True, changes=True, always=True)
        async def KillSwitch(self, request, call):
            stopped = await supervisor.kill_switch(request.reason or "kill switch", timeout=left(call))
            return control_pb2.KillSwitchResponse(stopped=stopped)

        @calls.rpc("WatchEvents")
        async def WatchEvents(self, request, call):
            queue = server.events.subscribe()
            # Headers now tell the caller it is subscribed: every event from here on reaches it.
            await call.context.send_initial_metadata(())
            try:
                while (event := await queue.get()) is not None:
                    await call.context.write(event_message(event))
            finally:
                server.events.unsubscribe(queue)

    return ControlPlaneServicer()
