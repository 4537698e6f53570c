# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's verdicts: the offline checks on the lab's reads, the live ones on EXO's
answers (fixtures/exo/README.md says how each was made) and on the kernel's socket table,
chaos on the watch's events - each passing, and each way it can fail."""

import copy
import json
import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import exo_verdict
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils import exo_lab
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.exo_lab import lab_state

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "exo"
REF = exo_lab.REF
N1, N2, N2_NEW = "9f1c0d2e4b7a4c1e8d3f6a5b2c1d0e9f", "4e8b2a7c9d1f0e3b5a6c7d8e9f0a1b2c", "7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
THRESHOLDS = {"max_drop_s": 90, "max_rejoin_s": 120}


def text(name):
    return (FIXTURES / name).read_text()


def answer(name, status=200, body=None, seconds=0.02):
    body = text(body) if body and len(body) < 100 and (FIXTURES / body).exists() else (body or "")
    return f"### {name}\nstatus {status}\nseconds {seconds}\n{body}\n"


# ---------------------------------------------------------------- offline, on the lab's reads

def lab_ctx(state, host="node1"):
    """The role's context on the lab, with both lab nodes' identities and machine ids beside it."""
    ctx = exo_lab.lab_ctx(state, host)
    other = lab_state("node2" if host == "node1" else "node1")
    ctx["identities"] = {host: state["identity"]["id"], other["identity"]["host"]: other["identity"]["id"]}
    ctx["machine_ids"] = {host: state["machine_id"], other["identity"]["host"]: other["machine_id"]}
    ctx["shared_node_zids"] = []
    return ctx


def by_name(records):
    return {record["name"]: record for record in records}


def test_the_labs_node_passes_every_offline_check_and_skips_the_install():
    state = lab_state()
    records = by_name(exo_verdict.offline_checks(state, lab_ctx(state)))
    assert list(records) == ["exo_unit", "exo_hardening", "exo_environment", "exo_firewall", "exo_link_local",
                             "exo_identity", "exo_install"]
    for name in list(records)[:-1]:
        assert records[name]["passed"] and "skip_reason" not in records[name], records[name]
    assert records["exo_install"]["skip_reason"].startswith("no EXO artifact given")
    assert records["exo_hardening"]["figures"] == {"directives": 21}
    assert records["exo_link_local"]["message"].startswith("bond0.200 fe80::")


def test_a_unit_changed_by_hand_without_the_firewall_requirement():
    state = lab_state()
    state["files"]["/etc/systemd/system/exo.service"] = "0" * 64
    state["unit_show"]["Requires"] = "sysinit.target"
    state["unit_show"]["ExecStart"] = state["unit_show"]["ExecStart"].replace("--offline", "--legacy-daemon")
    record = exo_verdict.unit_check(state, lab_ctx(state))
    assert not record["passed"]
    assert "is not the role's" in record["message"] and "--legacy-daemon forks EXO away" in record["message"]
    assert "does not require aicluster-exo-firewall.service" in record["message"]


def test_hardening_loosened_is_named_directive_by_directive():
    state = lab_state()
    state["unit_show"].update(ProtectSystem="full", CapabilityBoundingSet="cap_net_admin",
                              ReadWritePaths="/var/lib/exo /var/lib/exo/models /etc")
    state["unit_show"].pop("NoNewPrivileges")
    message = exo_verdict.hardening_check(state, lab_ctx(state))["message"]
    assert "ProtectSystem=full, expected ProtectSystem=strict" in message
    assert "CapabilityBoundingSet=cap_net_admin, expected CapabilityBoundingSet=" in message
    assert "NoNewPrivileges=(not shown), expected NoNewPrivileges=yes" in message
    assert "ReadWritePaths=/var/lib/exo /var/lib/exo/models /etc" in message


def test_an_environment_exo_refuses():
    state = lab_state()
    state["unit_show"]["Environment"] += " EXO_LIBP2P_NAMESPACE=lab EXO_OFFLINE=false"
    message = exo_verdict.environment_check(state, lab_ctx(state))["message"]
    assert "EXO_OFFLINE='false', expected 'true'" in message and "EXO_LIBP2P_NAMESPACE is set" in message


def test_a_firewall_not_loaded_and_nft_missing():
    state = lab_state()
    ctx = lab_ctx(state)
    state["nft"], state["tools"]["nft"] = "", None
    message = exo_verdict.firewall_check(state, ctx)["message"]
    assert message == "nft is not installed; table inet aicluster_exo is not loaded"


def test_link_local_missing_duplicated_or_elsewhere_on_the_plan():
    state = lab_state()
    ctx = lab_ctx(state)
    for entry in state["addrs"]:
        if entry["ifname"] == "bond0.200":
            for info in entry["addr_info"]:
                if info.get("family") == "inet6":
                    info["dadfailed"] = True
        if entry["ifname"] == "bond0.100":
            entry["addr_info"].append({"family": "inet6", "local": "fe80::1", "prefixlen": 64})
    message = exo_verdict.link_local_check(state, ctx)["message"]
    assert "failed duplicate address detection" in message
    assert "the plan's bond0.100 also carry IPv6 link-local addresses" in message


def test_identities_shared_or_made_elsewhere():
    state = lab_state()
    ctx = lab_ctx(state)
    ctx["identities"]["node2"] = state["identity"]["id"]
    ctx["machine_ids"]["node2"] = state["machine_id"]
    ctx["shared_node_zids"] = ["node1", "node2"]
    state["identity"]["host"] = "node9"
    message = exo_verdict.identity_check(state, ctx)["message"]
    assert "was made for node9" in message and "node2 hold the same identity" in message
    assert "node2 share machine-id" in message and "node_zid file is the same" in message


def test_an_installed_artifact_of_another_extra():
    state = lab_state()
    ctx = dict(lab_ctx(state), artifact={"ref": REF, "extra": "mlx-cuda12", "arch": "x86_64", "sha256": "a" * 64})
    state["artifact"] = dict(ctx["artifact"])
    record = exo_verdict.install_check(state, ctx)
    assert not record["passed"] and "holds mlx-cuda12, the host needs mlx-cpu" in record["message"]
    state["artifact"]["extra"] = "mlx-cpu"
    ctx["artifact"]["extra"] = "mlx-cpu"
    assert exo_verdict.install_check(state, ctx)["passed"]


def test_exec_argv_and_environment_as_systemctl_show_prints_them():
    assert exo_verdict.exec_argv("{ path=/bin/x ; argv[]=/bin/x --a 1 ; ignore_errors=no ; start_time=[n/a] }") == [
        "/bin/x", "--a", "1"]
    assert exo_verdict.environment('HOME=/var/lib/exo "A=b c"') == {"HOME": "/var/lib/exo", "A": "b c"}


# ---------------------------------------------------------------- live

def probe(state="api-state-two-nodes.json", node_id="api-node-id.json", sockets="netns-ss-node1-with-management.txt",
          wait=3.2):
    return (answer("node_id", body=node_id) + answer("state", body=state, seconds=wait)
            + "### sockets\n" + text(sockets))


def test_node_id_and_a_cluster_of_two():
    record, node_id = exo_verdict.node_id_check(probe())
    assert node_id == N1 and record["passed"] and record["figures"] == {"response_ms": 20.0}
    state = exo_verdict.cluster_state_check(probe(), {"node1": N1, "node2": N2}, "192.168.200.0/24")
    assert state["passed"], state
    assert state["figures"] == {"ready_nodes": 2, "live_nodes": 2, "edges": 2, "wait_s": 3.2}


def test_a_node_missing_a_ghost_and_edges_around_the_firewall():
    missing = exo_verdict.cluster_state_check(probe("api-state-node2-timed-out.json"), {"node1": N1, "node2": N2})
    assert not missing["passed"] and "not live: node2 (4e8b2a7c" in missing["message"]
    ghost = exo_verdict.cluster_state_check(probe(), {"node1": N1, "node2": N2_NEW})
    assert "live nodes that no host is: 4e8b2a7c" in ghost["message"]
    around = exo_verdict.cluster_state_check(probe("api-state-two-nodes-no-firewall.json"), {"node1": N1, "node2": N2},
                                             "192.168.200.0/24")
    assert "outside the cluster network 192.168.200.0/24" in around["message"]
    assert "at 192.168.155.12" in around["message"] and "at 192.168.100.11" in around["message"]


def test_stale_identities_are_said_not_failed():
    state = json.loads(text("api-state-node2-timed-out.json"))
    state["nodeIdentities"][N2_NEW] = state["nodeIdentities"][N1]
    state["nodeMemory"][N2_NEW] = state["nodeMemory"][N1]
    state["topology"]["nodes"].append(N2_NEW)
    record = exo_verdict.cluster_state_check(answer("state", body=json.dumps(state)), {"node1": N1, "node2": N2_NEW})
    assert record["passed"], record
    assert "EXO keeps nodeIdentities after a timeout" in record["message"] and N2 in record["message"]


def test_no_node_id_and_no_state():
    failed = "### node_id\nerror URLError: <urlopen error [Errno 111] Connection refused>\nseconds 0.001\n\n"
    record, node_id = exo_verdict.node_id_check(failed)
    assert node_id is None and "Connection refused" in record["message"]
    assert "GET /state: no answer" in exo_verdict.cluster_state_check(failed, {"node1": None})["message"]


LINKS = {"interface": "bond0.200", "address": "192.168.200.11", "port": 52414,
         "peers": {"node2": {"address": "192.168.200.12", "link_local": ["fe80::b407:53ff:fe3b:c693"]}}}


def test_zenoh_over_management_is_flagged():
    record = exo_verdict.peer_links_check(probe(), LINKS)
    assert not record["passed"]
    assert record["message"] == ("zenoh connection 192.168.155.11:52414 <-> 192.168.155.12:43364 is not on bond0.200")
    assert record["figures"]["connections"] == 3 and record["figures"]["peers_connected"] == 1


def test_zenoh_on_the_cluster_only_and_a_peer_not_connected():
    only_cluster = "\n".join(line for line in text("netns-ss-node1-with-management.txt").split("\n\t")
                             if "192.168.155" not in line)
    record = exo_verdict.peer_links_check(answer("x") + "### sockets\n" + only_cluster, LINKS)
    assert record["passed"], record
    assert record["figures"]["peers_connected"] == 1 and record["figures"]["rtt_ms_max"] > 0
    lonely = dict(LINKS, peers=dict(LINKS["peers"], node3={"address": "192.168.200.13", "link_local": ["fe80::3"]}))
    assert "no zenoh connection with node3 on bond0.200" in exo_verdict.peer_links_check(
        "### sockets\n" + only_cluster, lonely)["message"]


def test_the_chat():
    run = (answer("place", body="api-place-instance.json") + answer("await", body="api-await-ready.txt", seconds=41.5)
           + answer("chat", body="api-chat-completion.json", seconds=2.345))
    record = exo_verdict.chat_check(run, "mlx-community/Llama-3.2-1B-Instruct-4bit")
    assert record["passed"] and record["figures"] == {"await_s": 41.5, "latency_s": 2.345, "completion_tokens": 3}


@pytest.mark.parametrize("run, problem", [
    (answer("place", 404, '{"detail": "model not found"}'), "POST /place_instance: status 404"),
    (answer("place", body="api-place-instance.json") + answer("await", body="api-await-timeout.txt"), "No instance found"),
    (answer("place", body="api-place-instance.json") + answer("await", body="api-await-ready.txt")
     + answer("chat", 500, '{"error": "runner failed"}'), "POST /v1/chat/completions: status 500"),
    ("", "POST /place_instance: no answer"),
])
def test_a_chat_that_fails_says_where(run, problem):
    record = exo_verdict.chat_check(run, "m")
    assert not record["passed"] and problem in record["message"]


# ---------------------------------------------------------------- chaos

def events(*items):
    return "\n".join(json.dumps(dict(event=kind, t=t, **fields)) for t, kind, fields in items) + "\n"


STOP = events((0, "start", {}), (0.01, "victim_up", {"node_id": N2}), (0.02, "state", {"live": [N1, N2]}),
              (8.4, "victim_down", {}), (44.9, "state", {"live": [N1]}), (68.6, "victim_up", {"node_id": N2_NEW}),
              (79.3, "state", {"live": [N1, N2_NEW]}), (79.3, "end", {}))


def test_a_stopped_node_dropped_and_rejoined_under_a_new_id():
    dropped, rejoined = exo_verdict.chaos_checks(STOP, "stop", "node2", N2, 2, THRESHOLDS)
    assert dropped["name"] == "exo_chaos_stop_node2_dropped" and dropped["passed"]
    assert dropped["figures"] == {"down_s": 60.2, "detect_s": 36.5}
    assert rejoined["passed"] and rejoined["figures"] == {"rejoin_s": 10.7, "new_node_id": 1}


def test_a_partitioned_node_keeps_its_id_and_must_drop_while_away():
    partition = STOP.replace(N2_NEW, N2)
    dropped, rejoined = exo_verdict.chaos_checks(partition, "partition", "node2", N2, 2, THRESHOLDS)
    assert dropped["passed"] and rejoined["passed"] and rejoined["figures"]["new_node_id"] == 0
    never = events((0, "start", {}), (0.01, "victim_up", {"node_id": N2}), (0.02, "state", {"live": [N1, N2]}),
                   (8.4, "victim_down", {}), (28.4, "victim_up", {"node_id": N2}), (30.0, "end", {}))
    dropped, rejoined = exo_verdict.chaos_checks(never, "partition", "node2", N2, 2, THRESHOLDS)
    assert not dropped["passed"] and "still listed node2" in dropped["message"] and "when it came back" in dropped["message"]


@pytest.mark.parametrize("watch, problem", [
    ("Traceback (most recent call last):", "the watch printed no events"),
    (events((0, "start", {}), (0.1, "victim_down", {}), (5, "end", {})), "already down when the watch started"),
    (events((0, "start", {}), (0.1, "victim_up", {"node_id": N2}), (240, "end", {})), "never went down"),
])
def test_a_fault_that_could_not_be_timed(watch, problem):
    dropped, rejoined = exo_verdict.chaos_checks(watch, "stop", "node2", N2, 2, THRESHOLDS)
    assert not dropped["passed"] and problem in dropped["message"]
    assert not rejoined["passed"] and rejoined["message"].startswith("not measured: ")


def test_too_slow_and_never_back():
    slow = exo_verdict.chaos_checks(STOP, "stop", "node2", N2, 2, {"max_drop_s": 30, "max_rejoin_s": 5})
    assert "more than 30 s" in slow[0]["message"] and "more than 5 s" in slow[1]["message"]
    gone = events(*[(t, kind, fields) for t, kind, fields in json_items(STOP) if t < 60])
    assert "did not answer again" in exo_verdict.chaos_checks(gone, "stop", "node2", N2, 2, THRESHOLDS)[1]["message"]
    alone = events(*[(t, kind, fields) for t, kind, fields in json_items(STOP) if t < 70])
    assert "was not live again" in exo_verdict.chaos_checks(alone, "stop", "node2", N2, 2, THRESHOLDS)[1]["message"]


def json_items(text_):
    for line in text_.splitlines():
        item = json.loads(line)
        yield item.pop("t"), item.pop("event"), item


def test_skipped_live_checks_name_the_reason():
    records = exo_verdict.live_skipped("no EXO artifact given")
    assert [r["name"] for r in records] == ["exo_node_id", "exo_cluster_state", "exo_peer_links", "exo_chat"]
    assert all(r["skip_reason"] == "no EXO artifact given" and r["passed"] for r in records)
    assert copy.deepcopy(records) == records
