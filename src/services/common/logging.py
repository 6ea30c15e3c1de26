"""Structured JSON logs, configured once per process; access lines written by a thread of their own.

Every line is one JSON object on stdout with an ISO-8601 UTC timestamp, the
level, the event and whatever the caller bound. A call's request id and
method travel in a context variable, so every line logged during a call
carries them.

Two kinds of line:

- Lines logged through structlog (start-up, recovery, admin changes,
  refusals) are rendered and written where they are logged, at once: they
  are few, and a line such as "state recovered" is in the file before
  anything the process does next.
- The access line of a call, one per call and so the bulk of the output, is
  *deferred*: the event loop queues the call's record unrendered (see
  :mod:`riskcore_services.common.calls`) and :class:`LogWriter`'s thread
  renders and writes it, so the event loop neither formats JSON nor waits on
  stdout for it. The queue is bounded: when it is full the line is dropped
  and counted (:func:`lines_dropped`, exported as
  ``riskcore_log_lines_dropped_total``) rather than delaying the call. What
  is queued is written at exit (and on :func:`flush_logs`). A deferred line
  carries the time its call ended, so it may reach the file a few
  milliseconds after lines stamped later.
"""
import atexit
import contextvars
import datetime
import logging
import queue
import sys
import threading
import time
import traceback
from typing import BinaryIO, Optional, Protocol

import orjson
import structlog
from structlog.typing import EventDict

# The gRPC call the current task serves. One variable set once per call: structlog's
# bind_contextvars costs a variable and a token per key, on every call.
_call: contextvars.ContextVar = contextvars.ContextVar("riskcore_call", default=None)

# Deferred lines queued at most. At 10k logged calls a second this is 1.6 s of a stalled stdout; a
# queued line holds its call's record (a few hundred bytes), so the bound is also one on memory.
QUEUE_LINES = 16_384
# Lines rendered between two writes (about 1 ms of work; a turn at 2k calls/s has some 20). A write
# releases the GIL, but taking it back can cost the writer a switch interval (5 ms) when the event
# loop is busy: small batches would let a saturated loop starve the writer.
BATCH_LINES = 256
# Seconds between the writer's turns (see LogWriter).
WRITE_INTERVAL = 0.01
# Seconds flush_logs and the exit handler wait for the queue to be written.
EXIT_FLUSH_SECONDS = 5.0


def bind_call(call) -> None:
    """Tag every line the current task logs from now on with ``call.request_id`` and ``call.method``.

    ``request_id`` may be a property computed when the first line is logged.
    """
    _call.set(call)


def merge_call_context(logger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: add the current call's ``request_id`` and ``method`` (see :func:`bind_call`)."""
    call = _call.get()
    if call is not None:
        event_dict.setdefault("request_id", call.request_id)
        event_dict.setdefault("method", call.method)
    return event_dict


_second_stamp: tuple[int, str] = (-1, "")     # (second, its ISO text up to the seconds) last formatted


def iso_utc(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as structlog's ISO UTC stamp, ``2026-01-02T03:04:05.678901Z``.

    As ``datetime.isoformat``: microseconds, left out when they are zero. The
    date and time of day are formatted once per second.
    """
    global _second_stamp
    second, micros = divmod(ns // 1000, 1_000_000)
    cached, text = _second_stamp
    if cached != second:
        text = datetime.datetime.fromtimestamp(second, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _second_stamp = (second, text)
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def add_timestamp(logger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``timestamp``, the ISO UTC time now, unless the line already has one.

    A deferred line is rendered after the fact and brings the instant it is about.
    """
    if "timestamp" not in event_dict:
        event_dict["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return event_dict


class DeferredLine(Protocol):
    """A line queued unrendered; the writer thread asks it for its content."""

    def log_fields(self) -> tuple[str, str, dict]:
        """``(level, event, fields)``: a level name (``info``, ``error``...), the event, and every other
        key of the line, ``timestamp`` included (``exc_info`` is formatted as structlog does)."""


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}


class _Pipeline:
    """What :func:`configure_logging` set up, so that the writer thread can render a deferred line itself.

    Rendering a deferred line directly (its fields through the same
    exception formatting and the same orjson call the processors end with)
    costs about a third of a pass through structlog's bound logger, and lets
    the writer write a batch of lines at once. It does so only while this
    configuration is the active one; under ``capture_logs``, or anyone else's
    configuration, deferred lines go through structlog like any other.
    """

    def __init__(self, processors: list, factory, wrapper_class, level: int, file: BinaryIO):
        self.processors, self.snapshot = processors, tuple(processors)
        self.factory, self.wrapper_class, self.level, self.file = factory, wrapper_class, level, file

    def active(self) -> bool:
        config = structlog.get_config()
        return (config["logger_factory"] is self.factory and config["wrapper_class"] is self.wrapper_class
                and tuple(config["processors"]) == self.snapshot)

    @staticmethod
    def render(level: str, event: str, fields: dict) -> bytes:
        """The JSON line the processors of :func:`configure_logging` make of ``fields`` (logged off a call)."""
        fields["event"] = event
        fields["level"] = level
        if "exc_info" in fields:
            return orjson.dumps(structlog.processors.format_exc_info(None, level, fields), default=str)
        return orjson.dumps(fields, default=str)


_pipeline: Optional[_Pipeline] = None


class _Flush:
    """A queue marker: every line queued before it is written when ``done`` is set."""

    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False):
        self.done = threading.Event()
        self.stop = stop


class LogWriter:
    """A bounded queue of deferred lines and the daemon thread that renders and writes them.

    Parameters
    ----------
    capacity : int
        Lines queued at most; beyond it :meth:`submit` drops the line and
        counts it in :attr:`dropped`.
    interval : float
        Seconds the writer sleeps between its turns. A producer never wakes
        the writer (waking a thread costs the waker 4-16 µs, more than the
        rest of the call layer); the writer drains the queue every
        ``interval``. At 10 ms a 16k-line queue fills only above 1.6M lines
        a second, and a sleep costs the idle writer about 100 wake-ups a
        second and nothing else (a timed wait on an Event would take Python
        locks at each).

    Notes
    -----
    :meth:`submit` costs two C calls (the queue's size and put); it never
    blocks and takes no lock. The writer holds the GIL while it renders (a
    few µs a line), and releases it at each write, every
    :data:`BATCH_LINES` lines at most.
    The thread starts with the first line and is stopped at interpreter
    exit once it has written what was queued; after :meth:`close` lines are
    rendered and written on the caller's thread, so a line queued during
    exit still reaches the file.
    """

    def __init__(self, capacity: int = QUEUE_LINES, interval: float = WRITE_INTERVAL):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.interval = interval
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._put = self._queue.put
        self._size = self._queue.qsize
        self._state_lock = threading.Lock()     # starting and closing
        self._count_lock = threading.Lock()     # drops, from any thread
        self._open = False                      # the thread takes lines
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self.dropped = 0

    def submit(self, line: DeferredLine) -> bool:
        """Queue ``line`` for the writer thread; return False when the queue is full (the line is dropped)."""
        if not self._open:
            return self._submit_closed(line)
        if self._size() >= self.capacity:
            self._count_drop()
            return False
        self._put(line)
        return True

    def _count_drop(self, lines: int = 1) -> None:
        with self._count_lock:
            self.dropped += lines

    def _submit_closed(self, line: DeferredLine) -> bool:
        if not self._closed:
            self.start()
            return self.submit(line)
        self._write(self._render([line]))     # after close (interpreter exit): on the caller's thread
        return True

    # -- lifecycle
    def start(self) -> None:
        """Start the writer thread (the first line does, if nobody did)."""
        with self._state_lock:
            if self._open or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="riskcore-log-writer", daemon=True)
            self._thread.start()
            self._open = True
            atexit.register(self.close)

    def flush(self, timeout: float = EXIT_FLUSH_SECONDS) -> bool:
        """Wait until every line queued so far is written; False if that took longer than ``timeout``."""
        if not self._open:
            return True
        marker = _Flush()
        self._put(marker)            # never dropped: a marker holds no line
        return marker.done.wait(timeout)

    def close(self, timeout: float = EXIT_FLUSH_SECONDS) -> bool:
        """Write what is queued and stop the thread; later lines are written on their caller's thread."""
        with self._state_lock:
            if self._closed:
                return True
            self._closed = True
            if not self._open:
                return True
            self._open = False
            marker = _Flush(stop=True)
            self._put(marker)
        written = marker.done.wait(timeout)
        if written and self._thread is not None:
            self._thread.join(timeout)
            # A line queued by a thread that saw the writer open just before it closed.
            while self._size():
                self._submit_closed(self._queue.get_nowait())
        return written

    # -- the writer thread
    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                if not self._turn():
                    return
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad turn
                traceback.print_exc(file=sys.stderr)

    def _turn(self) -> bool:
        """Render and write what is queued; False once the stop marker has been reached."""
        get, size = self._queue.get, self._size
        batch: list = []
        while size():
            item = get()         # the only consumer: never blocks while size() > 0
            if type(item) is _Flush:
                self._write(self._render(batch))
                batch.clear()
                item.done.set()
                if item.stop:
                    return False
                continue
            batch.append(item)
            if len(batch) >= BATCH_LINES:
                self._write(self._render(batch))
                batch.clear()
        self._write(self._render(batch))
        return True

    def _render(self, lines: list) -> list[tuple[BinaryIO, bytes]]:
        """Render deferred lines: ``(file, bytes)`` for those rendered here, nothing for those that went
        through structlog (its configuration writes them)."""
        contents = []
        for line in lines:
            try:
                contents.append(line.log_fields())
            except Exception:  # noqa: BLE001 - one bad line must not stop the writer
                self._count_drop()
                traceback.print_exc(file=sys.stderr)
        # Which way to render is decided once the fields are in hand: logs may have started being
        # captured while the lines waited.
        pipeline = _pipeline if _pipeline is not None and _pipeline.active() else None
        rendered = []
        for level, event, fields in contents:
            try:
                if pipeline is None:
                    getattr(structlog.get_logger(), level)(event, **fields)
                elif _LEVELS[level] >= pipeline.level:
                    rendered.append((pipeline.file, pipeline.render(level, event, fields)))
            except Exception:  # noqa: BLE001
                self._count_drop()
                traceback.print_exc(file=sys.stderr)
        return rendered

    def _write(self, rendered: list[tuple[BinaryIO, bytes]]) -> None:
        # Consecutive lines for one file are joined into one write.
        start = 0
        while start < len(rendered):
            file = rendered[start][0]
            end = start + 1
            while end < len(rendered) and rendered[end][0] is file:
                end += 1
            try:
                file.write(b"\n".join([data for _, data in rendered[start:end]]) + b"\n")
                file.flush()
            except (OSError, ValueError):   # a closed or broken stdout: the lines are lost, say how many
                self._count_drop(end - start)
            start = end


_writer = LogWriter()


def writer() -> LogWriter:
    """The process's log writer (its thread starts with the first line)."""
    return _writer


def lines_dropped() -> int:
    """Deferred log lines dropped so far: the writer's queue was full, or the file refused them."""
    return _writer.dropped


def flush_logs(timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    """Wait until every deferred line queued so far is written (the writer also does this at exit)."""
    return _writer.flush(timeout)


def configure_logging(level: str = "info", cache: bool = True, file: Optional[BinaryIO] = None) -> None:
    """Send JSON lines to stdout (or ``file``) at ``level``.

    Parameters
    ----------
    level : str
        debug, info, warning or error.
    cache : bool
        Cache bound loggers (production); tests pass False so that
        ``structlog.testing.capture_logs`` sees every line.
    file : binary file, optional
        Where lines go; ``sys.stdout.buffer`` when omitted.
    """
    global _pipeline
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    target = sys.stdout.buffer if file is None else file
    processors: list[structlog.typing.Processor] = [
        merge_call_context,
        structlog.processors.add_log_level,
        add_timestamp,
        structlog.processors.format_exc_info,
        # orjson renders bytes about four times faster than json.
        structlog.processors.JSONRenderer(serializer=orjson.dumps, default=str),
    ]
    wrapper_class = structlog.make_filtering_bound_logger(numeric)
    factory = structlog.BytesLoggerFactory(file=target)
    structlog.configure(processors=processors, wrapper_class=wrapper_class, logger_factory=factory,
                        cache_logger_on_first_use=cache)
    _pipeline = _Pipeline(structlog.get_config()["processors"], factory, wrapper_class, numeric, target)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a logger that tags its lines with ``component=name``."""
    return structlog.get_logger(component=name)
