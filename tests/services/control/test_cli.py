"""``riskcore strategy ...`` against a real control plane (a child process) and a real risk engine."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from riskcore_services.cli import main
from riskcore_services.common.auth import token_digest
from riskcore_services.control.cli import COLUMNS
from riskcore_services.testing import Children, ServerProcess, free_port, wait_until

from .conftest import CHILD_ENV, control_toml, group_members

STRATEGIES = "tests.services.control.strategies"
TOKEN = "ops-secret"
BACKOFF = """
backoff_initial = 0.05
backoff_max = 0.1
breaker_failures = 2
"""
AUTH = f"""
[[auth.tokens]]
name = "ops"
sha256 = "{token_digest(TOKEN)}"
role = "admin"
"""


@pytest.fixture
def plane(tmp_path, serve):
    """``plane(auth=False)``: the target of a started ``riskcore serve control`` on a real risk engine; its
    strategies' process groups are checked gone after it stops."""
    risk = serve()
    with Children(tmp_path) as children:
        def start(auth: bool = False) -> str:
            config = tmp_path / "control.toml"
            config.write_text(control_toml(risk.port, BACKOFF, AUTH if auth else ""))
            control = children.add(ServerProcess("control", tmp_path, config,
                                                 command=("-m", "riskcore_services.control"),
                                                 env={**os.environ, **CHILD_ENV}))
            return control.start().wait_ready().target
        yield start


def strategy(capsys, *args: str) -> tuple[int, str, str]:
    """``riskcore strategy *args`` in this process: (exit status, stdout, stderr)."""
    code = main(["strategy", *args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: str) -> dict[str, dict[str, str]]:
    """The table ``out`` as {name: {column: cell}}, cut where the header's columns start."""
    header, *lines = out.splitlines()
    starts = [header.index(column) for column in COLUMNS]
    cuts = list(zip(starts, [*starts[1:], None]))
    return {cells["NAME"]: cells for cells in ({column: line[a:b].strip() for column, (a, b) in zip(COLUMNS, cuts)}
                                               for line in lines)}


def test_register_start_pause_resume_stop_and_remove_print_the_strategy_as_a_table(plane, capsys):
    target = plane()
    code, out, err = strategy(capsys, "register", "good", f"{STRATEGIES}:Behaves", "--account", "momentum",
                              "--config", '{"interval": 0.05}', "--target", target)
    assert (code, err) == (0, "")
    assert rows(out)["good"] == {"NAME": "good", "STATE": "REGISTERED", "ACCOUNT": "momentum", "PID": "-",
                                     "UPTIME": "-", "RESTARTS": "0", "HEARTBEAT": "-", "LAST ERROR": "-"}
    code, out, _ = strategy(capsys, "start", "good", "--target", target)
    assert code == 0 and rows(out)["good"]["STATE"] in ("STARTING", "RUNNING")
    pid = int(rows(out)["good"]["PID"])

    def listed_running():
        code, out, _ = strategy(capsys, "list", "--target", target)
        return code == 0 and rows(out)["good"]["STATE"] == "RUNNING" and rows(out)
    listed = wait_until(listed_running, 30.0, "good RUNNING in the list")
    assert listed["good"]["PID"] == str(pid) and listed["good"]["UPTIME"].endswith("s")
    for command, state in (("pause", "PAUSED"), ("resume", "RUNNING"), ("stop", "STOPPED")):
        code, out, _ = strategy(capsys, command, "good", "--target", target)
        assert (code, rows(out)["good"]["STATE"]) == (0, state), command
    assert rows(out)["good"]["PID"] == "-" and not group_members(pid)
    assert strategy(capsys, "remove", "good", "--target", target) == (0, "removed good\n", "")
    assert strategy(capsys, "list", "--target", target) == (0, "no strategies registered\n", "")


def test_a_refused_move_prints_its_status_and_the_current_state_and_exits_1(plane, capsys):
    target = plane()
    assert strategy(capsys, "register", "x", f"{STRATEGIES}:Behaves", "--account", "momentum",
                    "--target", target)[0] == 0
    assert strategy(capsys, "stop", "x", "--target", target) == (
        1, "", "riskcore strategy stop: FAILED_PRECONDITION: strategy 'x' is REGISTERED: cannot stop\n")
    assert strategy(capsys, "start", "nobody", "--target", target) == (
        1, "", "riskcore strategy start: NOT_FOUND: no strategy 'nobody'\n")
    code, _, err = strategy(capsys, "register", "y", "nocolon", "--account", "a", "--target", target)
    assert code == 1 and err.startswith("riskcore strategy register: INVALID_ARGUMENT: entry:")


def test_a_faulted_strategy_shows_its_restarts_and_error_and_reset_closes_the_breaker(plane, capsys):
    target = plane()
    strategy(capsys, "register", "crash", f"{STRATEGIES}:CrashesAtStart", "--account", "momentum", "--target", target)
    assert strategy(capsys, "start", "crash", "--target", target)[0] == 0
    faulted = wait_until(lambda: (r := rows(strategy(capsys, "list", "--target", target)[1])["crash"])["STATE"]
                         == "FAULTED" and r, 30.0, "crash FAULTED")
    assert (faulted["RESTARTS"], faulted["LAST ERROR"]) == ("1", "exited with code 1")
    assert strategy(capsys, "start", "crash", "--target", target) == (
        1, "", "riskcore strategy start: FAILED_PRECONDITION: strategy 'crash' is FAULTED: cannot start\n")
    code, out, _ = strategy(capsys, "reset", "crash", "--target", target)
    assert (code, rows(out)["crash"]["STATE"], rows(out)["crash"]["LAST ERROR"]) == (0, "STOPPED", "-")


def test_bad_arguments_exit_2_and_an_unreachable_control_plane_exits_1(tmp_path, capsys):
    target = f"127.0.0.1:{free_port()}"
    code, _, err = strategy(capsys, "register", "x", "m:C", "--account", "a", "--config", "[1]", "--target", target)
    assert (code, err) == (2, "riskcore strategy register: --config: expected a JSON object, got list\n")
    code, _, err = strategy(capsys, "list", "--target", target, "--token-file", str(tmp_path / "missing"))
    assert code == 2 and err.startswith("riskcore strategy list: --token-file: cannot read")
    code, _, err = strategy(capsys, "list", "--target", target, "--timeout", "0.5")
    assert code == 1 and err.startswith(f"riskcore strategy list: control plane unreachable at {target}:")


def test_with_tokens_configured_a_command_needs_the_token_file(plane, capsys, tmp_path):
    target = plane(auth=True)
    assert strategy(capsys, "list", "--target", target) == (
        1, "", "riskcore strategy list: UNAUTHENTICATED: missing bearer token\n")
    token = tmp_path / "ops.token"
    token.write_text(TOKEN + "\n")
    assert strategy(capsys, "list", "--target", target, "--token-file", str(token)) == (
        0, "no strategies registered\n", "")


def test_watch_prints_each_transition_and_kill_switch_stops_everything(plane, capsys):
    target = plane()
    watch = subprocess.Popen([sys.executable, "-m", "riskcore_services.cli", "strategy", "watch", "--count", "5",
                              "--target", target], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stderr.readline() == f"watching {target} (Ctrl-C to stop)\n"    # subscribed
        assert strategy(capsys, "register", "w", f"{STRATEGIES}:Behaves", "--account", "momentum",
                        "--target", target)[0] == 0
        assert strategy(capsys, "start", "w", "--target", target)[0] == 0
        wait_until(lambda: rows(strategy(capsys, "list", "--target", target)[1])["w"]["STATE"] == "RUNNING",
                   30.0, "w RUNNING")
        code, out, _ = strategy(capsys, "kill-switch", "--reason", "drill", "--target", target)
        assert (code, out) == (0, "firm halted; strategies stopped: w\n")
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == 0, err
    lines = [line.split("  ") for line in out.splitlines()]
    assert [(name, move.partition(" pid ")[0], reason) for _, name, move, reason in lines] == [
        ("w", "REGISTERED -> REGISTERED", "registered"), ("w", "REGISTERED -> STARTING", "start"),
        ("w", "STARTING -> RUNNING", "ready"), ("w", "RUNNING -> STOPPING", "drill"),
        ("w", "STOPPING -> STOPPED", "exited with code 0")]
