"""A client of the control plane, for operators and their scripts (``riskcore strategy ...`` uses it).

Reads are retried on UNAVAILABLE like every :class:`~riskcore_services.common.client.ServiceClient`;
lifecycle calls are not (a second Start of a started strategy is a refusal, not
a retry). A refused move raises the call's ``grpc.RpcError`` (FAILED_PRECONDITION
naming the current state), an unreachable control plane ``ServiceUnavailable``.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from riskcore_services.common.client import ServiceClient
from riskcore_services.proto import control_pb2, control_pb2_grpc

__all__ = ["ControlClient"]


class ControlClient(ServiceClient):
    """Synchronous client of the ControlPlane service (options as :class:`ServiceClient`'s; ``deadline``
    bounds each call, so give Stop at least the control plane's ``stop_grace``)."""

    def __init__(self, target: str = "127.0.0.1:50052", **options: Any):
        super().__init__(target, control_pb2_grpc.ControlPlaneStub, **options)

    def register(self, name: str, entry: str, account: str,
                 config: Mapping[str, Any] | None = None) -> control_pb2.Strategy:
        return self._call("RegisterStrategy", control_pb2.RegisterStrategyRequest(
            name=name, entry=entry, account=account, config_json=json.dumps(dict(config or {}))), idempotent=False)

    def lifecycle(self, call: str, name: str) -> control_pb2.Strategy:
        """The lifecycle call ``call`` (``"Start"``, ``"Stop"``, ``"Pause"``, ``"Resume"``, ``"Restart"`` or
        ``"Reset"``) on strategy ``name``."""
        return self._call(call, control_pb2.StrategyRequest(name=name), idempotent=False)

    def remove(self, name: str) -> None:
        self._call("Remove", control_pb2.StrategyRequest(name=name), idempotent=False)

    def get(self, name: str) -> control_pb2.Strategy:
        return self._call("GetStrategy", control_pb2.StrategyRequest(name=name))

    def strategies(self) -> list[control_pb2.Strategy]:
        return list(self._call("ListStrategies", control_pb2.ListStrategiesRequest()).strategies)

    def kill_switch(self, reason: str) -> list[str]:
        """Halt the firm and stop every strategy; the names stopped."""
        return list(self._call("KillSwitch", control_pb2.KillSwitchRequest(reason=reason), idempotent=False).stopped)

    def watch(self) -> Any:
        """The WatchEvents call (no deadline): iterate it for every lifecycle event from now on; its
        ``initial_metadata()`` returns once the control plane has subscribed it; ``cancel()`` ends it."""
        return self._stub.WatchEvents(control_pb2.WatchEventsRequest(), metadata=self._metadata)
