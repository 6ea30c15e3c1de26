"""The heartbeat channel: every strategy's datagrams to one Unix socket that the control plane binds.

A socket path, not the child's stdout: a pipe dies with the control plane at
its other end, a path outlives it. A strategy keeps sending to the path; a
restarted control plane binds it again and hears the strategies it re-adopts
from their next heartbeat on. While nothing is bound there a send fails and
is dropped, so a strategy never blocks on, or dies of, a missing control plane.

A message is ASCII ``<pid> <word>``; the words are ``ready`` (``on_start``
returned), ``hb``, ``paused`` and ``resumed``; a strategy says nothing before
``on_start`` returned, so any word means it has started (a datagram is dropped
when the socket's queue, ``net.unix.max_dgram_qlen``, is full: the next one
says the same). The pid says which process speaks; the supervisor ignores pids
it does not run. The socket file is
made readable and writable by its owner only.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any, Callable, Optional

__all__ = ["Beacon", "HeartbeatSocket", "MAX_PATH"]

# sockaddr_un's sun_path, less its terminating NUL.
MAX_PATH = 107


class Beacon:
    """The strategy's end: ``say(word)`` sends one datagram, or drops it when nobody listens."""

    def __init__(self, path: str):
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._prefix = f"{os.getpid()} ".encode()

    def say(self, word: str) -> None:
        # ENOENT/ECONNREFUSED: no control plane bound; EAGAIN: its buffer is full. Either way the next
        # heartbeat tries again, and silence is what the control plane judges.
        with contextlib.suppress(OSError):
            self._socket.sendto(self._prefix + word.encode(), self.path)

    def close(self) -> None:
        self._socket.close()


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, deliver: Callable[[int, str], None]):
        self.deliver = deliver

    def datagram_received(self, data: bytes, addr: Any) -> None:
        pid, _, word = data.decode("ascii", "replace").partition(" ")
        if pid.isdigit() and word:
            self.deliver(int(pid), word)


class HeartbeatSocket:
    """The control plane's end, bound at ``path`` on the running loop; ``deliver(pid, word)`` per message.

    A file left at ``path`` by a control plane that died is replaced: only one control plane runs per
    journal (its lock), and the path is the journal's.
    """

    def __init__(self, path: str, deliver: Callable[[int, str], None]):
        if len(os.fsencode(path)) > MAX_PATH:
            raise ValueError(f"heartbeat socket path longer than {MAX_PATH} bytes: {path!r}")
        self.path = path
        self.deliver = deliver
        self._transport: Optional[asyncio.BaseTransport] = None

    async def open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Receiver(self.deliver), sock=sock)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
