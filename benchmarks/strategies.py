"""Strategies the control plane benchmarks run as real child processes (``benchmarks/control.py``)."""
from __future__ import annotations

import os
import pathlib
import time

from riskcore_services.control.sdk import Strategy


class Idle(Strategy):
    """Does nothing: what is timed is the control plane's work and the process's start."""


class ExitsOnFirstTick(Strategy):
    """Writes ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every process on the host) to
    ``config["out"]``, then exits at once: the supervisor's detection is timed from that stamp."""

    interval = 0.0

    def on_tick(self) -> None:
        pathlib.Path(self.config["out"]).write_text(str(time.monotonic_ns()))
        os._exit(3)


class HangsOnFirstTick(Strategy):
    """Stops heartbeating: its first tick never returns."""

    interval = 0.0

    def on_tick(self) -> None:
        time.sleep(3600)
