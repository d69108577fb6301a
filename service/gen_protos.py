"""Regenerate the Python stubs in ``service/gen`` from ``protos/``: ``python -m service.gen_protos``.

The stubs are committed so that the service runs without ``grpcio-tools``; a test
regenerates them into a temporary directory and fails when they differ from the
committed ones. Messages come from protoc's Python generator, the gRPC stubs from
``grpcio-tools``, and the ``.pyi`` files (with the proto comments as docstrings)
from ``mypy-protobuf``.
"""

from __future__ import annotations

import argparse
import importlib.resources
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN_DIR = Path(__file__).resolve().parent / "gen"
#: The package the generated modules live in; protoc's own imports are rewritten to it.
GEN_PACKAGE = "service.gen"
PROTO_FILES = ("loyalty/v1/loyalty.proto",)

_PACKAGE_DOC = '"""Generated protobuf and gRPC stubs; regenerate with ``python -m service.gen_protos``."""\n'


def _include_dirs() -> list[str]:
    import google.rpc.status_pb2 as status_pb2

    googleapis = Path(status_pb2.__file__).resolve().parents[2]
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    return [str(PROTO_ROOT), str(googleapis), str(well_known)]


def _plugin(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the dev extra (mypy-protobuf)")
    return found


def generate(out_dir: Path) -> list[Path]:
    """Write the stubs for every proto below ``out_dir`` and return the files written."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            *(f"-I{d}" for d in _include_dirs()),
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *PROTO_FILES,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = []
        (out_dir / "__init__.py").write_text(_PACKAGE_DOC)
        written.append(out_dir / "__init__.py")
        for src in sorted(Path(tmp).rglob("*")):
            if not src.is_file():
                continue
            rel = src.relative_to(tmp)
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(_rewrite_imports(src.read_text()))
            written.append(dest)
            for parent in rel.parents:
                if parent != Path("."):
                    init = out_dir / parent / "__init__.py"
                    if not init.exists():
                        init.write_text("")
                        written.append(init)
    return written


#: Lines that name the generator's own release rather than anything the protos define. They
#: change with every grpcio-tools or protobuf patch release, so the stale-stub check masks
#: them; the runtime still checks them at import (protobuf's ValidateProtobufRuntimeVersion,
#: grpc's GRPC_GENERATED_VERSION), so committed stubs never need a newer runtime than the lock.
_VERSION_STAMPS = (
    re.compile(r"^# Protobuf Python Version: .*$", re.M),
    re.compile(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)[^']*", re.M),
    re.compile(r"^GRPC_GENERATED_VERSION = '[^']*'$", re.M),
    re.compile(r"^(protoc_version|mypy-protobuf version): .*$", re.M),
)


def without_version_stamps(text: str) -> str:
    """The stub text with the generator's release numbers masked: what the protos define."""
    for stamp in _VERSION_STAMPS:
        text = stamp.sub(lambda m: (m.group(1) if m.groups() else "") + "<version>", text)
    return text


def _rewrite_imports(text: str) -> str:
    # protoc imports sibling modules by proto package ("from loyalty.v1 import ..."); the
    # stubs live in GEN_PACKAGE, so those imports must name it.
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith(("from loyalty.", "import loyalty.")):
            line = line.replace("loyalty.", f"{GEN_PACKAGE}.loyalty.", 1)
        lines.append(line)
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Regenerate the stubs (into ``service/gen`` unless ``--out`` says otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GEN_DIR, help="output directory")
    args = parser.parse_args(argv)
    if args.out == GEN_DIR and GEN_DIR.exists():
        shutil.rmtree(GEN_DIR)
    for path in generate(args.out):
        print(path.relative_to(args.out.parent) if args.out == GEN_DIR else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
