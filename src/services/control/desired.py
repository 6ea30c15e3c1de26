"""Desired state: what the operators asked of each strategy, and which process runs it, journaled.

A restarted control plane reads it back (the newest snapshot and the records
after it, through :class:`~riskcore_services.common.failover.DurableServer`)
and finds its strategies again: their specs, whether each should run, be
paused, stay stopped or stay FAULTED, and the identity (pid and start time) of
the process last started for it, so that one still alive is re-adopted rather
than started twice.

Records (``kind``, JSON payload):

- ``REGISTER`` ``{name, entry, account, config}``
- ``WANT`` ``{name, want}``: ``running``, ``paused``, ``stopped`` or ``faulted``
- ``PROCESS`` ``{name, pid, started}``: the process started for it (``pid`` 0: none any more)
- ``REMOVE`` ``{name}``

Every record is applied by the same :meth:`DesiredState.apply`, live and in
replay; only live changes are appended to the journal. Operator calls wait
for their record to be durable before they act (and so before they answer);
a process is given its go (its token) only once its PROCESS record is durable.
"""
from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any, Iterable, Optional

import orjson

from riskcore_services.common.journal import Journal, JournalError

__all__ = ["DesiredState", "Kind", "Wanted", "Want"]

# The snapshot's layout; a snapshot of another version is refused, never guessed at.
VERSION = 1


class Kind(enum.IntEnum):
    REGISTER = 1
    WANT = 2
    PROCESS = 3
    REMOVE = 4


class Want(str, enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAULTED = "faulted"      # the breaker opened: no restart until an operator resets it


@dataclasses.dataclass
class Wanted:
    """One strategy's desired state and its last process."""

    entry: str
    account: str
    config: dict[str, Any]
    want: Want = Want.STOPPED
    pid: int = 0
    started: int = 0          # the process's start time (clock ticks since boot)


class DesiredState:
    """The strategies' desired state, on ``journal`` (None: in memory only).

    Offers what :class:`~riskcore_services.common.failover.DurableServer` needs
    (``last_seq``, :meth:`recover`, :meth:`replay`, :meth:`snapshot`).
    """

    def __init__(self, journal: Optional[Journal] = None):
        self.journal = journal
        self.strategies: dict[str, Wanted] = {}
        self.last_seq = 0

    # ------------------------------------------------------------ changes

    def apply(self, kind: int, fields: dict[str, Any]) -> None:
        """Apply one record (live or replayed); JournalError for one this build does not know."""
        name = fields["name"]
        if kind == Kind.REGISTER:
            self.strategies[name] = Wanted(fields["entry"], fields["account"], fields["config"])
        elif kind == Kind.WANT:
            self.strategies[name].want = Want(fields["want"])
        elif kind == Kind.PROCESS:
            wanted = self.strategies[name]
            wanted.pid, wanted.started = fields["pid"], fields["started"]
        elif kind == Kind.REMOVE:
            del self.strategies[name]
        else:
            raise JournalError(f"control journal: unknown record kind {kind}")

    async def record(self, kind: Kind, **fields: Any) -> None:
        """Apply a change and return once it is durable."""
        seq = self.note(kind, **fields)
        if self.journal is not None:
            await self.journal.wait(seq)

    def note(self, kind: Kind, **fields: Any) -> int:
        """Apply a change and queue its record without waiting (for what nothing answers on: an exit,
        a breaker trip); its sequence number (0 without a journal)."""
        self.apply(kind, fields)
        if self.journal is None:
            return 0
        self.last_seq = self.journal.append(time.time_ns(), kind, orjson.dumps(fields))
        return self.last_seq

    async def durable(self) -> None:
        """Return once every change so far is durable."""
        if self.journal is not None:
            await self.journal.wait(self.last_seq)

    # ------------------------------------------------------------ durability

    async def recover(self, base: int, state: Optional[dict], records: Iterable[tuple[int, int, int, bytes]]
                      ) -> dict[str, Any]:
        self.strategies = {}
        if state is not None:
            if state.get("version") != VERSION:
                raise JournalError(f"control snapshot version {state.get('version')!r}; this build reads {VERSION}")
            self.strategies = {name: Wanted(**{**fields, "want": Want(fields["want"])})
                               for name, fields in state["strategies"].items()}
        self.last_seq = base
        replayed = self.replay(records)
        return dict(snapshot_seq=base, replayed=replayed, strategies=len(self.strategies))

    def replay(self, records: Iterable[tuple[int, int, int, bytes]]) -> int:
        count = 0
        for seq, _, kind, payload in records:
            self.apply(kind, orjson.loads(payload))
            self.last_seq = seq
            count += 1
        return count

    def snapshot(self) -> None:
        if self.journal is not None:
            strategies = {name: {**dataclasses.asdict(w), "want": w.want.value} for name, w in self.strategies.items()}
            self.journal.snapshot(self.last_seq, {"version": VERSION, "strategies": strategies})
