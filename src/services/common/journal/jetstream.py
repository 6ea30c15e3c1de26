"""The journal on NATS JetStream, for any service whose state must survive a host (replicated).

The primary publishes every command to a JetStream stream and answers its
caller once the stream has acknowledged it (JetStream stores it, on as many
replicas as the stream has, before it acks). Publishes are pipelined, so many
records are in flight per round trip under load. Each publish carries
``Nats-Expected-Last-Sequence``: a second writer can never interleave, it
fails loudly instead. Snapshots go to a JetStream object store and the
stream is purged up to them, one snapshot at a time and only once stored.

A standby replays the same stream as it grows and so holds the same state.
Which engine is the primary is :mod:`riskcore_services.common.failover`'s
business: the primary holds a lease (a key in a JetStream key-value bucket whose
entries expire); when the key expires the primary is gone, and a standby
takes the lease, drains the stream to its end and starts serving. An
operator can force the same promotion; the old primary then loses its lease
at its next renewal and stops serving.

The lease's timing is explained in :mod:`riskcore_services.common.failover`.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import struct
from typing import Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.object_store import ObjectStore
from nats.js.errors import NotFoundError, ObjectNotFoundError

from riskcore_services.common.journal import FORMAT_VERSION, JournalError, Record, decode_snapshot, encode_snapshot
from riskcore_services.common.journal.reader import record_crc
from riskcore_services.common.logging import get_logger

log = get_logger("journal.jetstream")

_HEADER = struct.Struct("<qBI")  # time_ns, kind, crc


# How long a standby waits on a quiet stream (or on a snapshot read) before it checks whether
# what it is reading was purged or replaced; and how long a snapshot read may take in all.
GAP_CHECK_SECONDS = 0.5
SNAPSHOT_READ_SECONDS = 30.0


class JournalGap(JournalError):
    """Records this engine has not applied were purged: reload from the newest snapshot."""


class NatsJournal:
    """Command journal on a JetStream stream, with snapshots in an object store.

    Parameters
    ----------
    servers : list of str
        NATS URLs.
    name : str
        Engine name: the stream is ``RISKCORE_<NAME>``, the subject
        ``riskcore.journal.<name>``.
    replicas : int
        Stream replicas (3 on a real cluster; 1 on a single server).
    """

    def __init__(self, servers: list[str], name: str = "risk", replicas: int = 1):
        self.servers = servers
        self.name = name
        self.stream = f"RISKCORE_{name.upper()}"
        self.subject = f"riskcore.journal.{name}"
        self.replicas = replicas
        self.path = f"jetstream:{self.stream}"
        self.last_seq = 0
        self.durable_seq = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._objects_store: ObjectStore | None = None
        self._queue: asyncio.Queue[tuple[int, bytes]] | None = None
        self._publisher: asyncio.Task | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._acks: set[int] = set()
        self._failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] = lambda error: None
        self._snapshot_lock = asyncio.Lock()
        self._stored_seq = -1            # the newest snapshot known stored (-1: none)
        self._snapshot_tasks: set[asyncio.Task] = set()

    async def connect(self) -> None:
        self._nc = await nats.connect(self.servers, name=f"riskcore-{self.name}", max_reconnect_attempts=-1)
        js = self._js = self._nc.jetstream()
        config = api.StreamConfig(name=self.stream, subjects=[self.subject], storage=api.StorageType.FILE,
                                  num_replicas=self.replicas, duplicate_window=120.0)
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(config)
        self._objects_store = await js.create_object_store(f"riskcore_snapshots_{self.name}")
        info = await js.stream_info(self.stream)
        self.last_seq = self.durable_seq = info.state.last_seq

    @property
    def jetstream(self) -> JetStreamContext:
        """The JetStream context; raises JournalError before :meth:`connect`."""
        if self._js is None:
            raise JournalError(f"{self.path}: not connected to NATS (connect() first)")
        return self._js

    @property
    def _objects(self) -> ObjectStore:
        if self._objects_store is None:
            raise JournalError(f"{self.path}: not connected to NATS (connect() first)")
        return self._objects_store

    async def stream_last_seq(self) -> int:
        return (await self.jetstream.stream_info(self.stream)).state.last_seq

    # ---------------------------------------------------------- recovery

    async def load(self) -> tuple[int, dict | None, list[Record]]:
        """Return ``(snapshot seq, snapshot state or None, records after it up to the stream's end)``."""
        base, state = 0, None
        blob = await self._read_snapshot()
        if blob:
            header, _, body = blob.partition(b"\n")
            meta = json.loads(header)
            if meta.get("version") != FORMAT_VERSION:
                raise JournalError(f"{self.path}: snapshot version {meta.get('version')} is not {FORMAT_VERSION}")
            if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
                raise JournalError(f"{self.path}: snapshot at seq {meta.get('seq')} fails its checksum")
            base, state = meta["seq"], decode_snapshot(body)
            self._stored_seq = max(self._stored_seq, base)
        end = await self.stream_last_seq()
        records: list[Record] = []
        if end > base:
            subscription = await self.jetstream.subscribe(
                self.subject, ordered_consumer=True,
                config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                          opt_start_seq=base + 1))
            try:
                while not records or records[-1].seq < end:
                    record = self._decode(await subscription.next_msg(timeout=10))
                    expected = records[-1].seq + 1 if records else base + 1
                    if record.seq != expected:
                        raise JournalGap(f"{self.path}: expected record {expected}, the stream starts at "
                                         f"{record.seq} (purged by a newer snapshot)")
                    records.append(record)
            finally:
                await subscription.unsubscribe()
        self.last_seq = self.durable_seq = max(end, base)
        return base, state, records

    async def _read_snapshot(self) -> bytes | None:
        """The newest snapshot object, or None when there is none.

        A new snapshot deletes the chunks of the one before, so a read that
        overlaps it would wait forever for chunks that are gone: the object's
        identity is watched while reading, and a replacement is a JournalGap
        (the caller loads again).
        """
        try:
            started = (await asyncio.wait_for(self._objects.get_info(self.name), timeout=10)).nuid
        except (ObjectNotFoundError, NotFoundError):
            return None
        # Into a buffer: without one, nats-py joins the chunks with ``bytes +=``, quadratic in the size.
        buffer = io.BytesIO()
        reading = asyncio.ensure_future(self._objects.get(self.name, writeinto=buffer))
        try:
            for _ in range(int(SNAPSHOT_READ_SECONDS / GAP_CHECK_SECONDS)):
                done, _ = await asyncio.wait((reading,), timeout=GAP_CHECK_SECONDS)
                if done:
                    reading.result()  # complete: its digest was checked while reading
                    return buffer.getvalue()
                try:
                    now = (await asyncio.wait_for(self._objects.get_info(self.name), timeout=10)).nuid
                except (ObjectNotFoundError, NotFoundError):
                    now = None
                if now != started:
                    raise JournalGap(f"{self.path}: the snapshot was replaced while it was read")
            raise JournalError(f"{self.path}: reading the snapshot timed out")
        except (ObjectNotFoundError, NotFoundError):
            raise JournalGap(f"{self.path}: the snapshot was replaced while it was read") from None
        finally:
            reading.cancel()

    def _decode(self, msg) -> Record:
        seq = msg.metadata.sequence.stream
        if len(msg.data) < _HEADER.size:
            raise JournalError(f"{self.path}: record {seq} is truncated ({len(msg.data)} bytes)")
        time_ns, kind, crc = _HEADER.unpack_from(msg.data)
        payload = msg.data[_HEADER.size:]
        if record_crc(time_ns, kind, payload) != crc:
            raise JournalError(f"{self.path}: record {seq} fails its checksum")
        return Record(seq, time_ns, kind, payload)

    async def has_snapshot(self) -> bool:
        try:
            await asyncio.wait_for(self._objects.get_info(self.name), timeout=10)
        except (ObjectNotFoundError, NotFoundError):
            return False
        return True

    async def follow(self, after: int, apply: Callable[[Record], None]) -> None:
        """Apply every record after ``after`` as it is published, until cancelled (standby).

        Raises JournalGap when the next record is gone (purged by a snapshot
        the follower has not loaded): the caller reloads and follows again.
        """
        js = self.jetstream
        subscription = await js.subscribe(
            self.subject, ordered_consumer=True,
            config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1))
        try:
            while True:
                try:
                    msg = await subscription.next_msg(timeout=GAP_CHECK_SECONDS)
                except nats.errors.TimeoutError:
                    # A quiet stream: records purged behind a snapshot show only as a first
                    # sequence past ours (a dead primary publishes nothing that would reveal them).
                    first = (await js.stream_info(self.stream)).state.first_seq
                    if first > self.last_seq + 1:
                        raise JournalGap(f"{self.path}: expected record {self.last_seq + 1}, the stream starts "
                                         f"at {first}") from None
                    continue
                record = self._decode(msg)
                if record.seq != self.last_seq + 1:
                    raise JournalGap(f"{self.path}: expected record {self.last_seq + 1}, got {record.seq}")
                apply(record)
                self.last_seq = self.durable_seq = record.seq
        finally:
            await subscription.unsubscribe()

    # ------------------------------------------------------------ writing

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start publishing (as the primary) after ``last_seq``."""
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._queue = queue
        self._publisher = loop.create_task(self._publish_loop(queue, self.jetstream))

    def append(self, time_ns: int, kind: int, payload: bytes) -> int:
        if self._failure is not None:
            raise JournalError(f"journal publish failed: {self._failure}")
        queue = self._queue
        if queue is None:
            raise JournalError(f"{self.path}: append() before start(): only the primary writes")
        self.last_seq += 1
        data = _HEADER.pack(time_ns, kind, record_crc(time_ns, kind, payload)) + payload
        queue.put_nowait((self.last_seq, data))
        return self.last_seq

    async def _publish_loop(self, queue: asyncio.Queue[tuple[int, bytes]], js: JetStreamContext) -> None:
        try:
            while True:
                seq, data = await queue.get()
                future = await js.publish_async(
                    self.subject, data, headers={"Nats-Expected-Last-Sequence": str(seq - 1),
                                                 "Nats-Msg-Id": f"{self.name}-{seq}"})
                future.add_done_callback(functools.partial(self._acked, seq))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - stop acknowledging anything
            self._fail(error)

    def _acked(self, seq: int, done: asyncio.Future) -> None:
        if done.cancelled() or done.exception() is not None:
            self._fail(done.exception() or asyncio.CancelledError())
            return
        self._acks.add(seq)
        while self.durable_seq + 1 in self._acks:
            self.durable_seq += 1
            self._acks.discard(self.durable_seq)
        self._waiters = [(target, f) for target, f in self._waiters if not _release(target, f, self.durable_seq)]

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
            self.on_failure(error)
        self._failure = error
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(JournalError(f"journal publish failed: {error}"))
        self._waiters = []

    async def wait(self, seq: int) -> None:
        if seq <= self.durable_seq:
            return
        if self._failure is not None:
            raise JournalError(f"journal publish failed: {self._failure}")
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        await future

    def snapshot(self, seq: int, state: dict) -> None:
        task = asyncio.get_running_loop().create_task(self._store_snapshot(seq, state))
        self._snapshot_tasks.add(task)
        task.add_done_callback(self._snapshot_tasks.discard)

    async def _store_snapshot(self, seq: int, state: dict) -> None:
        body = await asyncio.to_thread(encode_snapshot, state)
        header = json.dumps({"version": FORMAT_VERSION, "seq": seq, "sha256": hashlib.sha256(body).hexdigest()})
        # One at a time, newest wins: an older snapshot stored after a newer one's purge would
        # point before records that are gone.
        async with self._snapshot_lock:
            if seq <= self._stored_seq:
                return
            await self.wait(seq)
            await self._objects.put(self.name, header.encode() + b"\n" + body)
            self._stored_seq = seq
            await self._purge_through(seq)
        log.info("snapshot stored", seq=seq, bytes=len(body))

    async def _purge_through(self, seq: int) -> None:
        """Drop records 1..seq (covered by the stored snapshot at ``seq``), keep every later one.

        A purge request with ``seq = n`` keeps ``n`` and later (``n = 1`` keeps
        everything). Without a sequence it purges the whole stream, and nats-py
        sends none for ``n = 0``; on an empty stream, a purge to ``n`` moves the
        stream's first sequence to ``n`` (nats-server 2.15, pinned by
        test_replication.py). So a snapshot that covers no record (seq 0)
        purges nothing, and no purge ever goes below 2.
        """
        if seq >= 1:
            await self.jetstream.purge_stream(self.stream, seq=seq + 1)

    async def aclose(self) -> None:
        """Wait for what is in flight to be acknowledged and snapshots being stored, then disconnect."""
        if self._snapshot_tasks:
            await asyncio.wait(self._snapshot_tasks, timeout=SNAPSHOT_READ_SECONDS)
        if self._publisher is not None:
            while self._queue is not None and not self._queue.empty() and self._failure is None:
                await asyncio.sleep(0.01)
            if self._failure is None and self.last_seq > self.durable_seq:
                await asyncio.wait_for(self.wait(self.last_seq), timeout=10)
            self._publisher.cancel()
        if self._nc is not None:  # None: connect() never succeeded, nothing to drain
            await self._nc.drain()


def _release(target: int, future: asyncio.Future, durable: int) -> bool:
    if target <= durable:
        if not future.done():
            future.set_result(None)
        return True
    return False
