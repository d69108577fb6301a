"""One request text everywhere: the README's grpcurl body, as it is, is what the API parses,
what the server decides on, what `loyalty eval --request` reads, what a `loyalty diff` case
line holds and what a policy test case holds; and they all come to the same decision."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def readme_body() -> dict[str, Any]:
    """The JSON body of the README's grpcurl example, exactly as a reader would copy it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"grpcurl -plaintext -d '(\{.*?\})' ", text, re.S)
    assert m is not None, "the README has no grpcurl example"
    body: dict[str, Any] = json.loads(m[1])
    return body


def loyalty(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`loyalty ARGS` as a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120, check=False)


def toml_table(prefix: str, data: dict[str, Any]) -> list[str]:
    """``data`` (strings and nested objects, as the README body has) as TOML sections."""
    lines = [f"[{prefix}]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", *toml_table(f"{prefix}.{k}", v)]
    return lines


def test_the_readme_body_is_the_apis_json() -> None:
    """The body parses as an EvaluateRequest with the proto3 JSON mapping, unchanged."""
    message = json_format.ParseDict(readme_body(), pb.EvaluateRequest())
    assert message.customer.member_since == "2012-02-29"
    assert message.event.flight.origin == "JFK"


def test_one_request_text_decides_the_same_everywhere(
    tmp_path: Path, stub: pb_grpc.LoyaltyRulesStub
) -> None:
    """The server, `loyalty eval --request`, a `loyalty diff` case and a policy test case all
    read the README's body as it is and reach the same decision."""
    body = readme_body()

    # The server, over a real channel.
    served = stub.Evaluate(json_format.ParseDict(body, pb.EvaluateRequest())).decision
    api = json_format.MessageToDict(served, always_print_fields_with_no_presence=True)
    assert api["awards"] == {"miles": "8949"}

    # loyalty eval --request: the API's Decision, field for field.
    (tmp_path / "request.json").write_text(json.dumps(body), encoding="utf-8")
    result = loyalty("eval", "--request", str(tmp_path / "request.json"), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == api

    # loyalty diff: from a set without the airline policy to the bundled set, the case's
    # outcome afterwards is the API's decision.
    before = tmp_path / "before"
    shutil.copytree(POLICIES, before, ignore=shutil.ignore_patterns("*.test.toml", "airline"))
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({**body, "name": "the README's request"}) + "\n", encoding="utf-8")
    result = loyalty("diff", str(before), str(POLICIES), "--cases", str(cases), "--format", "json")
    assert result.returncode == 1, result.stderr
    (example,) = json.loads(result.stdout)["decisions"]["examples"]
    assert example["case"] == "the README's request"
    after = example["after"]
    assert {k: str(v) for k, v in after["awards"].items()} == api["awards"]
    assert [b["name"] for b in after["benefits"]] == [b["name"] for b in api["benefits"]]
    assert after["tags"] == api["tags"]
    assert after["fired"] == [f"{f['policy']}.{f['rule']}" for f in api["fired"]]

    # A policy test case holding the same customer and event (camelCase names and all),
    # expecting the API's decision.
    programme = tmp_path / "programme"
    shutil.copytree(POLICIES, programme, ignore=shutil.ignore_patterns("*.test.toml"))
    awards = ", ".join(f"{currency} = {amount}" for currency, amount in api["awards"].items())
    lines = ["[[case]]", 'name = "the README\'s request"', "",
             *toml_table("case.customer", body["customer"]), "",
             *toml_table("case.event", body["event"]), "", "[case.expect]",
             f"awards = {{ {awards} }}",  # whole miles: the decimal string is a TOML integer
             f"benefits = {json.dumps([b['name'] for b in api['benefits']])}",
             f"tags = {json.dumps(api['tags'])}"]
    (programme / "readme.test.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = loyalty("test", str(programme / "readme.test.toml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("1 passed")


@pytest.mark.parametrize("spelling", ["camelCase", "snake_case"])
def test_the_api_and_eval_accept_both_spellings(tmp_path: Path, spelling: str) -> None:
    """proto3 JSON parsers accept the original field names too; so does `loyalty eval`."""
    body = readme_body()
    if spelling == "snake_case":
        body["customer"]["member_since"] = body["customer"].pop("memberSince")
    json_format.ParseDict(body, pb.EvaluateRequest())
    (tmp_path / "request.json").write_text(json.dumps(body), encoding="utf-8")
    result = loyalty("eval", "--request", str(tmp_path / "request.json"))
    assert result.returncode == 0, result.stderr
    assert "awards: 8949 miles" in result.stdout.splitlines()
