"""Durable state for any service: a write-ahead journal of records and snapshots of the whole state.

A service that must not lose what it was told (the risk engine's positions,
the control plane's desired state) appends one record per state change and
answers its caller only once that record is durable; now and then it stores
a snapshot of its whole state, which drops the records it covers. Recovery is
"newest snapshot + the records after it", replayed through the same code
that applied them live. The journal knows nothing of what the records mean:
a record is an integer ``kind`` the service defines and ``payload`` bytes it
encodes; a snapshot is plain data (dicts, lists, tuples, sets, bytes, str,
int, float, None).

Two backends, one API (:class:`Journal`):

- :class:`~riskcore_services.common.journal.sqlite.SqliteJournal`: one SQLite
  file in WAL mode on local disk, held under a file lock, group-committed by a
  writer thread.
- :class:`~riskcore_services.common.journal.jetstream.NatsJournal`: a NATS
  JetStream stream (replicated), snapshots in an object store; a
  :class:`~riskcore_services.common.failover.Lease` picks the one writer and
  the others follow it as hot standbys.

How a second service uses it (SQLite; :class:`~riskcore_services.common.failover.DurableServer`
does all of this, and the failover, for a :class:`~riskcore_services.common.server.Server`)::

    journal = SqliteJournal(path)                 # open + lock; JournalError if in use or damaged
    base, snapshot, records = journal.load()      # newest snapshot (or None) and the records after it
    state = restore(snapshot)                     # the service's own: plain data -> its state
    for seq, time_ns, kind, payload in records:   # replay: each checked (CRC, no gap) as it is read
        apply(kind, payload)
    journal.start(asyncio.get_running_loop())     # writing from here on
    seq = journal.append(time.time_ns(), KIND, payload)   # after applying a change ...
    await journal.wait(seq)                       # ... answer once it is durable
    journal.snapshot(seq, dump(state))            # now and then: state as of record ``seq``
    await journal.aclose()                        # write what is queued, release the lock

Errors are :class:`JournalError` (an ``Unavailable``: a service cannot serve on
a journal it cannot read or write), with a message that names the file and
the record; a service's runner turns one at start into a one-line start error.
"""
from __future__ import annotations

import asyncio
import io
import pickle
from typing import Any, NamedTuple, Protocol

from riskcore_services.common.errors import Unavailable

# The journal's own format: its tables or stream layout, the record envelope and the snapshot
# envelope. What payloads and snapshot data mean is versioned by the service that writes them.
FORMAT_VERSION = 2


class JournalError(Unavailable):
    """The journal or snapshot cannot be used as it is; the message says why and where."""


class Record(NamedTuple):
    """One journaled change: its sequence number, when it happened, what kind it is, its encoding."""

    seq: int
    time_ns: int
    kind: int
    payload: bytes


class Journal(Protocol):
    """What both backends offer a service once recovered (writing side)."""

    path: str
    last_seq: int
    durable_seq: int

    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...

    def append(self, time_ns: int, kind: int, payload: bytes) -> int: ...

    async def wait(self, seq: int) -> None: ...

    def snapshot(self, seq: int, state: dict[str, Any]) -> None: ...

    async def aclose(self) -> None: ...


class _PlainData(pickle.Unpickler):
    # Snapshots hold only dicts, lists, tuples, sets, bytes, str, int, float and
    # None; refusing every class keeps a tampered file from running code.
    def find_class(self, module: str, name: str):
        raise JournalError(f"snapshot refers to {module}.{name}; only plain data is allowed")


def encode_snapshot(state: dict) -> bytes:
    """Encode a snapshot's plain data (pickle protocol 5; read back only as plain data)."""
    return pickle.dumps(state, protocol=5)


def decode_snapshot(blob: bytes) -> dict:
    """Decode a snapshot; JournalError when it names any class (a tampered or foreign file)."""
    return _PlainData(io.BytesIO(blob)).load()

