"""The generated gRPC stubs in riskcore_services.proto match proto/ (what ``proto/generate.py --check`` proves)."""
import pathlib
import shutil
import subprocess
import sys

from riskcore_services.proto import risk_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate_check(root: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "proto" / "generate.py"), "--check"], capture_output=True,
                          text=True, timeout=120, cwd=root)


def copy_of_the_tree(tmp_path: pathlib.Path) -> pathlib.Path:
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copytree(ROOT / "src" / "services" / "proto", tmp_path / "src" / "services" / "proto")
    return tmp_path


def test_generate_check_passes_on_the_committed_stubs():
    run = generate_check(ROOT)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "stubs match proto/" in run.stdout


def test_generate_check_passes_on_a_faithful_copy_of_the_tree(tmp_path):
    run = generate_check(copy_of_the_tree(tmp_path))

    assert run.returncode == 0, run.stdout + run.stderr


def test_generate_check_fails_when_the_proto_changes_and_the_stubs_do_not(tmp_path):
    root = copy_of_the_tree(tmp_path)
    proto = root / "proto" / "riskcore" / "v1" / "risk.proto"
    proto.write_text(proto.read_text().replace("message WatchRequest {}", "message WatchRequest {\n  string who = 1;\n}"))

    run = generate_check(root)

    assert run.returncode == 1
    assert "risk_pb2.py" in run.stdout


def test_stubs_describe_the_riskcore_v1_package():
    assert risk_pb2.DESCRIPTOR.package == "riskcore.v1"
    assert risk_pb2.DESCRIPTOR.name == "riskcore/v1/risk.proto"


def _enums(descriptor):
    for message in descriptor.message_types_by_name.values():
        yield from message.enum_types
        for nested in message.nested_types:
            yield from nested.enum_types
    yield from descriptor.enum_types_by_name.values()


def test_every_enum_on_the_wire_has_an_unspecified_zero_value():
    enums = list(_enums(risk_pb2.DESCRIPTOR))

    assert {e.name for e in enums} >= {"Side", "TradingState", "Kind"}
    for enum in enums:
        zero = enum.values_by_number[0].name
        assert zero.endswith("_UNSPECIFIED"), (enum.full_name, zero)


def test_trading_states_are_numbered_after_unspecified():
    assert (risk_pb2.TRADING_STATE_UNSPECIFIED, risk_pb2.ACTIVE, risk_pb2.REDUCING, risk_pb2.HALTED) == (0, 1, 2, 3)
