"""The proto is the API's documentation, and the committed stubs are generated from it."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from service import gen_protos

ROOT = Path(__file__).resolve().parents[2]
PROTO = "loyalty/v1/loyalty.proto"


def test_committed_stubs_match_the_protos(tmp_path):
    """Regenerating the stubs gives exactly service/gen; run `python -m service.gen_protos` if not."""
    gen_protos.generate(tmp_path)
    committed = gen_protos.GEN_DIR
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    ours = sorted(p.relative_to(committed) for p in committed.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)
    assert fresh == ours
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, committed / p, shallow=False)]
    assert not stale, f"stale stubs {stale}: run `python -m service.gen_protos`"


def test_every_message_field_and_method_is_commented(tmp_path):
    """Each message, field, enum, service and method in the proto carries a leading comment."""
    out = tmp_path / "descriptor.pb"
    from grpc_tools import protoc

    args = ["protoc", *(f"-I{d}" for d in gen_protos._include_dirs()), "--include_source_info",
            f"--descriptor_set_out={out}", PROTO]
    assert protoc.main(args) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    proto = files.file[0]
    commented = {tuple(loc.path) for loc in proto.source_code_info.location if loc.leading_comments.strip()}
    missing = []
    for i, message in enumerate(proto.message_type):
        if (4, i) not in commented:
            missing.append(message.name)
        for j, field in enumerate(message.field):
            if (4, i, 2, j) not in commented:
                missing.append(f"{message.name}.{field.name}")
    for i, service in enumerate(proto.service):
        if (6, i) not in commented:
            missing.append(service.name)
        for j, method in enumerate(service.method):
            if (6, i, 2, j) not in commented:
                missing.append(f"{service.name}.{method.name}")
    assert not missing, f"uncommented: {missing}"


def test_generated_modules_import_from_their_package():
    """The stubs import each other as service.gen..., never as a top-level loyalty package."""
    code = "import service.gen.loyalty.v1.loyalty_pb2_grpc as g; print(g.LoyaltyRulesStub.__name__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "LoyaltyRulesStub"
