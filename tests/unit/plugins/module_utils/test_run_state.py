# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_state: what state.json says as a run goes, and what a run that dies leaves."""

import json

from ansible_collections.aicluster.lab.plugins.module_utils.run_state import RunState, check_records, stage_of_play, write_state


def test_stages_are_read_from_play_names():
    assert stage_of_play("Stage network | links, bond, VLANs and addresses") == "network"
    assert stage_of_play("Stage provision | the nodes answer") == "provision"
    assert stage_of_play("Suite | start the run") is None
    assert stage_of_play(None) is None


def test_a_stage_of_several_plays_is_one_stage_and_ends_when_the_next_starts():
    state = RunState("full-suite.yml", 100.0)
    assert state.enter_stage("provision", 101.0)
    assert not state.enter_stage("provision", 140.0)  # its second play
    assert not state.enter_stage(None, 141.0)  # a play outside the stages
    assert state.enter_stage("network", 150.0)
    assert state.stages == [{"stage": "provision", "started": 101.0, "seconds": 49.0},
                            {"stage": "network", "started": 150.0, "seconds": None}]
    state.finish(170.0, failed=False)
    assert state.stages[-1]["seconds"] == 20.0 and state.status == "finished"


def test_a_stage_begins_with_its_first_work_so_a_play_that_only_skips_is_no_stage():
    state = RunState("full-suite.yml", 0.0)
    state.play_started("validate")
    assert state.activity(1.0) and state.stage == "validate"
    state.play_started("report")  # validate.yml's own report, skipped inside the suite
    state.play_started("failover")
    assert state.activity(5.0) and [s["stage"] for s in state.stages] == ["validate", "failover"]
    state.play_started(None)  # "Suite | failover done": the stage goes on
    assert not state.activity(6.0) and state.stage == "failover"


def test_checks_are_counted_and_failures_named():
    state = RunState("validate.yml", 0.0)
    state.check({"host": "node1", "name": "net_mtu", "status": "passed"}, 1.0)
    state.check({"host": "node2", "name": "net_bond", "status": "failed", "message": "bond0: mode balance-rr"}, 2.0)
    state.check({"host": "node2", "name": "bond_failback", "status": "skipped"}, 3.0)
    assert state.to_dict()["checks"] == {"passed": 1, "failed": 1, "skipped": 1, "total": 3}
    assert state.failed_checks == [{"host": "node2", "name": "net_bond", "message": "bond0: mode balance-rr"}]


def test_check_records_of_a_single_check_a_batch_and_loops_of_either():
    one, two, three = ({"host": "node1", "name": name, "status": "passed"} for name in ("a", "b", "c"))
    assert check_records({"check": one, "msg": "PASSED"}) == [one]
    assert check_records({"checks": [one, two], "msg": "2 checks"}) == [one, two]
    assert check_records({"results": [{"check": one}, {"skipped": True}, {"check": two}]}) == [one, two]
    assert check_records({"results": [{"checks": [one, two]}, {"checks": [three]}]}) == [one, two, three]
    # Results of other tasks: no records, whatever keys they have.
    assert check_records({"changed": True, "checks": ["not a record"]}) == []
    assert check_records({"failed_checks": [one], "results": []}) == []
    assert check_records({"results": ["text", None]}) == []


def test_a_failed_host_keeps_its_stage_task_and_message():
    state = RunState("full-suite.yml", 0.0)
    state.enter_stage("network", 1.0)
    state.start_task("Confirm the change", 2.0)
    state.host_result("node2", "failed", 3.0, "cut off: no new connection within 60 s")
    state.start_task("Next task", 4.0)
    state.host_result("node2", "ok", 5.0)  # a later ok does not hide the failure
    assert state.hosts["node2"] == {"status": "failed", "tasks": 2, "stage": "network", "task": "Confirm the change",
                                    "message": "cut off: no new connection within 60 s"}


def test_a_run_that_dies_leaves_its_last_stage_and_task(tmp_path):
    state = RunState("full-suite.yml", 0.0)
    state.enter_stage("validate", 10.0)
    state.start_task("L1 | read the boot state", 11.0)
    write_state(str(tmp_path), state)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["status"] == "running" and saved["stage"] == "validate"
    assert saved["task"] == "L1 | read the boot state"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
