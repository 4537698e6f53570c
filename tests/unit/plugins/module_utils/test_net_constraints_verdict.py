# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The net_constraints verdicts on figures a real run measured, and on each way they can fail.

The fixture holds the phases the role measured for the four shipped profiles on the vlans
lab's node1 (tests/unit/fixtures/constraints/vlans-node1.json, from that run's report);
the edge cases change one figure of it each.
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.net_constraints import FilterModule, net_constraints_checks, net_constraints_problems
from ansible_collections.aicluster.lab.plugins.module_utils.net_constraints_verdict import (
    constraint_check,
    constraint_checks,
    loss_tolerance,
    removed_check,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "constraints"
FIXTURE = json.loads((FIXTURES / "vlans-node1.json").read_text())
# A run in CI while unit tests and sanity loaded both cores: throughput after the degraded
# profile was 529 Mbit/s against a 1777 Mbit/s baseline (0.298 of it).
BUSY = json.loads((FIXTURES / "vlans-node1-busy.json").read_text())
PATH = {"interface": "eth1.200", "network": "cluster", "peer": "node2"}


def run(name):
    return FIXTURE["profiles"][name], copy.deepcopy(FIXTURE["measured"][name])


@pytest.mark.parametrize("fixture", [FIXTURE, BUSY], ids=["idle", "busy"])
@pytest.mark.parametrize("name", ["latency", "lossy", "constrained", "degraded"])
def test_the_real_runs_pass_both_checks(name, fixture):
    profile, measured = fixture["profiles"][name], copy.deepcopy(fixture["measured"][name])
    during, removed = constraint_checks(profile, measured, path=PATH)
    assert during["passed"], during["message"]
    assert removed["passed"], removed["message"]
    assert during["name"] == f"constraint_{name}" and removed["name"] == f"constraint_{name}_removed"
    assert during["category"] == removed["category"] == "performance"
    assert during["description"] == f"{profile['description']} on eth1.200 (cluster), measured to node2"
    assert during["figures"]["rtt_ms"] == measured["during"]["rtt_avg_ms"]
    assert during["figures"]["delay_ms"] == float(profile.get("delay_ms", 0))


def test_on_a_busy_host_throughput_is_back_at_a_multiple_of_what_the_profile_let_through():
    profile, measured = BUSY["profiles"]["degraded"], copy.deepcopy(BUSY["measured"]["degraded"])
    # Against the baseline alone this run fails: 529 < 0.3 x 1777.
    assert not removed_check(profile, measured["baseline"], measured["after"])["passed"]
    # 529 Mbit/s is 54 times the 9.8 the profile let through: the profile is gone.
    assert removed_check(profile, measured["baseline"], measured["after"], during=measured["during"])["passed"]
    # A profile left in place lets through what it did under the profile: that still fails.
    measured["after"]["mbps"] = 12.0
    check = removed_check(profile, measured["baseline"], measured["after"], during=measured["during"])
    assert not check["passed"]
    assert check["message"].startswith("12 Mbit/s is under 0.3 x the baseline 1777 and under 3 x the 9.841 Mbit/s under the profile")


def test_the_latency_message_shows_the_rise_against_its_tolerance():
    profile, measured = run("latency")
    check = constraint_check(profile, measured["baseline"], measured["during"])
    # 5 ms + 15 % of 40 ms.
    assert check["message"].startswith("RTT 1.361 -> 41.402 ms (+40 +/- 11.0 expected), mdev 2.845 ms, loss 0 % (0 +/- 1.0)")
    assert check["figures"]["rtt_rise_ms"] == 40.04


@pytest.mark.parametrize("name, phase, change, problem", [
    # The delay never applied: the RTT did not rise.
    ("latency", "during", {"rtt_avg_ms": 1.5}, "RTT rose 0.14 ms, expected 40 +/- 11.0"),
    # Jitter that does not show in the spread, and a spread far beyond it.
    ("latency", "during", {"rtt_mdev_ms": 0.2}, "mdev 0.2 ms is outside 1.5-10.0 for 5 ms of jitter"),
    ("latency", "during", {"rtt_mdev_ms": 30.0}, "mdev 30 ms is outside 1.5-10.0 for 5 ms of jitter"),
    # 5 % configured, 15 % measured: far outside 4 binomial deviations of 300 requests.
    ("lossy", "during", {"loss_pct": 15.0}, "loss 15 %, expected 5 +/- 6.0"),
    ("lossy", "during", {"loss_pct": 0.0}, None),  # 0 is within 5 +/- 6.0: a small sample
    # A rate limit that does not hold, and one that throttles far below the rate.
    ("constrained", "during", {"mbps": 80.0}, "80 Mbit/s is over the 50 Mbit/s limit (+10 %)"),
    ("constrained", "during", {"mbps": 20.0}, "20 Mbit/s is under 38, the rate limit less 25 %"),
    # With delay and loss, TCP stays under the rate by itself: only the ceiling counts.
    ("degraded", "during", {"mbps": 2.0}, None),
    ("degraded", "during", {"mbps": 150.0}, "150 Mbit/s is over the 100 Mbit/s limit (+10 %)"),
    # Nothing measured.
    ("lossy", "during", {"received": 0, "rtt_avg_ms": None, "rtt_mdev_ms": None, "loss_pct": 100.0},
     "no echo reply while the profile was applied"),
    ("constrained", "during", {"mbps": None, "iperf_error": "unable to connect to server: Connection refused"},
     "no throughput figure (unable to connect to server: Connection refused)"),
    ("latency", "baseline", {"rtt_avg_ms": None}, "the baseline has no RTT"),
])
def test_each_way_the_profile_check_fails(name, phase, change, problem):
    profile, measured = run(name)
    measured[phase].update(change)
    check = constraint_check(profile, measured["baseline"], measured["during"])
    if problem is None:
        assert check["passed"], check["message"]
    else:
        assert not check["passed"]
        assert check["message"].startswith(problem), check["message"]
        assert " -- RTT " in check["message"]  # the figures follow the reasons


@pytest.mark.parametrize("change, problem", [
    ({"rtt_avg_ms": 41.0}, "RTT 41 ms is over the baseline 1.361 + 5"),
    ({"loss_pct": 5.0}, "loss 5 % is over the baseline 0 + 1"),
    ({"mbps": 47.0}, "47 Mbit/s is under 0.3 x the baseline 1348"),
    ({"mbps": None, "iperf_error": "iperf3 gave no JSON: rc 1"}, "no throughput figure (iperf3 gave no JSON: rc 1)"),
    ({"received": 0, "rtt_avg_ms": None, "loss_pct": 100.0}, "no echo reply after the profile was removed"),
])
def test_each_way_the_removal_check_fails(change, problem):
    profile, measured = run("constrained")
    measured["after"].update(change)
    check = removed_check(profile, measured["baseline"], measured["after"])
    assert not check["passed"]
    assert check["message"].startswith(problem), check["message"]


def test_several_problems_are_all_named():
    profile, measured = run("degraded")
    measured["during"].update({"rtt_avg_ms": 1.4, "loss_pct": 20.0})
    message = constraint_check(profile, measured["baseline"], measured["during"])["message"]
    assert message.startswith("RTT rose 0.04 ms, expected 20 +/- 8.0; loss 20 %, expected 1 +/- 3.3 -- ")


def test_tolerances_can_be_set():
    profile, measured = run("latency")
    measured["during"]["rtt_avg_ms"] = 54.0  # a rise of 52.6 ms: outside 40 +/- 11, inside 40 +/- 15
    assert not constraint_check(profile, measured["baseline"], measured["during"])["passed"]
    assert constraint_check(profile, measured["baseline"], measured["during"], {"rtt_tolerance_ms": 9})["passed"]


def test_loss_tolerance_is_the_binomial_spread_plus_a_point():
    assert loss_tolerance(0, 300, 4) == 1
    assert round(loss_tolerance(5, 300, 4), 2) == 6.03
    assert round(loss_tolerance(1, 300, 4), 2) == 3.3


def test_the_filter_checks_its_input():
    profile, measured = run("lossy")
    filters = FilterModule().filters()
    assert filters["net_constraints_checks"] is net_constraints_checks
    assert filters["net_constraints_problems"] is net_constraints_problems
    # The role's script filters: tests/unit/plugins/module_utils/test_net_constraints_script.py.
    assert set(filters) == {"net_constraints_checks", "net_constraints_problems", "net_constraints_link",
                            "net_constraints_script", "net_constraints_run"}
    assert [check["passed"] for check in net_constraints_checks(profile, measured)] == [True, True]
    with pytest.raises(AnsibleFilterError, match="the input must be a constraint profile with a name"):
        net_constraints_checks({"delay_ms": 1}, measured)
    with pytest.raises(AnsibleFilterError, match="measured must be the phases baseline, during and after"):
        net_constraints_checks(profile, None)
    with pytest.raises(AnsibleFilterError, match=r"unknown tolerance\(s\) rtt_slack \(known: rtt_tolerance_ms"):
        net_constraints_checks(profile, measured, {"rtt_slack": 1})


SHIPPED = [{"name": "latency", "delay_ms": 40, "jitter_ms": 5}, {"name": "lossy", "loss_percent": 5},
           {"name": "constrained", "rate_mbit": 50}, {"name": "degraded", "delay_ms": 20, "loss_percent": 1, "rate_mbit": 100}]


def test_the_shipped_kind_of_profiles_pass_the_module_validation_on_the_controller():
    assert net_constraints_problems(SHIPPED, "eth1.200") == []


@pytest.mark.parametrize("profile, message", [
    ({"name": "bad", "loss_percent": 101}, "constraint profile bad: loss_percent: 101 must be between 0 and 100"),
    ({"name": "bad", "jitter_ms": 5}, "constraint profile bad: jitter_ms: 5 requires delay_ms > 0 (delay_ms is 0)"),
    ({"name": "bad", "delay_ms": "lots"}, "constraint profile bad: delay_ms: 'lots' is not a number"),
    ({"name": "bad", "rate_mbit": 0}, "constraint profile bad: rate_mbit: 0 must be > 0"),
    ({"name": "bad", "description": "nothing"}, "constraint profile bad: state=present needs something to constrain"),
])
def test_a_profile_the_module_would_refuse_is_named_with_the_option_and_value(profile, message):
    problems = net_constraints_problems(SHIPPED + [profile], "eth1.200")
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_the_interface_is_checked_and_the_input_must_be_profiles():
    assert net_constraints_problems(SHIPPED[:1], "no such/if") == \
        ["constraint profile latency: interface: 'no such/if' is not an interface name"]
    with pytest.raises(AnsibleFilterError, match="must be a list of constraint profiles"):
        net_constraints_problems({"name": "latency"}, "eth1")
