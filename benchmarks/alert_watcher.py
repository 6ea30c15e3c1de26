"""A ``WatchAlerts`` subscriber of the alerts benchmark, in its own process.

    python -m benchmarks.alert_watcher '{"name": ..., "target": "host:port"}'

A subscriber that cares about milliseconds runs in its own process on the
I/O the services default to (the parent puts ``GRPC_EXPERIMENTS`` in our
environment), not on a thread of the process driving the load. It prints
``{"ready": true}`` once subscribed, then one line per alert as it arrives:
``{"alert": [received time.time_ns(), status, Alert.event_time_unix_nano]}``.
It runs until killed.
"""
from __future__ import annotations

import json
import sys
import time

import grpc                                    # after the parent set GRPC_EXPERIMENTS in our environment
from riskcore_services.proto import monitor_pb2, monitor_pb2_grpc


def main() -> None:
    spec = json.loads(sys.argv[1])
    with grpc.insecure_channel(spec["target"]) as channel:
        call = monitor_pb2_grpc.AlertsStub(channel).WatchAlerts(monitor_pb2.WatchAlertsRequest())
        call.initial_metadata()   # sent by the server once subscribed
        print(json.dumps({"ready": True}), flush=True)
        for alert in call:
            received = time.time_ns()
            print(json.dumps({"alert": [received, alert.status, alert.event_time_unix_nano]}), flush=True)


if __name__ == "__main__":
    main()
