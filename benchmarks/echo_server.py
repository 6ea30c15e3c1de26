"""A bare gRPC server with the risk engine's message shapes: the floor the service is compared against.

    python -m benchmarks.echo_server --port P

It implements only ``CheckPosition``, which returns one fixed ``CheckResponse``
without looking at the request, and ``SubmitStream``, which answers each order
with an accepted ``CheckResponse`` carrying its client order id (every other RPC
of ``riskcore.v1.RiskEngine`` answers UNIMPLEMENTED). Everything else is set up as ``riskcore serve risk`` sets up
the real server (``riskcore_services.risk.server`` and ``riskcore_services.cli``): a
``grpc.aio`` server with the same channel options, the same generated
servicer registration, on a uvloop event loop, so the difference between the
two in one run is what the risk service adds per call (call handling, logging,
metrics, validation and the engine) and not a different transport.

Prints ``listening <port>`` on stdout once it accepts calls; stops on SIGTERM
or SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import grpc

from riskcore_services.proto import risk_pb2, risk_pb2_grpc

# What the engine answers to the README's CheckPosition on the sample configuration. The service
# benchmark passes the engine's exact answer with --response and checks both servers send the same bytes.
FIXED_RESPONSE = risk_pb2.CheckResponse(accepted=True, reason="OK", message="accepted", utilisation=0.038)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024     # riskcore_services.risk.config.ServerConfig.max_message_bytes


class EchoServicer(risk_pb2_grpc.RiskEngineServicer):
    """``CheckPosition`` and ``SubmitStream`` answer without checking; the rest are the generated UNIMPLEMENTED."""

    def __init__(self, response: risk_pb2.CheckResponse = FIXED_RESPONSE):
        self._response = response

    async def CheckPosition(self, request, context):
        return self._response

    async def SubmitStream(self, request_iterator, context):
        async for request in request_iterator:
            yield risk_pb2.CheckResponse(accepted=True, reason="OK", message="accepted",
                                         client_order_id=request.client_order_id)


async def serve(host: str, port: int, response: risk_pb2.CheckResponse = FIXED_RESPONSE) -> None:
    """Serve on ``host:port`` until SIGTERM or SIGINT."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.so_reuseport", 0)])
    risk_pb2_grpc.add_RiskEngineServicer_to_server(EchoServicer(response), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening {bound}", flush=True)
    await stop.wait()
    await server.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.echo_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--response", help="hex of a serialised CheckResponse to answer instead of the default")
    args = parser.parse_args(argv)
    response = FIXED_RESPONSE if args.response is None else risk_pb2.CheckResponse.FromString(
        bytes.fromhex(args.response))
    import uvloop            # as riskcore_services.cli runs the real server

    uvloop.run(serve(args.host, args.port, response))
    return 0


if __name__ == "__main__":
    sys.exit(main())
