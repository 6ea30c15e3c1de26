"""Generate the Python gRPC stubs in src/services/proto from proto/.

    python proto/generate.py          # write the stubs
    python proto/generate.py --check  # exit 1 when the committed stubs differ

protoc names the modules after the proto path (riskcore/v1/...), which would
clash with the riskcore kernel package, so the stubs are flattened into
riskcore_services.proto and their cross-imports rewritten to match.
"""
import argparse
import pathlib
import re
import sys
import tempfile

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "src" / "services" / "proto"
PROTOS = ["riskcore/v1/risk.proto", "riskcore/v1/ingest.proto", "riskcore/v1/control.proto",
          "riskcore/v1/journal.proto"]


def generate() -> dict[str, str]:
    """Return {file name: contents} of the generated stubs."""
    with tempfile.TemporaryDirectory() as tmp:
        include = pathlib.Path(protoc.__file__).parent / "_proto"
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}", *PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out = {}
        for path in sorted(pathlib.Path(tmp).rglob("*.py*")):
            text = path.read_text()
            text = re.sub(r"^from riskcore\.v1 import (\w+)", r"from riskcore_services.proto import \1", text, flags=re.M)
            out[path.name] = text
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    files = generate()
    if args.check:
        stale = [name for name, text in files.items()
                 if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text() != text]
        if stale:
            print(f"generated stubs differ from proto/: {', '.join(stale)}; run python proto/generate.py")
            return 1
        print(f"stubs match proto/ ({', '.join(files)})")
        return 0
    for name, text in files.items():
        (OUT_DIR / name).write_text(text)
    print(f"wrote {', '.join(files)} to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
