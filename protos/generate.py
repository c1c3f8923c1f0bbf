"""Generate the Python code for licensing.proto into a flat package.

`make proto` runs this; tests/unit/test_generated_code.py runs it into a temporary folder and
fails when the committed code under src/license_svc/entrypoints/api/gen/ is stale.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
PROTO = "fiscobridge/licensing/v1/licensing.proto"
DEFAULT_OUT = HERE.parent / "src" / "license_svc" / "entrypoints" / "api" / "gen"
GENERATED = ("licensing_pb2.py", "licensing_pb2.pyi", "licensing_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{HERE}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(HERE / PROTO),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            text = (Path(tmp) / Path(PROTO).parent / name).read_text()
            # The generated stub imports by proto path; our code lives in one flat package.
            text = text.replace(
                "from fiscobridge.licensing.v1 import licensing_pb2",
                "from license_svc.entrypoints.api.gen import licensing_pb2",
            )
            (out / name).write_text(text)
            written.append(out / name)
        init = out / "__init__.py"
        init.write_text('"""Generated from protos/ by `make proto`. Do not edit."""\n')
        written.append(init)
        return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    shutil.rmtree(target / "__pycache__", ignore_errors=True)
    for path in generate(target):
        print(f"wrote {path}")
