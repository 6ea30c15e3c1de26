"""Which process a pid is, in a way that outlives the control plane, and the exit of one it did not start.

A pid alone can be reused once its process is gone; a pid with the process's
start time (``/proc/<pid>/stat`` field 22, clock ticks since boot) cannot be
mistaken for another process until the machine restarts, which also ends the
process. A restarted control plane re-adopts a strategy only when both match.

A re-adopted process is not the new control plane's child (``waitpid`` cannot
see it), so its exit comes from a pidfd (Linux 5.3+): readable once the
process has ended, watched by the event loop, no polling.
"""
from __future__ import annotations

import asyncio
import os
from typing import NamedTuple, Optional

__all__ = ["ProcessId", "identify", "wait_exit"]


class ProcessId(NamedTuple):
    pid: int
    started: int          # clock ticks since boot


def identify(pid: int) -> Optional[ProcessId]:
    """The identity of live process ``pid``; None when there is none (or only its zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': fields follow the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return ProcessId(pid, int(fields[19]))


async def wait_exit(pid: int) -> None:
    """Return once process ``pid`` has ended (at once if it has already)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
