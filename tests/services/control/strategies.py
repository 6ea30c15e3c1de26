"""Sample strategies the control plane tests run as real child processes."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import time

import grpc

from riskcore_services.control.sdk import Strategy


class Behaves(Strategy):
    interval = 0.05


class CrashesAtStart(Strategy):
    def on_start(self) -> None:
        raise RuntimeError("cannot connect to the venue")


class IgnoresSigterm(Strategy):
    interval = 0.05

    def on_start(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StopsHeartbeating(Strategy):
    """Runs, then hangs in a tick: no more heartbeats."""

    interval = 0.05

    def on_tick(self) -> None:
        if self.config.get("hang", True):
            time.sleep(3600)


class SpawnsAChild(Strategy):
    """Leaves a grandchild in its process group (which must not outlive the strategy)."""

    interval = 0.05

    def on_start(self) -> None:
        import subprocess
        import sys

        self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])


class CrashesLater(Strategy):
    """Runs a few ticks, then dies."""

    interval = 0.02

    def on_start(self) -> None:
        self.ticks = 0

    def on_tick(self) -> None:
        self.ticks += 1
        if self.ticks > 3:
            os._exit(3)


class ReportsItsReach(Strategy):
    """Submits an order on its own account and one on ``config["other"]``; writes what the engine said to
    ``config["out"]``."""

    interval = 0.05

    def on_start(self) -> None:
        assert self.risk is not None
        answers = {}
        for which, account in (("own", ""), ("other", self.config["other"])):
            try:
                answer = self.risk.submit_order(f"{self.name}-{which}", "AAPL", 1, "BUY", account=account)
                answers[which] = "ACCEPTED" if answer.accepted else answer.reason
            except grpc.RpcError as error:
                answers[which] = error.code().name
        pathlib.Path(self.config["out"]).write_text(json.dumps(answers))


class RecordsQuotes(Strategy):
    """Writes the quotes it got, {symbol: [bid, ask]} (None for an empty side), to ``config["out"]``."""

    interval = 0.05

    def on_start(self) -> None:
        self.seen: dict[str, list] = {}

    def on_quote(self, quote) -> None:
        assert self.quotes is not None and self.quotes.latest(quote.symbol) is not None
        self.seen[quote.symbol] = [quote.bid_price if quote.HasField("bid_price") else None,
                                   quote.ask_price if quote.HasField("ask_price") else None]
        out = pathlib.Path(self.config["out"])
        out.with_suffix(".tmp").write_text(json.dumps(self.seen))
        os.replace(out.with_suffix(".tmp"), out)        # the test never reads half a file
