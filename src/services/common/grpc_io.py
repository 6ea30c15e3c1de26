"""Which of grpcio's I/O paths the services run on.

With grpcio 1.85 (pinned in pyproject.toml) a unary call or a stream message
on loopback costs 35-45% less with the event-engine experiments turned off:
grpcio then uses its older epoll-based I/O. The maintainers mean to remove
these switches, so they are a stop-gap tied to the pinned version, and the
benchmarks measure both ways. The setting only works from the environment,
before grpc is imported.
"""
import os
import sys

LEGACY_IO_EXPERIMENTS = ("-event_engine_client,-event_engine_listener,"
                         "-event_engine_for_all_other_endpoints,-event_engine_callback_cq")


def prefer_legacy_io() -> None:
    """Turn the experiments off unless ``GRPC_EXPERIMENTS`` is already set (even to "", grpcio's defaults).

    Raises
    ------
    RuntimeError
        grpc is already imported, so the setting could no longer take effect.
    """
    if "GRPC_EXPERIMENTS" in os.environ:
        return
    if "grpc" in sys.modules:
        raise RuntimeError("prefer_legacy_io() must run before grpc is imported")
    os.environ["GRPC_EXPERIMENTS"] = LEGACY_IO_EXPERIMENTS
