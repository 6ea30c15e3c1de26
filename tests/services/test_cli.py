"""The ``riskcore`` command, run as the installed console script in child processes."""
import hashlib
import json
import pathlib
import signal
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
    for command in ("serve", "check-config", "token-digest"):
        assert command in run.stdout


def test_serve_risk_help_explains_every_option_and_its_default():
    run = riskcore("serve", "risk", "--help")

    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    for option in ("--config PATH", "--host", "--port", "--http-host", "--http-port", "--log-level"):
        assert option in text, option
    for default in ("50051", "8080", "127.0.0.1", "sample", "SIGTERM"):
        assert default in text, default


def test_python_dash_m_services_risk_takes_the_same_options():
    run = subprocess.run([sys.executable, "-m", "services.risk", "--help"], capture_output=True, text=True,
                         timeout=60)

    assert run.returncode == 0
    for option in ("--config", "--host", "--port", "--http-host", "--http-port", "--log-level"):
        assert option in run.stdout


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
    ("[profiling]\nenable = true\n", "profiling: unknown key(s) enable"),
    ("[[accounts]]\nname = \"orphan\"\nparent = \"nobody\"\n", "nobody"),
    ("[server]\n", "server"),  # a table defined twice is a TOML error
])
def test_check_config_of_a_bad_file_exits_1_naming_the_problem(config_file, extra, message):
    run = riskcore("check-config", config_file(extra))

    assert run.returncode == 1
    assert run.stderr.startswith("invalid: ")
    assert message in run.stderr
    assert run.stdout == ""


def test_check_config_of_a_missing_file_exits_1(tmp_path):
    run = riskcore("check-config", tmp_path / "missing.toml")

    assert run.returncode == 1
    assert "invalid: cannot read" in run.stderr


@pytest.mark.parametrize("settings, extra, key", [
    ({"duplicate_window": -1.0}, "", "duplicate_window"),
    ({}, "[[accounts]]\nname = \"default\"\nparent = \"equities\"\n", "default"),
], ids=["negative-duplicate-window", "account-defined-twice"])
def test_check_config_refuses_values_the_engine_refuses_without_a_traceback(config_file, settings, extra, key):
    run = riskcore("check-config", config_file(extra, settings))

    assert run.returncode == 1
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
    lines = [json.loads(line) for line in child.output().splitlines() if line.startswith("{")]
    started = [line for line in lines if line.get("event") == "risk engine started"]
    assert len(started) == 1, child.output()
    return started[0]


def test_serve_risk_runs_on_grpcs_legacy_io_when_the_environment_does_not_choose(spawn, config_file, monkeypatch):
    from services.common.grpc_io import LEGACY_IO_EXPERIMENTS

    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)
    child = spawn(config_file(), command=(str(RISKCORE), "serve", "risk")).wait_ready()

    assert _started_line(child)["grpc_experiments"] == LEGACY_IO_EXPERIMENTS


@pytest.mark.parametrize("chosen", ["", "-event_engine_client"], ids=["grpc-defaults", "own-choice"])
def test_serve_risk_keeps_the_grpc_experiments_the_environment_chose(spawn, config_file, monkeypatch, chosen):
    monkeypatch.setenv("GRPC_EXPERIMENTS", chosen)
    child = spawn(config_file(), command=(str(RISKCORE), "serve", "risk")).wait_ready()

    assert _started_line(child)["grpc_experiments"] == chosen
