"""The proto is the API's documentation, and the committed stubs are generated from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from service import gen_protos

ROOT = Path(__file__).resolve().parents[2]
PROTO = "loyalty/v1/loyalty.proto"


def test_committed_stubs_match_the_protos(tmp_path):
    """Regenerating the stubs gives service/gen but for the generator's release numbers.

    Run `python -m service.gen_protos` if not. The release numbers are masked because they
    change with every grpcio-tools patch release while the protos do not; the descriptors
    themselves must be byte-for-byte equal.
    """
    gen_protos.generate(tmp_path)
    committed = gen_protos.GEN_DIR
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    ours = sorted(p.relative_to(committed) for p in committed.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)
    assert fresh == ours
    stale = [str(p) for p in fresh
             if gen_protos.without_version_stamps((tmp_path / p).read_text())
             != gen_protos.without_version_stamps((committed / p).read_text())]
    assert not stale, f"stale stubs {stale}: run `python -m service.gen_protos`"


def test_committed_descriptor_is_what_protoc_compiles(tmp_path):
    """The serialized descriptor in the committed loyalty_pb2 equals protoc's for the proto."""
    from grpc_tools import protoc

    from service.gen.loyalty.v1 import loyalty_pb2

    out = tmp_path / "descriptor.pb"
    args = ["protoc", *(f"-I{d}" for d in gen_protos._include_dirs()), f"--descriptor_set_out={out}", PROTO]
    assert protoc.main(args) == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(loyalty_pb2.DESCRIPTOR.serialized_pb)
    # protoc fills json_name into a descriptor set; the Python gencode derives it at load.
    for message in _messages(compiled.message_type):
        for field in message.field:
            field.ClearField("json_name")
    assert committed == compiled


def _messages(messages):
    for message in messages:
        yield message
        yield from _messages(message.nested_type)


def test_version_mask_hides_only_release_numbers():
    """Two stubs that differ in a field name are still stale after masking the release numbers."""
    a = "GRPC_GENERATED_VERSION = '1.85.1'\nclass X: field_a = 1\n"
    b = "GRPC_GENERATED_VERSION = '1.99.0'\nclass X: field_a = 1\n"
    c = "GRPC_GENERATED_VERSION = '1.85.1'\nclass X: field_b = 1\n"
    assert gen_protos.without_version_stamps(a) == gen_protos.without_version_stamps(b)
    assert gen_protos.without_version_stamps(a) != gen_protos.without_version_stamps(c)


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
