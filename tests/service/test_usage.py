"""``loyalty usage``: the rule usage review, read from a real service's /metrics.

The service runs as a real process on 127.0.0.1 (port 0), is driven with a fixed, small
number of calls, and the command reads its metrics over HTTP; other tests feed it saved
scrapes. The whole report is pinned: it is what a policy owner reads before killing a rule.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from service.cli import main
from service.gen.loyalty.v1 import loyalty_pb2 as pb
from service.gen.loyalty.v1 import loyalty_pb2_grpc as pb_grpc
from tests.service.conftest import POLICIES, gold_customer, jfk_lhr
from tests.service.test_process import wait_for


def flights(server: object, cabins: list[str]) -> None:
    """One Evaluate call per cabin: a GOLD decade member flying JFK-LHR."""
    with server.channel() as channel:  # type: ignore[attr-defined]
        stub = pb_grpc.LoyaltyRulesStub(channel)
        for i, cabin in enumerate(cabins):
            stub.Evaluate(pb.EvaluateRequest(customer=gold_customer(), event=jfk_lhr(f"e-{i}", cabin=cabin)),
                          timeout=5)


def applied(url: str, n: int) -> bool:
    """Whether the service's metrics count ``n`` flights for the airline policy (flushed each second)."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return f'loyalty_policy_applied_total{{policy="earn_miles_by_distance"}} {float(n)}' in text


def test_usage_against_a_live_service(spawn, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Never fired, fired on every event and shadowed in practice, over the whole run and over
    a period between a saved scrape and a later one."""
    server = spawn("--metrics-port", "0")
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    flights(server, ["business"] * 3 + ["economy"])
    wait_for(lambda: applied(url, 4), what="four flights in the metrics")

    assert main(["usage", "--metrics", url, "--policies", str(POLICIES),
                 "--save", str(tmp_path / "start.prom")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"rule usage from {url} (since the service started)",
        "never fired (0):",
        "  none",
        "fired on at least 95% of their policy's events (3):",
        "  earn_miles_by_distance.elite: 4/4 (100.0%) (no condition: fires on every event by design)",
        "  earn_miles_by_distance.flown_miles: 4/4 (100.0%) (no condition: fires on every event by design)",
        "  earn_miles_by_distance.loyal_for_a_decade: 4/4 (100.0%)",
        "shadowed in practice (2):",
        "  earn_miles_by_distance.first_cabin: 0 of 4 events; group cabin_bonus (takes best miles) "
        "applied business_cabin 3, never this rule: it lost or never qualified (the metrics cannot "
        "tell which)",
        "  earn_miles_by_distance.premium_cabin: 0 of 4 events; group cabin_bonus (takes best miles) "
        "applied business_cabin 3, never this rule: it lost or never qualified (the metrics cannot "
        "tell which)",
        "policies that applied to no event (17): coffee_limits, coffee_rewards, donor_recognition, "
        "earn_points_on_purchases, fifth_visit_this_month, fuel_saving_from_july, fuel_saving_to_june, "
        "giving_season_credit, hotel_nights, know_our_regulars, late_arrival_grace, pet_care_points, "
        "quarterly_cashback, retail_calendar_bonuses, retail_status_2026, spring_garden_points, "
        "store_spend",
    ]

    # The next period: first-cabin flights only. business_cabin now never fires.
    flights(server, ["first"] * 2)
    wait_for(lambda: applied(url, 6), what="six flights in the metrics")
    assert main(["usage", "--metrics", url, "--since", str(tmp_path / "start.prom"),
                 "--format", "json", "--always", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == f"{tmp_path / 'start.prom'} to {url}"
    assert [(u["rule"], u["hits"], u["policy_applied"]) for u in data["never_fired"]] == [
        ("business_cabin", 0, 2), ("premium_cabin", 0, 2)]
    assert [u["rule"] for u in data["always_fired"]] == [
        "elite", "first_cabin", "flown_miles", "loyal_for_a_decade"]
    assert data["shadowed"] == [] and data["notes"] == []
    assert server.stop() == 0


TAKES_FIRST = """\
policy visits
  on visit

  group welcome takes first:
    rule everyone when event.venue is present: award 1 points
    rule big_party when event.party_size > 6: award 5 points
    rule regulars when customer.lifetime.visits > 10: award 3 points
  rule rare when event.party_size > 50: tag "huge"
"""


def scrape(rules: dict[str, int], applied_to: int) -> str:
    """A Prometheus text exposition as the service writes it, for the policy `visits`."""
    lines = ["# HELP loyalty_rule_hits_total How often each rule's effects applied.",
             "# TYPE loyalty_rule_hits_total counter"]
    lines += [f'loyalty_rule_hits_total{{policy="visits",rule="{r}"}} {float(h)}' for r, h in rules.items()]
    lines += ["# HELP loyalty_policy_applied_total How often each policy applied to an event.",
              "# TYPE loyalty_policy_applied_total counter",
              f'loyalty_policy_applied_total{{policy="visits"}} {float(applied_to)}']
    return "\n".join(lines) + "\n"


def test_a_takes_first_member_behind_one_that_always_fires_is_never_reached(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the policy directory, a takes-first member after one that fired on every event is
    reported as never reached; a rule outside groups with no hits is never fired."""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "visits.policy").write_text(TAKES_FIRST)
    (tmp_path / "m.prom").write_text(scrape({"everyone": 7, "big_party": 0, "regulars": 0, "rare": 0}, 7))
    assert main(["usage", "--metrics", str(tmp_path / "m.prom"), "--policies", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "never fired (1):",
        "  visits.rare: 0 of 7 events",
        "fired on at least 95% of their policy's events (1):",
        "  visits.everyone: 7/7 (100.0%)",
        "shadowed in practice (2):",
        "  visits.big_party: 0 of 7 events; group welcome (takes first): everyone fired on every "
        "event before it, so it was never reached",
        "  visits.regulars: 0 of 7 events; group welcome (takes first): everyone fired on every "
        "event before it, so it was never reached",
    ]


def test_a_restart_between_scrapes_is_said_and_counted_from_the_restart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A counter lower in the later scrape means the service restarted: the report says so."""
    (tmp_path / "start.prom").write_text(scrape({"everyone": 70, "rare": 1}, 70))
    (tmp_path / "end.prom").write_text(scrape({"everyone": 5, "rare": 0}, 5))
    assert main(["usage", "--metrics", str(tmp_path / "end.prom"), "--since",
                 str(tmp_path / "start.prom"), "--always", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("note: a counter went down between the scrapes (the service restarted): "
                      "counting from the restart, as if there were no --since")
    assert "  visits.rare: 0 of 5 events" in out
    assert "  visits.everyone: 5/5 (100.0%)" in out


@pytest.mark.parametrize(("source", "message"), [
    ("missing.prom", "loyalty usage: cannot read missing.prom: No such file or directory\n"),
    ("http://127.0.0.1:9/metrics", "loyalty usage: cannot read http://127.0.0.1:9/metrics: "),
    ("other.prom", "loyalty usage: other.prom has no loyalty_rule_hits or loyalty_policy_applied "
                   "counters: is it a loyalty service's /metrics (loyalty serve --metrics-port N)?\n"),
    ("garbage.prom", "loyalty usage: garbage.prom is not Prometheus text exposition"),
], ids=["no-file", "nothing-listening", "other-metrics", "not-exposition"])
def test_unreadable_metrics_exit_two_with_a_message(
        source: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A metrics source that cannot be read or is not the service's is one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.prom").write_text("# TYPE up gauge\nup 1.0\n")
    (tmp_path / "garbage.prom").write_text("loyalty_rule_hits_total{policy= 1 2 3\n")
    assert main(["usage", "--metrics", source]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(message)


# -- hostile metrics files ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "-3.0", "1e300"])
def test_a_counter_that_is_not_a_count_is_refused(value: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """NaN, infinities, negative and absurd counters: one line naming the series, exit 2, no
    traceback."""
    text = scrape({"everyone": 7, "rare": 0}, 7).replace(
        'loyalty_rule_hits_total{policy="visits",rule="rare"} 0.0',
        f'loyalty_rule_hits_total{{policy="visits",rule="rare"}} {value}')
    (tmp_path / "m.prom").write_text(text)
    assert main(["usage", "--metrics", str(tmp_path / "m.prom")]) == 2
    captured = capsys.readouterr()
    shown = "inf" if "Inf" in value else ("nan" if value == "NaN" else str(float(value)))
    assert captured.out == ""
    assert captured.err == (f'loyalty usage: {tmp_path / "m.prom"}: loyalty_rule_hits_total{{policy="visits",'
                            f'rule="rare"}} is {shown.replace("inf", "-inf") if value == "-Inf" else shown}, '
                            "not a count of events: is the scrape damaged?\n")


@pytest.mark.parametrize("output", ["text", "json"])
def test_control_characters_in_labels_never_reach_the_terminal(
        output: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ESC sequence (or a bidirectional override) in a label is stripped before printing."""
    hostile = "\x1b[2J\x1b]0;owned\x07r\u202eare"
    (tmp_path / "m.prom").write_text(scrape({"everyone": 7, hostile: 0}, 7))
    assert main(["usage", "--metrics", str(tmp_path / "m.prom"), "--format", output]) == 0
    out = capsys.readouterr().out
    assert not any(not ch.isprintable() and ch != "\n" for ch in out)
    assert ("visits.[2J]0;ownedrare: 0 of 7 events" in out if output == "text"
            else '"rule": "[2J]0;ownedrare"' in out)


def test_too_many_series_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A scrape past MAX_SAMPLES is refused before parsing, with a message, and the command's
    peak memory grows by far less than parsing it would take (about 1 KB a series)."""
    import subprocess
    import sys

    from service.cli.usage import MAX_SAMPLES

    series = MAX_SAMPLES + 20_000
    with (tmp_path / "m.prom").open("w") as f:
        f.write("# TYPE loyalty_rule_hits_total counter\n")
        for i in range(series):
            f.write(f'loyalty_rule_hits_total{{policy="p",rule="r{i}"}} 1.0\n')
    size = (tmp_path / "m.prom").stat().st_size
    (tmp_path / "small.prom").write_text(scrape({"everyone": 7}, 7))
    probe = (
        "import resource, sys\n"
        "from service.cli import main\n"
        f"main(['usage', '--metrics', {str(tmp_path / 'small.prom')!r}])  # imports the parser\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"status = main(['usage', '--metrics', {str(tmp_path / 'm.prom')!r}])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(status, after - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    status, grown_kib = done.stdout.split()[-2:]
    assert status == "2"
    assert done.stderr == (f"loyalty usage: {tmp_path / 'm.prom'}: more than {MAX_SAMPLES:,} samples of "
                           "loyalty_rule_hits and loyalty_policy_applied: not one service's rules\n")
    # The text itself is read (and decoded) whole: twice its size, and some slack; parsing
    # it would have held about 1 KB a series (140 MiB here, measured before the bound).
    assert int(grown_kib) * 1024 < 4 * size < series * 1024
