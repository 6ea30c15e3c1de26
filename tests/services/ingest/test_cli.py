"""``riskcore feed simulate`` and ``riskcore feed replay``, run as the installed console script."""
from __future__ import annotations

import csv
import pathlib
import struct
import subprocess
import sys

from riskcore_services.ingest.simulate import SimulationConfig, generate

from .model import model_csv_rows, model_of

RISKCORE = pathlib.Path(sys.executable).parent / "riskcore"


def riskcore(*args: object) -> subprocess.CompletedProcess:
    assert RISKCORE.is_file(), f"the riskcore console script is not installed next to {sys.executable}"
    return subprocess.run([sys.executable, str(RISKCORE), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_simulate_then_replay_writes_the_models_top_of_book(tmp_path):
    day, out = tmp_path / "day.itch", tmp_path / "top.csv"
    sim = riskcore("feed", "simulate", "--out", day, "--messages", 20_000, "--symbols", 15, "--seed", 4)
    assert sim.returncode == 0, sim.stderr
    assert day.read_bytes() == b"".join(generate(SimulationConfig(messages=20_000, symbols=15, seed=4)))

    run = riskcore("feed", "replay", day, "--book-out", out)
    assert run.returncode == 0, run.stderr
    assert "20,000 messages" in run.stdout and "msg/s" in run.stdout and "all clean" in run.stdout

    rows = list(csv.reader(out.open(newline="")))
    assert rows[0] == ["symbol", "bid_price", "bid_size", "ask_price", "ask_size", "last_price"]
    assert rows[1:] == model_csv_rows(model_of(day.read_bytes()))
    assert len(rows) == 16


def test_an_empty_side_is_an_empty_cell(tmp_path):
    # One symbol with one bid and no asks or trades, packed by hand from the spec's layouts.
    r = struct.pack(">cHH6s8sccIcc2scccccIc", b"R", 1, 0, bytes(6), b"ONE     ", b"Q", b"N", 100, b"N", b"C",
                    b"  ", b"P", b"N", b"N", b" ", b"N", 0, b"N")
    a = struct.pack(">cHH6sQcI8sI", b"A", 1, 0, bytes(6), 7, b"B", 300, b"ONE     ", 1_234_500)
    day = tmp_path / "one.itch"
    day.write_bytes(b"".join(len(m).to_bytes(2, "big") + m for m in (r, a)))
    run = riskcore("feed", "replay", day, "--book-out", tmp_path / "top.csv")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "top.csv").read_text().splitlines()[1] == "ONE,123.4500,300,,,"


def test_gzip_day_and_paced_replay(tmp_path):
    day = tmp_path / "day.itch.gz"
    assert riskcore("feed", "simulate", "--out", day, "--messages", 5_000, "--symbols", 5, "--gzip").returncode == 0
    assert day.read_bytes()[:2] == b"\x1f\x8b"
    # 16 hours of recorded time at a million times real time: about 0.06 s.
    run = riskcore("feed", "replay", day, "--speed", 1_000_000)
    assert run.returncode == 0, run.stderr
    assert "5,000 messages" in run.stdout


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    run = riskcore("feed", "simulate", "--out", tmp_path / "x", "--messages", 3, "--symbols", 5)
    assert run.returncode == 2 and "messages must be at least" in run.stderr
    run = riskcore("feed", "replay", tmp_path / "missing.itch")
    assert run.returncode == 2 and "missing.itch" in run.stderr
    run = riskcore("feed", "replay", tmp_path / "x", "--speed", 0)
    assert run.returncode == 2


def test_feed_help_lists_both_commands():
    run = riskcore("feed", "--help")
    assert run.returncode == 0 and "simulate" in run.stdout and "replay" in run.stdout
