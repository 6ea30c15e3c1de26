"""MoldUDP64 over UDP, received in batches and applied to a :class:`riskcore.Book` without the GIL.

:class:`PacketReceiver` takes datagrams from a bound UDP socket with
``recvmmsg`` (many per system call) and, for the common case, a packet of
the expected session whose first message is the next one expected, checks
its blocks and feeds them to the book's compiled decoder in the same C loop:
no Python object is made per packet. Anything else (a packet past a gap or
behind it in part, end of session, a heartbeat that reveals a gap, another
session, or any packet while the caller's sequencer is recovering) stops the
loop and goes back to the caller, with the datagrams after it, as bytes, for
the Python sequencer (``moldudp64.Sequencer``), which owns those rules.
Malformed datagrams (shorter than a header, blocks that do not fill the
packet as its count says, cut off by the buffer) are counted and dropped.

:func:`send_datagrams` is the sending half for the simulator and the
benchmarks: many datagrams per ``sendmmsg`` call on a connected socket.

MoldUDP64 1.00: header ``Session(10) | Sequence Number(8) | Message
Count(2)``, then ``Length(2) | message`` blocks; count 0 is a heartbeat and
0xFFFF end of session, both carrying the next sequence number.
"""
from collections import namedtuple

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport errno, EAGAIN, EINTR
from libc.stdint cimport uint8_t, uint16_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, strerror
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

from riskcore.book cimport Book
from riskcore.bookstate cimport BookState
from riskcore.itch cimport decode_into, read_u16, read_u48, read_u64

cdef extern from "<sys/socket.h>" nogil:
    int recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout)
    int sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags)
    int MSG_DONTWAIT
    int MSG_TRUNC

cdef extern from "<poll.h>" nogil:
    cdef struct pollfd:
        int fd
        short events
        short revents
    ctypedef unsigned long nfds_t
    int ppoll(pollfd* fds, nfds_t nfds, const timespec* timeout, const void* sigmask)
    short POLLIN

cdef enum:
    HEADER_BYTES = 20
    SESSION_BYTES = 10
    HEARTBEAT = 0
    END_OF_SESSION = 0xFFFF
    DATAGRAM_BYTES = 65536      # the largest UDP payload fits
    SEND_BATCH = 1024

Received = namedtuple(
    "Received", "expected packets messages heartbeats duplicates malformed first_timestamp received_ns others")


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline int64_t realtime_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef inline bint blocks_fill(const uint8_t* p, Py_ssize_t n, uint16_t count) noexcept nogil:
    """Whether ``count`` length-framed blocks fill p[0:n] exactly."""
    cdef Py_ssize_t pos = 0
    cdef uint16_t k
    for k in range(count):
        if pos + 2 > n:
            return False
        pos += 2 + read_u16(p + pos)
    return pos == n


# What the loop does with one datagram.
cdef enum Verdict:
    APPLIED = 0         # in sequence: fed to the book
    COUNTED = 1         # a heartbeat that shows no gap, or a whole duplicate: counted, nothing to do
    MALFORMED = 2       # counted and dropped
    OTHER = 3           # for the Python sequencer


cdef struct Tally:
    uint64_t expected
    uint64_t packets
    uint64_t messages
    uint64_t heartbeats
    uint64_t duplicates
    uint64_t malformed
    int64_t first_timestamp
    int64_t received_ns
    int64_t batch_ns            # CLOCK_REALTIME when the current batch was taken

cdef inline void one_vector(mmsghdr* header, iovec* vector) noexcept nogil:
    """A message header of one buffer, no address (the socket's own, or the connected peer) and no control data."""
    header.msg_hdr.msg_name = NULL
    header.msg_hdr.msg_namelen = 0
    header.msg_hdr.msg_iov = vector
    header.msg_hdr.msg_iovlen = 1
    header.msg_hdr.msg_control = NULL
    header.msg_hdr.msg_controllen = 0
    header.msg_hdr.msg_flags = 0


cdef int take(int fd, int batch, mmsghdr* headers, iovec* vectors, double deadline) noexcept nogil:
    """Up to ``batch`` datagrams, waiting until ``deadline`` for the first; -errno on failure, 0 at the deadline."""
    cdef int i, n
    cdef pollfd ready
    cdef timespec wait
    cdef double left
    while True:
        for i in range(batch):
            one_vector(&headers[i], &vectors[i])
        n = recvmmsg(fd, headers, batch, MSG_DONTWAIT, NULL)
        if n > 0:
            return n
        if n < 0 and errno != EAGAIN and errno != EINTR:
            return -errno
        left = deadline - monotonic()
        if left <= 0:
            return 0
        ready.fd = fd
        ready.events = POLLIN
        wait.tv_sec = <long>left
        wait.tv_nsec = <long>((left - wait.tv_sec) * 1e9)
        ppoll(&ready, 1, &wait, NULL)


cdef inline Verdict judge(BookState* st, const uint8_t* p, Py_ssize_t n, int flags, const uint8_t* session,
                          Tally* t) noexcept nogil:
    """Apply one datagram when it is the next in sequence; say what it was."""
    if n < HEADER_BYTES or flags & MSG_TRUNC:
        return MALFORMED
    if memcmp(p, session, SESSION_BYTES) != 0:
        return OTHER
    cdef uint64_t sequence = read_u64(p + 10)
    cdef uint16_t count = read_u16(p + 18)
    if count == HEARTBEAT or count == END_OF_SESSION:
        if n != HEADER_BYTES:
            return MALFORMED
        if count == END_OF_SESSION or sequence > t.expected:
            return OTHER
        t.heartbeats += 1
        return COUNTED
    if not blocks_fill(p + HEADER_BYTES, n - HEADER_BYTES, count):
        return MALFORMED
    if sequence + count <= t.expected:
        t.duplicates += count
        return COUNTED
    if sequence != t.expected:
        return OTHER
    if t.first_timestamp < 0 and n >= HEADER_BYTES + 2 + 11:
        t.first_timestamp = <int64_t>read_u48(p + HEADER_BYTES + 2 + 5)
        t.received_ns = t.batch_ns
    decode_into(st, p + HEADER_BYTES, n - HEADER_BYTES, True, -1)
    t.expected += count
    t.messages += count
    return APPLIED


cdef class PacketReceiver:
    """Batched receive of one MoldUDP64 session from a bound UDP socket into a Book.

    Parameters
    ----------
    fd : int
        The descriptor of a bound UDP socket (``sock.fileno()``); the socket
        stays the caller's to close, and must outlive this receiver.
    batch : int
        Datagrams taken per ``recvmmsg`` call at most (1..1024); each has a
        64 KiB buffer.
    """

    def __init__(self, int fd, int batch=64):
        if fd < 0:
            raise ValueError(f"fd must be a socket's descriptor (>= 0), got {fd}")
        if not 1 <= batch <= 1024:
            raise ValueError(f"batch must be in 1..1024, got {batch}")
        if self._buffers != NULL:
            raise RuntimeError("a PacketReceiver is initialised once")
        self._fd = fd
        self._batch = batch
        self._buffers = <uint8_t*>malloc(<size_t>batch * DATAGRAM_BYTES)
        self._headers = <mmsghdr*>malloc(batch * sizeof(mmsghdr))
        self._vectors = <iovec*>malloc(batch * sizeof(iovec))
        if self._buffers == NULL or self._headers == NULL or self._vectors == NULL:
            raise MemoryError()
        cdef int i
        for i in range(batch):
            self._vectors[i].iov_base = self._buffers + <size_t>i * DATAGRAM_BYTES
            self._vectors[i].iov_len = DATAGRAM_BYTES

    def __dealloc__(self):
        free(self._buffers)
        free(self._headers)
        free(self._vectors)

    def receive(self, Book book not None, bytes session not None, uint64_t expected, bint in_sequence,
                Py_ssize_t max_packets=4096, double wait=0.05, double budget=0.005):
        """Receive datagrams; apply those in sequence to ``book``; return the rest, from the first that is not.

        Parameters
        ----------
        book : Book
            Fed the in-sequence packets' messages.
        session : bytes
            The session's 10 wire bytes.
        expected : int
            The sequence number of the next message to apply.
        in_sequence : bool
            False while the caller's sequencer holds packets or knows of a
            gap: then every datagram goes back to it.
        max_packets : int
            Return once this many datagrams were taken.
        wait : float
            Seconds to wait for the first datagram.
        budget : float
            Seconds from the first datagram after which to return (the
            longest the caller's marks wait).

        Returns
        -------
        Received
            ``expected`` (the next sequence number after what was applied),
            the ``packets`` accepted (applied, duplicates and heartbeats),
            the ``messages`` applied, ``heartbeats``, ``duplicates``
            (messages), ``malformed`` datagrams dropped, the exchange
            timestamp of the first message applied and the ``CLOCK_REALTIME``
            ns when its datagram was taken (-1 both when none), and
            ``others``: the datagrams for the sequencer, in arrival order.

        Raises
        ------
        OSError
            The socket failed (not a timeout).

        Notes
        -----
        The GIL is released for the whole loop, which takes, checks and
        decodes in C. The book is busy meanwhile (its other calls raise).
        """
        if self._buffers == NULL:
            raise RuntimeError("the PacketReceiver was not initialised")
        if len(session) != SESSION_BYTES:
            raise ValueError(f"session must be {SESSION_BYTES} bytes, got {len(session)}")
        if max_packets < 1:
            raise ValueError(f"max_packets must be >= 1, got {max_packets}")
        if not (wait >= 0 and budget >= 0):
            raise ValueError(f"wait and budget must be >= 0, got {wait} and {budget}")
        book._idle()
        cdef const uint8_t* wire_session = session
        cdef Tally t
        t.expected = expected
        t.packets = t.messages = t.heartbeats = t.duplicates = t.malformed = 0
        t.first_timestamp = t.received_ns = t.batch_ns = -1
        cdef int n = 0, i = 0, error = 0, other = -1
        cdef Py_ssize_t taken = 0
        cdef Verdict verdict
        cdef double deadline = monotonic() + wait, now
        cdef bint started = False
        book._busy = True
        try:
            with nogil:
                while taken < max_packets:
                    n = take(self._fd, self._batch, self._headers, self._vectors, deadline)
                    if n <= 0:
                        error = -n
                        break
                    if not started:
                        started = True
                        now = monotonic()
                        if now + budget < deadline:
                            deadline = now + budget
                    if t.first_timestamp < 0:
                        t.batch_ns = realtime_ns()
                    for i in range(n):
                        taken += 1
                        if not in_sequence:
                            other = i
                            break
                        verdict = judge(&book._state, self._buffers + <size_t>i * DATAGRAM_BYTES,
                                              self._headers[i].msg_len, self._headers[i].msg_hdr.msg_flags,
                                              wire_session, &t)
                        if verdict == MALFORMED:
                            t.malformed += 1
                        elif verdict == OTHER:
                            other = i
                            break
                        else:
                            t.packets += 1
                    if other >= 0:
                        break
        finally:
            book._busy = False
        if error:
            raise OSError(error, strerror(error).decode("utf-8", "replace"))
        others = []
        if other >= 0:
            for i in range(other, n):
                others.append(PyBytes_FromStringAndSize(<char*>self._buffers + <size_t>i * DATAGRAM_BYTES,
                                                        self._headers[i].msg_len))
        return Received(t.expected, t.packets, t.messages, t.heartbeats, t.duplicates, t.malformed,
                        t.first_timestamp, t.received_ns, others)


def send_datagrams(int fd, const uint8_t[::1] data not None, const int64_t[::1] offsets not None,
                   Py_ssize_t first=0, Py_ssize_t last=-1):
    """Send datagrams ``first..last-1`` of ``data`` on a connected UDP socket; return how many were sent.

    Parameters
    ----------
    fd : int
        A connected UDP socket's descriptor (blocking).
    data : uint8 bytes-like
        The datagrams back to back.
    offsets : int64 array
        Datagram i is ``data[offsets[i]:offsets[i + 1]]`` (one more offset
        than datagrams).
    first, last : int
        The datagrams to send (``last`` -1: to the end).

    Raises
    ------
    OSError
        The socket failed.

    Notes
    -----
    ``sendmmsg`` with up to 1,024 datagrams a call; GIL released.
    """
    cdef Py_ssize_t count = offsets.shape[0] - 1
    if last < 0:
        last = count
    if not 0 <= first <= last <= count:
        raise ValueError(f"datagrams {first}..{last} are not within 0..{count}")
    cdef Py_ssize_t i
    for i in range(first, last):
        if not 0 <= offsets[i] <= offsets[i + 1] <= data.shape[0]:
            raise ValueError(f"offsets[{i}:{i + 2}] = {offsets[i]}, {offsets[i + 1]} are not within the data")
    cdef mmsghdr headers[SEND_BATCH]
    cdef iovec vectors[SEND_BATCH]
    cdef const uint8_t* base = &data[0] if data.shape[0] else NULL
    cdef Py_ssize_t sent = first, k, n
    cdef int done, error = 0
    with nogil:
        while sent < last:
            n = min(<Py_ssize_t>SEND_BATCH, last - sent)
            for k in range(n):
                vectors[k].iov_base = <void*>(base + offsets[sent + k])
                vectors[k].iov_len = offsets[sent + k + 1] - offsets[sent + k]
                one_vector(&headers[k], &vectors[k])
            done = sendmmsg(fd, headers, <unsigned int>n, 0)
            if done < 0:
                if errno == EINTR:
                    continue
                error = errno
                break
            sent += done
    if error:
        raise OSError(error, strerror(error).decode("utf-8", "replace"))
    return sent - first
