# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chaos verdicts on the records of a real run, and on each way they can fail.

The fixtures are the records the chaos role kept (results/<run-id>/chaos-<fault>.json) in
a run of `molecule test -s chaos` on the three-node mollab lab, node1 observing: a kill and
a partition of node3, a cascade of node2 then node3 (tests/unit/fixtures/chaos/).
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.chaos import FilterModule, chaos_checks
from ansible_collections.aicluster.lab.plugins.module_utils.chaos_verdict import lost_check, others_check, recovered_check

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "chaos"
FAULTS = ("kill", "partition", "cascade")


def record(fault):
    return copy.deepcopy(json.loads((FIXTURES / f"mollab-{fault}.json").read_text()))


@pytest.mark.parametrize("fault", FAULTS)
def test_the_real_run_passes_every_check(fault):
    rec = record(fault)
    checks = chaos_checks(fault, rec)
    assert [check["name"] for check in checks] == (
        [f"chaos_{fault}_{victim}_lost" for victim in rec["victims"]] + [f"chaos_{fault}_others_kept"]
        + [f"chaos_{fault}_{victim}_recovered" for victim in rec["victims"]])
    assert all(check["passed"] for check in checks), [check["message"] for check in checks if not check["passed"]]
    assert all(check["category"] == "chaos" for check in checks)
    for check in checks:
        if check["name"].endswith("_lost"):
            assert 0 < check["figures"]["detect_s"] < 60
        if check["name"].endswith("_recovered"):
            assert 0 < check["figures"]["recover_s"] <= check["figures"]["down_s"]


def test_a_victim_the_watch_never_lost():
    rec = record("kill")
    victim = rec["victims"][0]
    rec["watch"][victim]["transitions"] = [t for t in rec["watch"][victim]["transitions"] if t["state"] != "lost"]
    check = lost_check("kill", victim, rec)
    assert not check["passed"]
    assert check["message"].startswith(f"{victim} was never declared lost after the kill: [")
    assert check["figures"] == {"detect_s": None, "first_failed_s": None}


def test_a_loss_before_the_hit_is_not_this_fault():
    rec = record("kill")
    victim = rec["victims"][0]
    rec["hit_at"][victim] = max(t["time"] for t in rec["watch"][victim]["transitions"]) + 1
    assert not lost_check("kill", victim, rec)["passed"]


def test_a_survivor_lost_or_unreachable_fails_the_others_check():
    rec = record("partition")
    survivor = next(node for node in rec["nodes"] if node not in rec["victims"])
    rec["watch"][survivor]["lost_s_total"] = 1.5
    check = others_check("partition", rec)
    assert not check["passed"]
    assert check["message"] == f"lost during the partition: {survivor}; unreachable on the cluster network: none"
    rec = record("partition")
    pinged = next(iter(rec["survivor_pings"]), None) or survivor
    rec["survivor_pings"] = {pinged: 1}
    check = others_check("partition", rec)
    assert not check["passed"]
    assert check["message"] == f"lost during the partition: none; unreachable on the cluster network: {pinged}"


@pytest.mark.parametrize("change, message", [
    ("not back", "did not answer the watch, SSH answered within"),
    ("no ssh", "answers the watch, SSH did not answer within"),
    ("no network", "answers the watch, SSH answered and not on the cluster network within"),
])
def test_each_way_a_victim_does_not_recover(change, message):
    rec = record("kill")
    victim = rec["victims"][0]
    if change == "not back":
        rec["watch"][victim]["transitions"] = [t for t in rec["watch"][victim]["transitions"] if t["state"] != "back"]
    elif change == "no ssh":
        rec["ssh"][victim] = {"failed": True, "msg": "Timeout when waiting for search string OpenSSH"}
    else:
        rec["net_back"][victim] = 1
    check = recovered_check("kill", victim, rec)
    assert not check["passed"]
    assert check["message"] == f"{victim} {message} {rec['recover_timeout_s']} s"


def test_the_filter_checks_its_input():
    assert FilterModule().filters() == {"chaos_checks": chaos_checks}
    with pytest.raises(AnsibleFilterError, match="the record must be a mapping"):
        chaos_checks("kill", None)
    rec = record("kill")
    del rec["watch"], rec["ssh_at"]
    with pytest.raises(AnsibleFilterError, match="the record of fault kill lacks ssh_at, watch"):
        chaos_checks("kill", rec)
    rec = record("kill")
    rec["hit_at"] = {}
    with pytest.raises(AnsibleFilterError, match="fault kill: no hit or heal time for " + rec["victims"][0]):
        chaos_checks("kill", rec)
