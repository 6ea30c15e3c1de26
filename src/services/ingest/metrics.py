"""The ingestion service's metrics (prefix ``riskcore_ingest_``).

Counts are kept as plain integers by the feed, the sequencer and the outputs
and read at scrape time by one collector (``/metrics`` is served on the event
loop, the thread that updates them), so the feed pays nothing per message
for them. Labels are bounded: ITCH type letters, fixed reasons and outputs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from riskcore_services.common.metrics import LoopHistogram
from riskcore_services.ingest.sources import FeedState, MoldUDP64Source

if TYPE_CHECKING:
    from riskcore_services.ingest.server import IngestServer

# Exchange stamp to receive: from tens of microseconds on a co-located feed to seconds behind a backlog.
LAG_BUCKETS = (1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0,
               2.5, 5.0, 10.0, 60.0)

# A re-request answered on a LAN takes about a millisecond; a SoupBinTCP replay of a large gap, seconds.
RECOVERY_BUCKETS = (1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0)


class IngestMetrics:
    """The lag histogram (observed by the feed) and the collector for everything else."""

    def __init__(self, registry: CollectorRegistry, server: "IngestServer"):
        self.lag = LoopHistogram("riskcore_ingest_lag_seconds",
                                 "Exchange timestamp to receive time of the first message of each batch applied "
                                 "(a paced replay: how late against its schedule)", (), registry, LAG_BUCKETS)
        self.lag_series = self.lag.labels()
        self.recovery = LoopHistogram("riskcore_ingest_recovery_seconds",
                                      "Time the feed was stale, from a gap found to the book whole again "
                                      "(re-request or SoupBinTCP)", (), registry, RECOVERY_BUCKETS)
        self.recovery_series = self.recovery.labels()
        registry.register(IngestCollector(server))


class IngestCollector(Collector):
    """Everything but the lag, read from the server's counters at scrape time."""

    def __init__(self, server: "IngestServer"):
        self.server = server

    def collect(self):
        server = self.server
        messages = CounterMetricFamily("riskcore_ingest_messages", "ITCH frames received, by message type",
                                       labels=["type"])
        for kind, count in sorted(server.message_totals.items()):
            messages.add_metric([kind], count)
        yield messages
        book = CounterMetricFamily("riskcore_ingest_book_events",
                                   "Frames the book skipped, and integrity events of applied messages, by counter",
                                   labels=["counter"])
        for name, count in server.counter_totals.items():
            if name != "messages":
                book.add_metric([name], count)
        yield book

        source = server.source
        session = source.session()
        for name, key, help_text in (
                ("packets", "packets", "MoldUDP64 packets accepted (heartbeats included)"),
                ("gaps", "gaps", "Sequence gaps opened"),
                ("recovered_messages", "recovered_messages",
                 "Messages delivered after their gap was opened (re-request or SoupBinTCP)"),
                ("rerequests", "requests", "MoldUDP64 re-requests sent, retries included"),
                ("soup_recoveries", "soup_recoveries", "Gaps filled over SoupBinTCP"),
                ("file_recoveries", "file_recoveries", "Gaps filled from the recovery file"),
                ("malformed_packets", "malformed", "MoldUDP64 datagrams dropped as malformed or of another session")):
            family = CounterMetricFamily(f"riskcore_ingest_{name}", help_text)
            family.add_metric([], session.get(key, 0))
            yield family

        hub = server.hub.totals()
        drops = CounterMetricFamily("riskcore_ingest_drops", "Quotes, packets and messages not passed on, by reason",
                                    labels=["reason"])
        drops.add_metric(["subscriber_conflated"], hub["conflated"])
        drops.add_metric(["subscriber_evicted"], hub["evicted"])
        if isinstance(source, MoldUDP64Source):
            drops.add_metric(["malformed_packet"], session["malformed"])
            drops.add_metric(["recovery_overflow"], session["recovery_overflow"])
            drops.add_metric(["reorder_overflow"], session["reorder_overflow"])
            drops.add_metric(["duplicate"], session["duplicates"])
        for output in (server.risk, server.nats):
            if output is not None:
                drops.add_metric([f"{output.name}_conflated"], output.conflated)
        yield drops

        marks = CounterMetricFamily("riskcore_ingest_outputs",
                                    "Marks and quotes passed on, by output and outcome", labels=["output", "outcome"])
        marks.add_metric(["subscribers", "sent"], hub["sent"])
        if server.risk is not None:
            risk = server.risk
            marks.add_metric(["risk", "sent"], risk.sent)
            marks.add_metric(["risk", "failed"], risk.failed)
            marks.add_metric(["risk", "unknown_symbol"], len(risk.unknown))
            marks.add_metric(["risk", "withheld_stale"], risk.withheld_stale)
        if server.nats is not None:
            marks.add_metric(["nats", "sent"], server.nats.sent)
            marks.add_metric(["nats", "failed"], server.nats.failed)
        yield marks

        depth = GaugeMetricFamily("riskcore_ingest_queue_depth", "Items waiting, by queue", labels=["queue"])
        depth.add_metric(["subscribers"], hub["pending"])
        if server.risk is not None:
            depth.add_metric(["risk"], server.risk.queued)
        if server.nats is not None:
            depth.add_metric(["nats"], server.nats.queued)
        if isinstance(source, MoldUDP64Source):
            depth.add_metric(["reorder_messages"], session["reorder_held"])
        yield depth

        state = GaugeMetricFamily("riskcore_ingest_feed_state", "1 for the feed's current state", labels=["state"])
        for each in FeedState:
            state.add_metric([each.name.lower()], 1.0 if server.state is each else 0.0)
        yield state
        stale = GaugeMetricFamily("riskcore_ingest_stale", "1 while quotes are stale and marks withheld")
        stale.add_metric([], 1.0 if server.state.stale else 0.0)
        yield stale
        view = server.view
        for name, value, help_text in (("symbols", view.symbols, "Symbols in the stock directory"),
                                       ("orders", view.orders, "Live orders in the book"),
                                       ("subscribers", server.hub.subscribers, "Subscribe streams open")):
            gauge = GaugeMetricFamily(f"riskcore_ingest_{name}", help_text)
            gauge.add_metric([], value)
            yield gauge

    def describe(self):
        return []
