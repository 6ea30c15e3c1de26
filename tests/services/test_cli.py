"""The ``riskcore`` command, run as the installed console script in child processes."""
import hashlib
import pathlib
import signal
import socket
import subprocess
import sys

import pytest

RISKCORE = pathlib.Path(sys.executable).parent / "riskcore"


def riskcore(*args, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    assert RISKCORE.is_file(), f"the riskcore console script is not installed next to {sys.executable}"
    return subprocess.run([sys.executable, str(RISKCORE), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_help_lists_the_commands():
    run = riskcore("--help")

    assert run.returncode == 0
    for command in ("serve", "check-config", "config", "token-digest"):
        assert command in run.stdout
    assert "run a service: risk" in " ".join(run.stdout.split())


def test_serve_risk_help_explains_every_option_and_its_default():
    run = riskcore("serve", "risk", "--help")

    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    for option in ("--config PATH", "--host", "--port", "--http-host", "--http-port", "--log-level"):
        assert option in text, option
    for default in ("50051", "8080", "127.0.0.1", "sample", "SIGTERM"):
        assert default in text, default


def test_python_dash_m_services_risk_takes_the_same_options():
    run = subprocess.run([sys.executable, "-m", "riskcore_services.risk", "--help"], capture_output=True, text=True,
                         timeout=60)

    assert run.returncode == 0
    for option in ("--config", "--host", "--port", "--http-host", "--http-port", "--log-level"):
        assert option in run.stdout


def test_config_sample_prints_the_shipped_sample_which_check_config_accepts(tmp_path):
    import importlib.resources

    run = riskcore("config", "sample", "risk")

    assert run.returncode == 0
    assert run.stdout == importlib.resources.files("riskcore_services.risk").joinpath("sample.toml").read_text()
    path = tmp_path / "riskcore.toml"
    path.write_text(run.stdout)
    assert riskcore("check-config", path).returncode == 0


def test_serve_risk_without_a_config_keeps_state_in_the_working_directory_and_says_so(spawn, tmp_path):
    child = spawn(None, command=(str(RISKCORE), "serve", "risk")).wait_ready()

    state = _started_line(child)["state"]
    assert state == f"new journal at {tmp_path / 'riskcore-risk.db'}"
    assert (tmp_path / "riskcore-risk.db").is_file()
    child.signal(signal.SIGTERM)
    assert child.wait() == 0

    again = spawn(None, command=(str(RISKCORE), "serve", "risk")).wait_ready()
    assert _started_line(again)["state"].startswith(f"recovered from {tmp_path / 'riskcore-risk.db'}")


def test_version_prints_the_package_version():
    import riskcore as package

    assert riskcore("--version").stdout.strip() == f"riskcore {package.__version__}"


def test_no_command_is_a_usage_error():
    run = riskcore()

    assert run.returncode == 2
    assert "usage: riskcore" in run.stderr


def test_check_config_of_the_sample_exits_0_with_counts(config_file):
    run = riskcore("check-config", config_file())

    assert (run.returncode, run.stdout.strip()) == (0, "ok: 5 instruments, 6 accounts")


@pytest.mark.parametrize("extra, message", [
    ("[profiling]\nenable = true\n", "profiling: unknown key 'enable'"),
    ("[[accounts]]\nname = \"orphan\"\nparent = \"nobody\"\n", "nobody"),
    ("[server]\n", "server"),  # a table defined twice is a TOML error
])
def test_check_config_of_a_bad_file_exits_2_naming_the_problem(config_file, extra, message):
    run = riskcore("check-config", config_file(extra))

    assert run.returncode == 2
    assert run.stderr.startswith("invalid: ")
    assert message in run.stderr
    assert run.stdout == ""


def test_check_config_of_a_missing_file_exits_2(tmp_path):
    run = riskcore("check-config", tmp_path / "missing.toml")

    assert run.returncode == 2
    assert "invalid: cannot read" in run.stderr


# A whole file each; the line each must produce, naming the key path and what is expected.
BAD_FILES = [
    ('[[accounts]]\nname = "default"\n[accounts.limits]\nnew_order_rate = [5, "x"]\n',
     "accounts[0].limits.new_order_rate[1]: expected float, got 'x'"),
    ("[server]\nmax_message_bytes = -1\n", "server.max_message_bytes: expected int >= 1024, got -1"),
    ('[state]\nnats_servers = "nats://x"\n', "state.nats_servers: expected a list, got 'nats://x'"),
    ("[state]\npath = 5\n", "state.path: expected str, got 5"),
    ('[server]\nport = "50051"\n', "server.port: expected int, got '50051'"),
    ("[server]\nport = 70000\n", "server.port: expected int <= 65535, got 70000"),
    ("[engine]\norder_capacity = 1.5\n", "engine.order_capacity: expected int, got 1.5"),
    ("[profiling]\nenabled = 1\n", "profiling.enabled: expected bool, got 1"),
    ('[logging]\nlevel = "loud"\n', "logging.level: expected one of debug, info, warning, error, got 'loud'"),
    ("instruments = 5\n", "instruments: expected a list, got 5"),
    ("[[instruments]]\nsymbol = 5\n", "instruments[0].symbol: expected str, got 5"),
    ("[[accounts]]\nparent = \"FIRM\"\n", "accounts[0]: missing required key 'name'"),
    ("[[accounts]]\nname = \"default\"\nstate = \"PAUSED\"\n",
     "accounts[0].state: expected one of ACTIVE, REDUCING, HALTED, got 'PAUSED'"),
    (f'[[auth.tokens]]\nname = "t"\nsha256 = "{"0" * 64}"\nrole = "trader"\n',
     "auth.tokens[0]: token 't': a trader token needs accounts = [...], the accounts whose subtrees it may act "
     "on (the firm's name for all of them)"),
]


@pytest.mark.parametrize("text, line", BAD_FILES, ids=[line.split(":")[0] for _, line in BAD_FILES])
def test_check_config_of_a_badly_typed_file_prints_one_line_naming_the_key_and_exits_2(tmp_path, text, line):
    path = tmp_path / "bad.toml"
    path.write_text(text)

    run = riskcore("check-config", path)

    assert (run.returncode, run.stderr, run.stdout) == (2, f"invalid: {line}\n", "")


@pytest.mark.parametrize("text, line", BAD_FILES, ids=[line.split(":")[0] for _, line in BAD_FILES])
def test_serve_risk_on_a_badly_typed_file_prints_one_line_naming_the_key_and_exits_2(tmp_path, text, line):
    path = tmp_path / "bad.toml"
    path.write_text(text)

    run = riskcore("serve", "risk", "--config", path, "--port", "0", "--http-port", "0")

    assert (run.returncode, run.stderr, run.stdout) == (2, f"riskcore: configuration error: {line}\n", "")


@pytest.mark.parametrize("settings, extra, key", [
    ({"duplicate_window": -1.0}, "", "duplicate_window"),
    ({}, "[[accounts]]\nname = \"default\"\nparent = \"equities\"\n", "default"),
], ids=["negative-duplicate-window", "account-defined-twice"])
def test_check_config_refuses_values_the_engine_refuses_without_a_traceback(config_file, settings, extra, key):
    run = riskcore("check-config", config_file(extra, settings))

    assert run.returncode == 2
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("invalid: ") and key in run.stderr


def test_token_digest_prints_the_sha256_of_the_token():
    run = riskcore("token-digest", "s3cret")

    assert (run.returncode, run.stdout.strip()) == (0, hashlib.sha256(b"s3cret").hexdigest())


def test_serve_risk_with_a_bad_config_exits_2_naming_the_key(config_file):
    run = riskcore("serve", "risk", "--config", config_file('[tracing]\nendpoit = "127.0.0.1:4317"\n'),
                   "--port", "0", "--http-port", "0")

    assert run.returncode == 2
    assert "configuration error" in run.stderr and "endpoit" in run.stderr


def test_serve_risk_with_a_value_the_engine_refuses_exits_2_without_a_traceback(config_file):
    run = riskcore("serve", "risk", "--config", config_file(settings={"duplicate_window": -1.0}), "--port", "0",
                   "--http-port", "0")

    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2
    assert "configuration error" in run.stderr and "duplicate_window" in run.stderr


def test_serve_risk_runs_on_the_given_ports_until_sigterm(spawn, config_file):
    child = spawn(config_file(), command=(str(RISKCORE), "serve", "risk")).wait_ready()

    assert child.http("/health") == (200, "ok\n")
    child.signal(signal.SIGTERM)
    assert child.wait() == 0


def _started_line(child) -> dict:
    # Logged once recovery has returned, which may be just after /ready first answers 200.
    child.wait_log("risk engine started", timeout=10.0)
    started = child.events("risk engine started")
    assert len(started) == 1, child.output()
    return started[0]


def test_serve_risk_runs_on_grpcs_legacy_io_when_the_environment_does_not_choose(spawn, config_file, monkeypatch):
    from riskcore_services.common.grpc_io import LEGACY_IO_EXPERIMENTS

    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)
    child = spawn(config_file(), command=(str(RISKCORE), "serve", "risk")).wait_ready()

    assert _started_line(child)["grpc_experiments"] == LEGACY_IO_EXPERIMENTS


@pytest.mark.parametrize("chosen", ["", "-event_engine_client"], ids=["grpc-defaults", "own-choice"])
def test_serve_risk_keeps_the_grpc_experiments_the_environment_chose(spawn, config_file, monkeypatch, chosen):
    monkeypatch.setenv("GRPC_EXPERIMENTS", chosen)
    child = spawn(config_file(), command=(str(RISKCORE), "serve", "risk")).wait_ready()

    assert _started_line(child)["grpc_experiments"] == chosen


@pytest.mark.parametrize("option", ["--port", "--http-port"])
def test_serve_risk_on_a_busy_port_prints_one_line_naming_the_port_and_the_option_and_exits_2(config_file, option):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {"--port": "0", "--http-port": "0", option: str(port)}

        run = riskcore("serve", "risk", "--config", config_file(), *(a for o, p in ports.items() for a in (o, p)))

    assert run.returncode == 2
    assert run.stderr == f"riskcore: port {port} on 127.0.0.1 is in use; choose another with {option}\n"
