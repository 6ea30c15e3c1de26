"""Market data ingestion benchmarks: MoldUDP64 on loopback UDP end to end, and gap recovery.

``python -m benchmarks --suite ingest [--quick]`` runs them.

- **UDP end to end**: a sender process (``benchmarks/udp_sender.py``) sends a
  simulated ITCH 5.0 day as MoldUDP64 packets (``sendmmsg``) to a
  :class:`moldudp64.Receiver` in this process, which receives in batches
  (``recvmmsg``), sequences, decodes and applies each packet to the book in
  C, and takes the book's changed marks after every step (what the service
  publishes). About 44 messages per packet (1,400 bytes of blocks, a real
  feed's MTU-sized packets), and one message per packet; each paced at the
  goal's rate and unpaced (as fast as the sender goes). Throughput is
  messages applied per second from the first datagram taken to the last
  message applied; "lost" is what never arrived (no re-request server here,
  so any loss stays visible). Sender and receiver share the machine's cores;
  the "receiver alone" rows send a burst that fits the socket buffer first
  and then time the receiver draining it, which is its own speed.
- **Recovery of a 10k-message gap**: the receiver has applied 1,000
  messages when a packet 10,000 messages ahead arrives; timed from that
  step's return (the gap known) to the book whole again: the SoupBinTCP
  fetch of the missing messages from the simulator's replay server (in this
  process, so its work is counted too) and their application through the
  sequencer, the path the service takes (``sources.MoldUDP64Source``).

The file replay of a 10M-message, 5,000-symbol day is in the kernel suite
("ITCH replay").
"""
from __future__ import annotations

import pathlib
import socket
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from benchmarks.processes import Children, child_env
from benchmarks.results import Row, Target, expect
from benchmarks.workload import python_progress_during
from riskcore import Book
from riskcore_services.ingest import moldudp64
from riskcore_services.ingest.simulate import SimulationConfig, SoupBinTCPServer, generate, split_messages
from riskcore_services.ingest.sources import as_packets, fetch_over_soup

BATCHED_TARGETS = [Target(">=1M msg/s", "throughput", 1e6, at_most=False), Target("0 lost", "value", 0)]
SINGLE_TARGETS = [Target(">=300k pkt/s", "throughput", 300e3, at_most=False), Target("0 lost", "value", 0)]
RECOVERY_TARGETS = [Target("<=100ms", "median_ns", 100e6)]
SESSION = "BENCH00001"
BATCHED_PAYLOAD = 1_400         # bytes of blocks per packet: about 44 of the simulator's messages
GAP = 10_000
RECEIVE_BUFFER = 64 << 20       # SO_RCVBUFFORCE when allowed (root), else capped at net.core.rmem_max


@dataclass(frozen=True)
class IngestScale:
    batched_messages: int       # the day sent ~44 messages a packet
    single_messages: int        # the day sent one message a packet
    batched_burst: int          # sent whole before the receiver starts: must fit the socket buffer
    single_burst: int
    runs: int                   # runs of each UDP case (median)
    recovery_runs: int
    timeout: float


FULL = IngestScale(batched_messages=3_000_000, single_messages=600_000, batched_burst=1_000_000,
                   single_burst=50_000, runs=3, recovery_runs=30, timeout=120.0)
QUICK = IngestScale(batched_messages=100_000, single_messages=20_000, batched_burst=100_000, single_burst=10_000,
                    runs=1, recovery_runs=3, timeout=60.0)


class IngestSuite:
    """The ingest cases, in the order they run; each yields its rows."""

    def __init__(self, scale: IngestScale, directory: pathlib.Path) -> None:
        self.scale = scale
        self.directory = directory / "ingest"
        self.directory.mkdir(exist_ok=True)

    def cases(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [("UDP end to end, ~44 messages a packet", self.batched),
                ("UDP end to end, 1 message a packet", self.single),
                ("recovery of a 10k-message gap", self.recovery)]

    def _day(self, messages: int, name: str) -> pathlib.Path:
        path = self.directory / name
        if not path.exists():
            path.write_bytes(b"".join(generate(SimulationConfig(messages=messages, symbols=500, seed=3))))
        return path

    def batched(self) -> Iterator[Row]:
        day = self._day(self.scale.batched_messages, "batched.itch")
        yield self._udp_row(day, BATCHED_PAYLOAD, 1.1e6, "msg/s", BATCHED_TARGETS)
        yield self._udp_row(day, BATCHED_PAYLOAD, 0.0, "msg/s", [])
        burst = self._day(self.scale.batched_burst, "batched-burst.itch")
        yield self._udp_row(burst, BATCHED_PAYLOAD, 0.0, "msg/s", BATCHED_TARGETS, drain=True)

    def single(self) -> Iterator[Row]:
        day = self._day(self.scale.single_messages, "single.itch")
        yield self._udp_row(day, 1, 330e3, "pkt/s", SINGLE_TARGETS)   # one message a packet: msg/s are pkt/s
        yield self._udp_row(day, 1, 0.0, "pkt/s", [])
        burst = self._day(self.scale.single_burst, "single-burst.itch")
        yield self._udp_row(burst, 1, 0.0, "pkt/s", SINGLE_TARGETS, drain=True)
        run = self._udp_run(burst, 1, 0.0, "sender-gil", drain=True, spin=True)
        progress = run["progress"]
        yield Row("Python thread speed during the UDP receive loop", value=progress, value_text=f"{progress:.0%}",
                  targets=[Target(">=10%", "value", 0.10, at_most=False)],
                  note="share of its free-running speed a counting thread keeps while the receiver drains a full "
                       "socket buffer of one-message packets (recvmmsg, checks and decoding without the GIL; "
                       "the sequencer and marks with it, once a step); ~2% if the GIL were held")

    def _udp_row(self, day: pathlib.Path, max_payload: int, rate: float, unit: str, targets: list[Target],
                 drain: bool = False) -> Row:
        """Median of the runs; ``rate`` is the offered messages/s (0: unpaced). ``drain``: the receiver
        starts once everything sent waits in its socket buffer (its own speed, with the sender done)."""
        runs = [self._udp_run(day, max_payload, rate, f"sender-{max_payload}-{int(rate)}-{k}", drain)
                for k in range(self.scale.runs)]
        runs.sort(key=lambda r: r["rate"])
        middle = runs[len(runs) // 2]
        per_packet = middle["messages"] / middle["packets"]
        throughput = middle["rate"] / (per_packet if unit == "pkt/s" else 1)
        offered = "receiver alone, a full socket buffer" if drain else (
            f"offered {rate / 1e3:,.0f}k {unit}" if rate else "unpaced")
        lost = max(r["lost"] for r in runs)
        rates = ", ".join(f"{r['rate'] / 1e6:.2f}M" for r in runs)
        return Row(f"UDP end to end, {per_packet:.0f} msg/packet, {offered}", samples=len(runs),
                   throughput=throughput, unit=unit, value=lost, value_text=f"{lost:,} lost",
                   targets=targets,
                   note=f"median of {len(runs)} runs of {middle['messages']:,} messages in {middle['packets']:,} "
                        f"packets (rates {rates} msg/s; sender "
                        f"{middle['sent_rate'] / 1e6:.2f}M msg/s); receive -> sequence -> decode -> book -> marks, "
                        f"{middle['steps']:,} steps; lost: most of any run")

    def _udp_run(self, day: pathlib.Path, max_payload: int, rate: float, name: str, drain: bool,
                 spin: bool = False) -> dict:
        """One run; with ``spin`` (and ``drain``) a pure-Python thread counts meanwhile (its progress)."""
        book = Book()
        # Room for everything after a gap: "lost" counts what never arrived, not what a full buffer refused.
        sequencer = moldudp64.Sequencer(moldudp64.SequencerConfig(reorder_limit=10_000_000))
        with moldudp64.Receiver(sequencer, book, receive_buffer=RECEIVE_BUFFER, batch=256) as receiver, \
                Children(self.directory) as children:
            spec = dict(name=name, file=str(day), host=receiver.address[0], port=receiver.address[1],
                        session=SESSION, max_payload=max_payload, burst=256, rate=rate)
            sender = children.client(spec, child_env(), module="benchmarks.udp_sender")
            ready = sender.wait_ready(self.scale.timeout)["ready"]
            packets, messages = ready["packets"], ready["messages"]
            sender.release()
            sent = sender.result(self.scale.timeout) if drain else None
            first_ns, last_ns, steps = -1, -1, 0
            deadline = time.monotonic() + self.scale.timeout

            def receive() -> None:
                nonlocal first_ns, last_ns, steps
                while sequencer.end_sequence is None and time.monotonic() < deadline:
                    before = sequencer.stats.messages
                    got = receiver.step(0.5, max_packets=4096, budget=0.005)
                    book.marks()
                    steps += 1
                    if first_ns < 0 and got.received_ns > 0:
                        first_ns = got.received_ns
                    if sequencer.stats.messages > before:
                        last_ns = time.time_ns()

            progress = python_progress_during(receive) if spin else None
            if not spin:
                receive()
            sent = sent or sender.result(self.scale.timeout)
        expect(sequencer.end_sequence == messages + 1, f"{name}: no end of session ({sequencer.stats})")
        delivered = sequencer.stats.messages
        expect(book.counters()["messages"] == delivered, f"{name}: the book applied {book.counters()} of {delivered}")
        return dict(rate=delivered / ((last_ns - first_ns) / 1e9), lost=messages - delivered, messages=messages,
                    packets=packets, steps=steps, sent_rate=messages / sent["seconds"], progress=progress)

    def recovery(self) -> Iterator[Row]:
        head = 1_000
        messages = split_messages(b"".join(generate(SimulationConfig(messages=head + GAP + 1_000, symbols=100,
                                                                     seed=4))))
        samples: list[float] = []
        with SoupBinTCPServer(messages, session=SESSION) as soup:
            for _ in range(self.scale.recovery_runs):
                samples.append(self._recover_once(messages, head, soup))
        samples.sort()
        median = statistics.median(samples)
        yield Row(f"recovery of a {GAP // 1000}k-message gap over SoupBinTCP", samples=len(samples),
                  median_ns=median * 1e9, p99_ns=None, throughput=GAP / median, unit="msg/s",
                  targets=RECOVERY_TARGETS,
                  note=f"{len(samples)} runs: median {median * 1e3:.1f} ms, best {samples[0] * 1e3:.1f} ms, worst "
                       f"{samples[-1] * 1e3:.1f} ms; gap found -> SoupBinTCP fetch -> sequenced -> applied")

    def _recover_once(self, messages: list[bytes], head: int, soup: SoupBinTCPServer) -> float:
        session = moldudp64.session_bytes(SESSION)
        book = Book()
        sequencer = moldudp64.Sequencer()
        with moldudp64.Receiver(sequencer, book) as receiver:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(moldudp64.encode_packet(session, 1, messages[:head]), receiver.address)
                ahead = head + 1 + GAP
                sock.sendto(moldudp64.encode_packet(session, ahead, messages[ahead - 1:ahead + 9]), receiver.address)
                while not sequencer.in_gap:
                    receiver.step(1.0)
            found = time.perf_counter()
            first, last = sequencer.expected, sequencer.highest - 1
            fetched = fetch_over_soup(soup.address, soup.username, soup.password, first, last)
            receiver.inject(as_packets(session, first, fetched))
            book.marks()
            elapsed = time.perf_counter() - found
        expect(not sequencer.in_gap and sequencer.expected == ahead + 10,
               f"recovery left the sequencer at {sequencer.expected} ({sequencer.stats})")
        return elapsed
