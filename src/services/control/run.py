"""The child process of one strategy: ``python -m riskcore_services.control.run package.module:Class``.

Started by the supervisor in its own process group, with (environment):
``RISKCORE_STRATEGY`` (name), ``RISKCORE_ACCOUNT``, ``RISKCORE_STRATEGY_CONFIG``
(JSON), ``RISKCORE_RISK_TARGET`` (host:port or empty) and
``RISKCORE_HEARTBEAT_INTERVAL`` (seconds), ``RISKCORE_MARKET_DATA_TARGET``
(host:port or empty; required when the configuration lists ``symbols``); and on stdin, one line: the risk
engine's bearer token for the account (empty: none), which its risk client sends.

``RISKCORE_HEARTBEAT_SOCKET`` (the control plane's heartbeat socket).

Nothing runs before the token line arrives: the control plane sends it once
it has recorded this process, and a stdin that ends without one means the
control plane that started it is gone (exit 3, nothing done). Then, one
datagram each to the heartbeat socket (:mod:`~riskcore_services.control.heartbeats`;
the strategy's own prints go to stderr): ``ready`` once ``on_start`` returned,
``hb`` every heartbeat interval, ``paused``/``resumed``. Signals: SIGTERM stops
(``on_stop``, exit 0), SIGUSR1 pauses, SIGUSR2 resumes (each ignored when it
changes nothing). Heartbeats come from the same loop as the ticks, so a hung
tick shows as silence.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from typing import Any

from riskcore_services.control.heartbeats import Beacon

# Checks for signals between sleeps this often; a signal handler only sets a flag.
STEP = 0.01


def load(entry: str) -> Any:
    """The object ``package.module:Attribute`` names."""
    module, _, attribute = entry.partition(":")
    if not module or not attribute:
        raise ValueError(f"strategy entry point must be package.module:Class, got {entry!r}")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m riskcore_services.control.run package.module:Class", file=sys.stderr)
        return 2
    flags = {"stop": False, "pause": False, "resume": False}
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
    signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("pause", True))
    signal.signal(signal.SIGUSR2, lambda *_: flags.__setitem__("resume", True))
    line = sys.stdin.readline()
    if not line.endswith("\n"):
        print("riskcore strategy: no go from the control plane (it stopped before recording this process)",
              file=sys.stderr)
        return 3
    token = line.strip()
    os.dup2(2, 1)       # the strategy's prints go with its errors, not into the control plane's log
    say = Beacon(os.environ["RISKCORE_HEARTBEAT_SOCKET"]).say

    env = os.environ
    name, account = env.get("RISKCORE_STRATEGY", "strategy"), env.get("RISKCORE_ACCOUNT", "")
    config = json.loads(env.get("RISKCORE_STRATEGY_CONFIG", "{}"))
    target = env.get("RISKCORE_RISK_TARGET", "")
    beat = float(env.get("RISKCORE_HEARTBEAT_INTERVAL", "0.5"))
    risk = None
    if target:
        from riskcore_services.control.sdk import AccountRiskClient

        risk = AccountRiskClient(target, account, token=token or None, deadline=1.0)
    quotes = None
    if config.get("symbols"):
        market_data = env.get("RISKCORE_MARKET_DATA_TARGET", "")
        if not market_data:
            raise ValueError("config symbols: the control plane names no market data service "
                             "(control.market_data_target)")
        from riskcore_services.ingest.client import MarketDataClient, QuoteFeed

        # The account's token goes to the market data service too (give it the same [[auth.tokens]]).
        quotes = QuoteFeed(MarketDataClient(market_data, token=token or None), config["symbols"])
    strategy = load(argv[0])(name, account, config, risk, quotes)
    strategy.on_start()
    say("ready")
    paused = False
    now = time.monotonic()
    next_beat, next_tick = now, now
    while not flags["stop"]:
        if flags["pause"]:
            flags["pause"] = False
            if not paused:
                paused = True
                strategy.on_pause()
                say("paused")
        if flags["resume"]:
            flags["resume"] = False
            if paused:
                paused = False
                strategy.on_resume()
                say("resumed")
        now = time.monotonic()
        if now >= next_beat:
            say("hb")
            next_beat = now + beat
        if not paused and now >= next_tick:
            strategy.on_tick()
            next_tick = time.monotonic() + strategy.interval
        if quotes is not None and not paused:
            for quote in quotes.drain():
                strategy.on_quote(quote)
            quotes.wait(STEP)           # wakes as soon as a quote comes
        else:
            time.sleep(STEP)
    strategy.on_stop()
    if quotes is not None:
        quotes.close()
    if risk is not None:
        risk.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
