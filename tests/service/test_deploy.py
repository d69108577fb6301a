"""The deploy serves what was reviewed: the manifests as ``kubectl kustomize deploy`` renders them,
the image the Dockerfile builds, and the revision a pod would serve, which must be the one
``loyalty check policies`` prints.

``kubectl`` (with its built-in kustomize) comes from PATH or ``.tools/bin`` (``./dev.sh tools``
puts it there). Without it the rendering tests skip, unless LOYALTY_REQUIRE_TOOLS=1 (.ci/run
sets it), where they fail.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import ROOT, required_tool, start_server

IMAGE = "loyalty-rules"
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def kubectl() -> str:
    """The kubectl to render with, or a skip (a failure under LOYALTY_REQUIRE_TOOLS=1)."""
    found = shutil.which("kubectl") or next(
        (str(p) for p in [ROOT / ".tools" / "bin" / "kubectl"] if os.access(p, os.X_OK)), None)
    return required_tool(found, "kubectl not found: ./dev.sh tools installs it into .tools/bin")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """Every resource ``kubectl kustomize deploy`` renders."""
    out = subprocess.run([kubectl(), "kustomize", str(ROOT / "deploy")], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def container(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [r for r in rendered if r["kind"] == "Deployment"]
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return main  # type: ignore[no-any-return]


def test_every_volume_the_pods_mount_is_in_the_manifests(rendered):
    """No ConfigMap, Secret or claim that `kubectl apply -k deploy/` does not create (the
    missing `loyalty-policies` ConfigMap of issue 15)."""
    names = {(r["kind"], r["metadata"]["name"]) for r in rendered}
    for resource in rendered:
        if resource["kind"] != "Deployment":
            continue
        for volume in resource["spec"]["template"]["spec"].get("volumes", []):
            for kind, key, name_key in (("ConfigMap", "configMap", "name"),
                                        ("Secret", "secret", "secretName"),
                                        ("PersistentVolumeClaim", "persistentVolumeClaim", "claimName")):
                if key in volume:
                    assert (kind, volume[key][name_key]) in names, volume


def test_one_image_name_everywhere(rendered):
    """The deployment's image, the Dockerfile's title and the docs' build command agree."""
    image = container(rendered)["image"]
    assert re.fullmatch(rf"{IMAGE}(:[\w.-]+|@sha256:[0-9a-f]{{64}})", image), image
    assert f'org.opencontainers.image.title="{IMAGE}"' in DOCKERFILE
    texts = [DOCKERFILE, *(p.read_text() for p in (ROOT / "docs").glob("*.md")),
             (ROOT / "README.md").read_text()]
    built = [name for text in texts for name in re.findall(r"docker build -t (\S+?)(?::\S+)? \.", text)]
    assert built and set(built) == {IMAGE}, built


def test_the_base_image_is_pinned_by_digest():
    """Every stage starts from the one base image, named with its sha256 digest."""
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", default), default
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert froms and set(froms) == {"${PYTHON_IMAGE}"}


def test_the_runtime_image_leaves_the_replay_extra_out():
    """The image installs the project without extras, and replay's dependencies are an extra."""
    import tomllib

    from service.cli.replay import REPLAY_EXTRA

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert not [name for name in REPLAY_EXTRA if name in runtime]
    extra = project["optional-dependencies"]["replay"]
    assert set(REPLAY_EXTRA) <= {re.split(r"[<>=\[ ]", d)[0] for d in extra}
    # The image installs the runtime lock (no extras) and the project without its extras.
    assert re.search(r"^RUN pip install --no-deps --no-build-isolation \.$", DOCKERFILE, re.M)
    from tests.test_locks import pins
    assert not [name for name in REPLAY_EXTRA if name in pins("runtime.lock")]


def _image_policies(destination: Path) -> None:
    """The policy tree as the Dockerfile copies it into the image: `COPY ... policies DEST`,
    less what .dockerignore leaves out of the build context."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for path in sorted((ROOT / "policies").rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_dir() or any(fnmatch.fnmatch(relative, p.removeprefix("**/"))
                                or fnmatch.fnmatch(path.name, p.removeprefix("**/")) for p in ignored):
            continue
        target = destination / path.relative_to(ROOT / "policies")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def test_a_pod_serves_the_revision_loyalty_check_prints(rendered, tmp_path):
    """Build the image's /srv/policies from the Dockerfile and .dockerignore, serve it with the
    rendered container's args and environment (on 127.0.0.1, port 0), and compare ListPolicies'
    revision with `loyalty check policies`' (the flattened ConfigMap served another one)."""
    main = container(rendered)
    (copy,) = re.findall(r"^COPY (?:--\S+ )*policies (\S+)$", DOCKERFILE, re.M)
    args = main.get("args", [])
    env = {e["name"]: e["value"] for e in main.get("env", [])}
    served_from = args[args.index("--policies") + 1] if "--policies" in args else env["LOYALTY_POLICIES"]
    assert served_from == copy, "the pod must serve the directory the image holds"
    mounted = [m["mountPath"] for m in main.get("volumeMounts", [])
               if m["mountPath"] == copy or copy.startswith(m["mountPath"].rstrip("/") + "/")
               or m["mountPath"].startswith(copy + "/")]
    assert not mounted, f"a volume on {mounted} would hide the image's policies"
    image_root = tmp_path / copy.lstrip("/")
    _image_policies(image_root)
    check = subprocess.run([sys.executable, "-m", "service", "check", "policies"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=True)
    (reviewed,) = re.findall(r"revision (r[0-9a-f]{12})", check.stdout)
    # The pod's own settings, but on 127.0.0.1 with a free port, one process, no metrics port.
    env.update(LOYALTY_HOST="127.0.0.1", LOYALTY_WORKERS="1")
    env.pop("LOYALTY_PORT", None)
    env.pop("LOYALTY_METRICS_PORT", None)
    pod_args = [a if a != copy else str(image_root) for a in args]
    server = start_server(*pod_args, env=env, policies=None)
    try:
        with server.channel() as channel:
            served = pb_grpc.LoyaltyRulesStub(channel).ListPolicies(pb.ListPoliciesRequest(), timeout=10)
    finally:
        server.stop()
    print(f"\nreviewed {reviewed}, served {served.revision}")
    assert served.revision == reviewed
