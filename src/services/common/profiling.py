"""On-demand profiles of a running process, in formats existing tools read.

``cpu_profile`` samples every thread's Python stack at a fixed interval and
returns collapsed stacks (``frame;frame;frame count`` lines), which
speedscope, flamegraph.pl and inferno read. ``thread_stacks`` is a dump of
all threads, like ``py-spy dump``.
"""
import collections
import sys
import threading
import time
import traceback


def _frames(frame) -> list[str]:
    names = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{code.co_name} ({code.co_filename}:{frame.f_lineno})")
        frame = frame.f_back
    return names[::-1]


def cpu_profile(seconds: float, interval: float = 0.005) -> str:
    """Sample all other threads for ``seconds``; return collapsed stacks.

    Samples are wall-clock: a thread blocked in a wait shows up in its wait.
    """
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    counts: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for ident, frame in sys._current_frames().items():
            if ident != me:
                stack = [names.get(ident, str(ident)), *_frames(frame)]
                counts[";".join(s.replace(";", ":") for s in stack)] += 1
        time.sleep(interval)
    return "".join(f"{stack} {n}\n" for stack, n in counts.most_common())


def thread_stacks() -> str:
    """Return the current stack of every thread as text."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f'Thread {ident} "{names.get(ident, "?")}"\n')
        out.extend(traceback.format_stack(frame))
        out.append("\n")
    return "".join(out)
