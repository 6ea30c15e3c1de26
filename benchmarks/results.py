"""The rows every suite of ``python -m benchmarks`` prints, and the table they are printed in.

A :class:`Row` holds one case's figures (per-call percentiles in ns, a
throughput, or a plain value such as a ratio) and the :class:`Target` s it is
judged against. The kernel, service and durability suites all build rows, so
one table format serves them all.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

US, MS = 1_000, 1_000_000
QUICK_VERDICT = "(quick)"


@dataclass(frozen=True)
class Target:
    label: str          # as printed: "p99<=5µs"
    metric: str         # a Row field: median_ns, p99_ns, p999_ns, throughput, value
    limit: float
    at_most: bool = True
    published: bool = False

    def met(self, row: "Row") -> bool | None:
        value = getattr(row, self.metric)
        if value is None:
            return None
        return value <= self.limit if self.at_most else value >= self.limit


@dataclass
class Row:
    case: str
    samples: int = 0
    median_ns: float | None = None
    p99_ns: float | None = None
    p999_ns: float | None = None
    throughput: float | None = None
    unit: str = "calls/s"
    value: float | None = None          # ratios and counts
    value_text: str = ""
    targets: list[Target] = field(default_factory=list)
    note: str = ""
    error: str | None = None
    skipped: str | None = None
    raw_ns: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.skipped:
            return "SKIP"
        if not self.targets:
            return "info"
        missed = [t.label for t in self.targets if t.met(self) is False]
        return "FAIL " + ", ".join(missed) if missed else "PASS"


class Timing:
    """Per-call samples turned into table figures, net of the timer's own cost."""

    def __init__(self, overhead_ns: float) -> None:
        self.overhead = overhead_ns

    def row(self, case: str, samples: Any, elapsed_ns: int | None = None, calls: int | None = None,
            unit: str = "calls/s", targets: list[Target] | None = None, note: str = "",
            per_call: int | None = None) -> Row:
        """One case's row: percentiles net of the timer; the throughput from ``elapsed_ns`` (a
        timer-free loop of ``calls`` calls, the samples' count by default) or, for a long call, from
        its raw median and the ``per_call`` units of work it does (orders in a batch, messages in a day).
        """
        data = (np.frombuffer(samples, dtype=np.int64) if isinstance(samples, array)
                else np.asarray(samples, dtype=np.int64))
        n = data.size
        # A percentile needs at least ten samples beyond it to mean anything.
        qs = {"median": 50.0, "p99": 99.0 if n >= 1_000 else None, "p999": 99.9 if n >= 10_000 else None}
        raw = {k: float(np.percentile(data, q)) for k, q in qs.items() if q is not None}
        net = {k: max(0.0, v - self.overhead) for k, v in raw.items()}
        raw["max"] = float(data.max())
        throughput = None
        if elapsed_ns is not None:
            throughput = (calls or n) / (elapsed_ns / 1e9)
        elif per_call is not None:
            throughput = per_call / (raw["median"] / 1e9)
        return Row(case, samples=n, median_ns=net["median"], p99_ns=net.get("p99"), p999_ns=net.get("p999"),
                   throughput=throughput, unit=unit,
                   targets=targets or [], note=note, raw_ns=raw)


def expect(condition: bool, message: str) -> None:
    """A case that no longer measures what it says is an error, not a slow result."""
    if not condition:
        raise AssertionError(message)


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns < US:
        return f"{ns:.0f} ns"
    if ns < MS:
        return f"{ns / US:.2f} µs"
    if ns < 1e9:
        return f"{ns / MS:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_rate(rate: float | None, unit: str) -> str:
    if rate is None:
        return "-"
    for scale, prefix in ((1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.2f} {prefix} {unit}"
    return f"{rate:.0f} {unit}"


def print_table(rows: list[Row], verdicts: bool = True) -> None:
    """Print ``rows`` as the benchmark table, then each row's note.

    With ``verdicts`` False (quick mode) rows with targets are not judged:
    their sizes are too small for the figures to mean anything.
    """
    header = ("case", "median", "p99", "p99.9", "throughput", "target", "verdict")
    lines = []
    for r in rows:
        middle = (r.value_text, "", "") if r.value is not None else (fmt_ns(r.median_ns), fmt_ns(r.p99_ns),
                                                                      fmt_ns(r.p999_ns))
        if r.error or r.skipped:
            middle = ("", "", "")
        lines.append((r.case, *middle, fmt_rate(r.throughput, r.unit), " ".join(t.label for t in r.targets) or "-",
                      r.verdict if verdicts or r.error or r.skipped or not r.targets else QUICK_VERDICT))
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    notes = [(r.case, r.error or r.skipped or r.note) for r in rows if r.error or r.skipped or r.note]
    if notes:
        print()
        for case, note in notes:
            print(f"  {case}: {note}")
