"""Alerts on the ingestion service's events: a MoldUDP64 gap fires FeedGap and FeedStale until the
missing packets arrive; a message the book cannot make sense of fires BookInconsistent. A real ingestion
server fed real UDP packets, a real monitor process."""
from __future__ import annotations

import socket
import struct

from ingest.service_helpers import IngestProcess, ingest_config

from riskcore_services.ingest import moldudp64
from riskcore_services.ingest.simulate import SimulationConfig, generate, split_messages
from riskcore_services.proto import ingest_pb2
from riskcore_services.testing import Children, wait_until

from .conftest import FIRING, RESOLVED, monitor_config, start_monitor

RULES = """
[[monitor.rules]]
name = "FeedGap"
kind = "feed_gap"
summary = "session {session}: {detail}"

[[monitor.rules]]
name = "FeedStale"
kind = "feed_stale"
severity = "critical"
summary = "{feed} stale ({detail})"

[[monitor.rules]]
name = "BookInconsistent"
kind = "book_inconsistent"
severity = "critical"
summary = "{feed}: {detail}"
"""


def unknown_order_delete() -> bytes:
    """An ITCH 5.0 Order Delete (D) of an order reference the book never saw."""
    return b"D" + struct.pack(">HH", 1, 0) + (1).to_bytes(6, "big") + struct.pack(">Q", 2**63 + 12345)


def test_a_gap_fires_feed_gap_and_stale_until_filled_and_a_bad_message_fires_book_inconsistent(tmp_path,
                                                                                              watch_alerts):
    messages = split_messages(b"".join(generate(SimulationConfig(messages=2_000, symbols=5, seed=7))))
    server = IngestProcess(ingest_config(tmp_path, source="moldudp64",
                                         moldudp64={"group": "127.0.0.1", "port": 0, "max_retries": 10_000}))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.start()
        address = server.run(server.server.source.bound())
        with Children(tmp_path) as children:
            monitor = start_monitor(children, monitor_config(tmp_path, {"ingest": server.target}, RULES))
            alerts = watch_alerts(monitor)
            session = moldudp64.session_bytes("ALERTS")
            packets = [(1 + i * 10, messages[i * 10:(i + 1) * 10]) for i in range(len(messages) // 10)]

            def send(*batch) -> None:
                for sequence, block in batch:
                    sock.sendto(moldudp64.encode_packet(session, sequence, block), address)

            half = len(packets) // 2
            send(*packets[:half])
            wait_until(lambda: server.status().sessions[0].expected_sequence == packets[half][0], 20, "first half")
            send(*packets[half + 1:])                  # one packet missing
            gap = alerts.next_alert("FeedGap", FIRING)
            stale = alerts.next_alert("FeedStale", FIRING)
            assert gap.labels["session"] == "ALERTS" and stale.labels["feed"] == "moldudp64"
            send(packets[half])                        # it arrives: whole again
            assert alerts.next_alert("FeedGap", RESOLVED).key == gap.key
            assert alerts.next_alert("FeedStale", RESOLVED).key == stale.key
            assert server.status().state == ingest_pb2.FEED_STATE_LIVE

            send((len(messages) + 1, [unknown_order_delete()]))
            bad = alerts.next_alert("BookInconsistent", FIRING)
            assert bad.labels["counter"] == "unknown_ref" and bad.severity == "critical"
    finally:
        sock.close()
        server.close()
