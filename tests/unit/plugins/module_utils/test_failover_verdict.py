# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failover_verdict: every verdict the bond_failover role can reach, on real probe figures.

node1-probe-eth1-cut.json is a real probe run (tests/unit/fixtures/failover/README.md).
The stalled case is CI's figures from the reliability issue: node2's gap 320.4 ms against
the 300 ms bound, detection at 78.9 ms, the probe's longest poll gap 282.4 ms.
"""

import copy
import json
import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.failover_verdict import (
    failback_verdict,
    failover_outcome,
    failover_verdict,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "failover"
REAL = json.loads((FIXTURES / "node1-probe-eth1-cut.json").read_text())
BOUND = 300.0
STALL = 100.0


def changed_probe(event, gap_ms=None, poll_gap_ms=None, **fields):
    """The real probe result with the failover's or failback's figures (``event``) changed."""
    result = copy.deepcopy(REAL)
    if gap_ms is not None:
        result[event]["gap_ms"] = gap_ms
    if poll_gap_ms is not None:
        result["poll"]["max_gap_ms"] = poll_gap_ms
    result[event].update(fields)
    return result


def probe(**changes):
    return changed_probe("failover", **changes)


def test_a_real_failover_within_the_bound_passes():
    verdict = failover_verdict(REAL, "eth1", BOUND, STALL)
    assert verdict["status"] == "passed"
    assert verdict["message"] == ("eth1 cut: active eth1 -> eth2 68.153 ms after carrier loss; traffic gap 119.994 ms, "
                                  "6 lost (bound 300.0 ms)")
    assert verdict["figures"] == {"bound_ms": 300.0, "gap_ms": 119.994, "lost": 6, "detect_ms": 68.153,
                                  "max_poll_gap_ms": 66.262}


def test_the_ci_stall_is_inconclusive_not_a_failure_of_the_bond():
    verdict = failover_verdict(probe(gap_ms=320.4, detect_ms=78.9, poll_gap_ms=282.4), "eth1", BOUND, STALL)
    assert verdict["status"] == "inconclusive"
    assert "the guest stalled for 282.4 ms during the window" in verdict["message"]


def test_a_gap_beyond_the_bound_even_without_the_stall_fails():
    verdict = failover_verdict(probe(gap_ms=900.0, poll_gap_ms=282.4), "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and "traffic gap 900.0 ms" in verdict["message"]


def test_a_gap_beyond_the_bound_without_a_stall_fails():
    verdict = failover_verdict(probe(gap_ms=320.4, poll_gap_ms=40.0), "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and "longest poll gap 40.0 ms" in verdict["message"]


@pytest.mark.parametrize("change, reason", [
    ({"failover": None}, "eth1 cut: the active member never moved"),
    ({"failover": {"from": "eth2", "to": "eth1", "gap_ms": 50.0}}, "eth1 cut: the active member went eth2 -> eth1"),
    ({"outages": [{"first_seq": 780, "lost": 600, "resumed": False}]}, "eth1 cut: traffic did not resume after"),
    ({"failed": True, "msg": "clock stepped by 900 ms"}, "eth1 cut: the probe failed: clock stepped by 900 ms"),
])
def test_a_bond_that_did_not_fail_over_fails_naming_what_the_probe_saw(change, reason):
    seen = dict(copy.deepcopy(REAL), **change)
    verdict = failover_verdict(seen, "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and verdict["message"].startswith(reason), verdict["message"]


def test_a_probe_job_ended_by_its_async_timeout_fails_with_the_message():
    # async_status of a job the wrapper killed (seen on a guest too loaded to run the probe in time).
    ended = {"ansible_job_id": "j109373717835.536", "finished": True, "started": True, "msg": "Timeout exceeded",
             "stdout": "", "stderr": "", "failed": False}
    verdict = failover_verdict(ended, "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and verdict["message"] == "eth1 cut: the probe failed: Timeout exceeded"


NO_TRAFFIC = ("after_traffic_pps: interface 52:54:00:d3:d1:58 (vnet10) of domain 'aiclab-node1' did not carry 100 "
              "packets a second within 120 s; the link was left up")


def test_a_member_never_cut_fails_saying_why_and_what_the_probe_said():
    verdict = failover_verdict({}, "eth1", BOUND, STALL, not_cut=NO_TRAFFIC)
    assert verdict == {"status": "failed", "figures": {"bound_ms": 300.0}, "message": "nothing was cut: " + NO_TRAFFIC}
    failed = failover_verdict({"failed": True, "msg": "ping failed (rc 2): ping: sendmsg: Network is unreachable"},
                              "eth1", BOUND, STALL, not_cut=NO_TRAFFIC)
    assert failed["status"] == "failed"
    assert failed["message"].endswith("; the probe failed: ping failed (rc 2): ping: sendmsg: Network is unreachable")
    # A clean measurement is still a failure when nothing was cut.
    assert failover_verdict(REAL, "eth1", BOUND, STALL, not_cut=NO_TRAFFIC)["status"] == "failed"


def test_a_clean_retry_decides_and_every_try_is_kept():
    stalled = failover_verdict(probe(gap_ms=320.4, poll_gap_ms=282.4), "eth1", BOUND, STALL)
    clean = failover_verdict(REAL, "eth1", BOUND, STALL)
    outcome = failover_outcome([stalled, clean])
    assert outcome["status"] == "passed" and outcome["message"].startswith("try 2 of 2: eth1 cut")
    assert outcome["figures"]["tries"] == 2
    assert outcome["figures"]["try1_gap_ms"] == 320.4 and outcome["figures"]["try2_gap_ms"] == 119.994
    assert outcome["figures"]["gap_ms"] == 119.994


def test_stalls_on_every_try_are_reported_inconclusive_never_failed_never_passed():
    stalled = failover_verdict(probe(gap_ms=320.4, poll_gap_ms=282.4), "eth1", BOUND, STALL)
    outcome = failover_outcome([stalled, stalled, stalled])
    assert outcome["status"] == "skipped"
    assert outcome["message"].startswith("inconclusive after 3 tries, the guest stalled each time: ")
    assert [outcome["figures"][f"try{n}_gap_ms"] for n in (1, 2, 3)] == [320.4, 320.4, 320.4]


def test_one_try_keeps_its_own_message():
    assert failover_outcome([failover_verdict(REAL, "eth1", BOUND, STALL)])["message"].startswith("eth1 cut: active")


def failback_probe(**changes):
    return changed_probe("failback", **changes)


def test_a_real_failback_within_the_bound_passes():
    verdict = failback_verdict(REAL, "eth1", "eth1", BOUND, STALL)
    assert verdict["status"] == "passed"
    assert verdict["message"] == "eth1 back: active eth2 -> eth1; traffic gap 32.45 ms, 1 lost (bound 300.0 ms)"
    assert verdict["figures"] == {"bound_ms": 300.0, "gap_ms": 32.45, "lost": 1, "detect_ms": 99.487,
                                  "max_poll_gap_ms": 66.262}


def test_a_failback_gap_made_of_a_stall_is_inconclusive():
    # A local run's figures: gap 318.288 ms with 1 lost at a 10 ms interval, so ping did not
    # run for most of the gap; the guest stalled (a poll gap of 250 ms, say).
    verdict = failback_verdict(failback_probe(gap_ms=318.288, poll_gap_ms=250.0), "eth1", "eth1", BOUND, STALL)
    assert verdict["status"] == "inconclusive"
    assert "the guest stalled for 250.0 ms during the probe" in verdict["message"]


@pytest.mark.parametrize("change, reason", [
    ({"gap_ms": 318.288, "poll_gap_ms": 40.0}, "traffic gap 318.288 ms, 1 lost (bound 300.0 ms); longest poll gap 40.0"),
    ({"to": "eth2"}, "the active member went eth2 -> eth2, expected the primary eth1"),
])
def test_a_failback_over_the_bound_or_to_the_wrong_member_fails(change, reason):
    probe_result = failback_probe(**change)
    verdict = failback_verdict(probe_result, "eth1", "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and reason in verdict["message"], verdict


def test_no_failback_at_all_fails_naming_the_primary():
    result = copy.deepcopy(REAL)
    result["failback"] = None
    verdict = failback_verdict(result, "eth1", "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and verdict["message"].startswith("eth1 back: the bond never went back to eth1")


def test_failback_stalls_on_every_try_are_skipped_with_the_stall():
    tries = [failback_verdict(failback_probe(gap_ms=318.288, poll_gap_ms=250.0), "eth1", "eth1", BOUND, STALL)] * 3
    outcome = failover_outcome(tries)
    assert outcome["status"] == "skipped" and outcome["message"].startswith("inconclusive after 3 tries")


# A load-test run (both host cores busy): node2's probe stopped its ping 3 s after the
# failback, 105 ms after the last reply; its last two echo requests had no reply yet.
STOPPED_IN_FLIGHT = {"first_seq": 743, "last_seq": 744, "lost": 2, "start": 1796122792.35662,
                     "end": 1796122792.461878, "gap_ms": 105.258, "resumed": False}


def test_echo_requests_in_flight_when_the_probe_stops_its_ping_are_not_an_outage():
    stopped = probe()
    stopped["settled"] = True
    stopped["outages"] = stopped["outages"] + [STOPPED_IN_FLIGHT]
    assert failover_verdict(stopped, "eth1", BOUND, STALL)["status"] == "passed"
    # Without the probe's own stop (ping ended by itself), such a run is traffic that never came back.
    stopped["settled"] = False
    assert failover_verdict(stopped, "eth1", BOUND, STALL)["message"].startswith("eth1 cut: traffic did not resume after")


def test_traffic_that_never_came_back_after_the_cut_fails_even_when_the_probe_stopped_itself():
    never = probe()
    never["settled"] = True
    never["outages"] = [dict(never["outages"][0], resumed=False, end=never["end_time"],
                             gap_ms=round((never["end_time"] - never["outages"][0]["start"]) * 1000, 3))]
    verdict = failover_verdict(never, "eth1", BOUND, STALL)
    assert verdict["status"] == "failed" and "traffic did not resume after" in verdict["message"]
