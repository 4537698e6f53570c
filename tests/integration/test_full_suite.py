"""full-suite.yml on the default local lab, as a user runs it, in the order a user would.

One lab is shared by the tests of this module, in order: check mode on a missing
lab, the first run, a second run, check mode on the running lab, a network change
that cuts a node off (and the node rolling itself back), a hop with a smaller MTU
than the profile's (the path MTU check fails), k3s reset, teardown, and a lab
restored from its saved boot state, its network converged and validated. The default lab's profile is
bonding-vlans.
"""

import os
import pathlib
import re

import pytest

from labtools import OUTPUT, ROOT, URI, read_json, record_benchmark, virsh_names

pytestmark = pytest.mark.vm

LAB = "aiclab-"
NODES = ["node1", "node2"]
PLAYBOOK = ["ansible-playbook", "playbooks/full-suite.yml"]


def assert_all_layers_passed(report_path, failover=True):
    report = read_json(report_path)
    run_dir = pathlib.Path(report_path).parent
    assert (run_dir / "junit.xml").is_file() and (run_dir / "summary.md").is_file()
    checks = report["checks"]
    for node in NODES:
        mine = [c for c in checks if c["host"] == node]
        assert {c["category"] for c in mine} >= {"L1", "L2", "network"}, f"{node}: {mine}"
        phases = {c["name"] for c in mine if c["category"] == "network"}
        assert phases >= {"net_links_up", "net_addresses", "net_vlan_ids", "net_bond", "net_routes",
                          "net_isolation", "net_neighbours", "net_mtu", "net_cluster_link_local"}, phases
        # The path MTU is proven per peer and network, not only the interfaces' settings.
        assert {f"net_path_mtu_{net}_{peer}" for net in ("cluster", "storage") for peer in NODES if peer != node} \
            <= {c["name"] for c in mine}, sorted(c["name"] for c in mine)
        # Skipped with the reason, and nothing else: Soft-RoCE's DCB, and the live parts of k3s and EXO,
        # whose binaries these machines cannot have.
        not_passed = [c for c in mine if c["status"] != "passed"]
        assert all(c["status"] == "skipped" for c in not_passed), f"{node}: {not_passed}"
        assert {c["category"] for c in not_passed} <= {"rdma", "k3s", "exo"}, f"{node}: {not_passed}"
        assert {c["name"] for c in not_passed if c["category"] == "rdma"} <= {"rdma_dcb"}, not_passed
        assert all("no k3s binary to install" in c["message"] for c in not_passed if c["category"] == "k3s"), \
            not_passed
        assert all("no EXO artifact given" in c["message"] for c in not_passed if c["category"] == "exo"), \
            not_passed
        if not failover:
            continue
        # The k3s stage ran: its config checks passed, its live part skipped where no binary is given.
        k3s = {c["name"]: c["status"] for c in mine if c["category"] == "k3s"}
        assert k3s.get("k3s_config") == "passed", k3s
        if not os.environ.get("AICLUSTER_K3S_ARTIFACTS"):
            assert "skipped" in k3s.values(), k3s
        # The exo stage ran: its offline checks passed, its live ones skipped where no artifact is given.
        exo = {c["name"]: c["status"] for c in mine if c["category"] == "exo"}
        assert all(exo.get(name) == "passed" for name in ("exo_unit", "exo_hardening", "exo_firewall", "exo_identity")), exo
        if not os.environ.get("AICLUSTER_EXO_ARTIFACT"):
            assert exo.get("exo_node_id") == "skipped", exo
        # Every suite run cuts each bond's active member and reports the gap.
        measured = {c["name"]: c for c in mine if c["category"] == "failover"}
        assert {"bond_failover", "bond_failback"} <= set(measured), measured
        assert {"gap_ms", "lost", "bound_ms"} <= set(measured["bond_failover"]["figures"]), measured
        # The default profile asks for RoCE on storage: the device and its GID on every node, and
        # the pair measured from the first node, RDMA beside TCP; no GPU here: the CPU fallback.
        rdma = {c["name"]: c for c in mine if c["category"] == "rdma"}
        assert "gid_index" in rdma["rdma_device"]["figures"], rdma
        if node == NODES[0]:
            assert {"t_typical_us"} <= set(rdma[f"rdma_latency_{NODES[1]}"]["figures"]), rdma
            assert {"bw_avg_mbps", "tcp_mbps"} <= set(rdma[f"rdma_bandwidth_{NODES[1]}"]["figures"]), rdma
        assert [c["name"] for c in mine if c["category"] == "hardware"] == ["gpu_cpu_fallback"], mine
    assert report["summary"]["failed"] == 0
    return report


def record_suite(name, run, report):
    gaps = {f"{c['host']}_{c['name']}_gap_ms": c["figures"]["gap_ms"] for c in report["checks"]
            if c["category"] == "failover" and "gap_ms" in c["figures"]}
    rdma = {f"{c['host']}_{c['name']}_{key}": c["figures"][key] for c in report["checks"] if c["category"] == "rdma"
            for key in ("t_typical_us", "bw_avg_mbps", "tcp_mbps") if key in c["figures"]}
    stages = {f"{stage}_s": seconds for stage, seconds in report["metadata"].get("stages_s", {}).items()}
    record_benchmark(name, {"wall_s": round(run.seconds, 1), **gaps, **rdma, **stages})


def tasks_listed(run_cmd, *extra):
    run = run_cmd(PLAYBOOK + ["--list-tasks"] + list(extra))
    assert run.returncode == 0, run.tail()
    return run.output


def test_performance_and_chaos_run_only_when_asked(run_cmd):
    # Listing the tasks a run would do, by tags, touches no host.
    default = tasks_listed(run_cmd)
    assert "Run the validation checks" in default and "Measure the failover" in default
    assert "Throughput, single link against bond" not in default and "Inject the faults" not in default
    asked = tasks_listed(run_cmd, "--tags", "all,performance,chaos")
    assert "Run the validation checks" in asked and "Measure the failover" in asked
    assert "Throughput, single link against bond" in asked and "Degraded networks" in asked
    assert "Inject the faults" in asked


@pytest.fixture(scope="module", autouse=True)
def no_lab_before_and_after():
    """Start from no lab and leave none behind, whatever happens in between."""
    import subprocess

    teardown = ["ansible-playbook", "playbooks/teardown.yml"]
    subprocess.run(teardown, cwd=ROOT, capture_output=True, check=True)
    yield
    subprocess.run(teardown, cwd=ROOT, capture_output=True, check=False)


def test_check_mode_on_a_missing_lab_reports_changes_and_creates_nothing(run_cmd):
    run = run_cmd(PLAYBOOK + ["--check"])
    assert run.returncode == 0, run.tail()
    assert run.recap()["localhost"]["changed"] > 0, run.tail()
    changed = run.changed_tasks()
    assert "aicluster.lab.vm_lab : Define the management network aiclab-mgmt" in changed, changed
    assert "check mode: nodes aiclab-node1, aiclab-node2 would be defined" in run.output, run.tail()
    assert virsh_names("list", LAB) == [] and virsh_names("net-list", LAB) == []


def test_first_run_provisions_configures_and_passes_every_layer(run_cmd):
    run = run_cmd(PLAYBOOK)
    assert run.returncode == 0, run.tail()
    report = assert_all_layers_passed(run.report())
    record_suite("full-suite first run", run, report)
    booted = [c for c in report["checks"] if c["name"] == "l1_systemd_running"]
    assert all("time_to_ssh_s" in c["figures"] for c in booted), booted
    assert virsh_names("list", LAB) == ["aiclab-node1", "aiclab-node2"]
    # state.json followed the run to its end.
    state = read_json(run.report().parent / "state.json")
    assert state["status"] == "finished" and state["checks"]["total"] == report["summary"]["total"], state
    assert [s["stage"] for s in state["stages"]] == ["provision", "network", "validate", "rdma", "hardware", "k3s", "exo",
                                                     "failover", "report"], state


def test_second_run_changes_nothing_in_provisioning(run_cmd):
    provision = run_cmd(["ansible-playbook", "playbooks/provision.yml"])
    assert provision.returncode == 0, provision.tail()
    assert all(r["changed"] == 0 for r in provision.recap().values()), provision.changed_tasks()
    suite = run_cmd(PLAYBOOK)
    assert suite.returncode == 0, suite.tail()
    record_suite("full-suite second run", suite, assert_all_layers_passed(suite.report()))
    # No stage's role changes anything the second time (the rdma and k3s scenarios, on demand
    # in CI, prove the same on labs of their own).
    roles = tuple(f"aicluster.lab.{role} " for role in ("vm_lab", "network", "rdma", "gpu", "k3s", "exo"))
    assert not [t for t in suite.changed_tasks() if t.startswith(roles)], suite.changed_tasks()


def test_check_mode_on_the_running_lab_reports_no_change(run_cmd):
    run = run_cmd(PLAYBOOK + ["--check", "--diff"])
    assert run.returncode == 0, run.tail()
    assert all(r["changed"] == 0 for r in run.recap().values()), run.changed_tasks()
    assert "check mode: nodes" not in run.output, "check mode could not look at the running lab"


def test_a_killed_run_leaves_state_json_naming_its_last_stage():
    import json
    import signal
    import subprocess
    import time

    before = set((ROOT / "results").glob("*/state.json"))
    with subprocess.Popen(PLAYBOOK, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True) as proc:
        state, deadline = None, time.monotonic() + 900
        try:
            # Killed in the validate stage, which only reads the nodes.
            while proc.poll() is None and time.monotonic() < deadline:
                # This run's file: another run in the checkout (a molecule side effect) may write its own.
                new = [path for path in sorted(set((ROOT / "results").glob("*/state.json")) - before)
                       if json.loads(path.read_text()).get("playbook") == "full-suite.yml"]
                if new:
                    state = json.loads(new[-1].read_text())
                    if state["stage"] == "validate":
                        break
                time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
    assert state and state["stage"] == "validate", state
    left = json.loads(new[-1].read_text())
    assert left["status"] == "running" and left["stage"] == "validate", left
    assert [s["stage"] for s in left["stages"]][:3] == ["provision", "network", "validate"], left
    assert left["stages"][0]["seconds"] > 0 and left["stages"][-1]["seconds"] is None, left
    record_benchmark("killed run: state.json", {"stage": left["stage"], "task": left["task"]})


# A profile that puts a static address on eth0, the management link the controller
# uses: applying it cuts the node off. The node must restore its previous network by
# itself, and a normal run afterwards must find nothing to change.
CUTOFF_PROFILE = {
    "links": [{"name": "eth0"}],
    "networks": {"cluster": {"parent": "eth0", "subnet": "10.99.0.0/24"}},
    "hosts": {"node2": {"addresses": {"cluster": "10.99.0.12"}}},
}


def test_a_change_that_cuts_the_node_off_is_rolled_back_by_the_node(run_cmd):
    import json

    network = ["ansible-playbook", "playbooks/network.yml", "--limit", "node2"]
    cut = run_cmd(network + ["-e", json.dumps({"network_profile": CUTOFF_PROFILE,
                                               "network_rollback_timeout": 20, "network_confirm_within": 15})])
    assert cut.returncode != 0, cut.tail()
    assert "cut the host off from the controller" in cut.output, cut.tail()
    text = " ".join(cut.output.split())
    assert "no new connection reached it within 20 s of the change taking effect" in text, cut.tail()
    rolled = re.search(r"rolled it back by itself ([0-9.]+) s after the change took effect \(([0-9.]+) s after it was "
                       r"armed; restoring took ([0-9.]+) s, by the clock of the host\) and was reachable again "
                       r"([0-9.]+) s after the change started", text)
    assert rolled, cut.tail()
    # The host keeps its window: it rolls back no sooner than 20 s after the change took effect.
    assert float(rolled.group(1)) >= 20, cut.tail()
    record_benchmark("network cut-off rollback", {"rolled_back_after_effective_s": float(rolled.group(1)),
                                                  "rolled_back_after_arming_s": float(rolled.group(2)),
                                                  "restore_s": float(rolled.group(3)),
                                                  "reachable_again_after_s": float(rolled.group(4)),
                                                  "rollback_timeout_s": 20, "wall_s": round(cut.seconds, 1)})
    print(f"node2 rolled itself back {rolled.group(1)} s after the change took effect (restore {rolled.group(3)} s), "
          f"reachable again after {rolled.group(4)} s; the run took {cut.seconds:.0f} s")
    again = run_cmd(network)
    assert again.returncode == 0, again.tail()
    assert again.recap()["node2"]["changed"] == 0, again.changed_tasks()
    # The node is whole again: every validation layer passes (the failover stage proves
    # nothing more about a rollback, and the next full-suite runs measure it anyway).
    validate = run_cmd(["ansible-playbook", "playbooks/validate.yml"])
    assert validate.returncode == 0, validate.tail()
    assert_all_layers_passed(validate.report(), failover=False)


def test_a_change_to_one_network_reconfigures_only_its_link(run_cmd):
    network = ["ansible-playbook", "playbooks/network.yml", "--limit", "node2"]
    moved = run_cmd(network + ["-e", '{"network_addresses": {"storage": "192.168.100.22"}}'])
    assert moved.returncode == 0, moved.tail()
    text = " ".join(moved.output.split())
    assert "files changed 10-aicluster-bond0.100.network; links reconfigured: bond0.100'" in text, moved.tail()
    back = run_cmd(network)
    assert back.returncode == 0, back.tail()
    assert "links reconfigured: bond0.100'" in " ".join(back.output.split()), back.tail()


def test_a_link_on_the_path_with_a_smaller_mtu_fails_the_path_mtu_check(run_cmd):
    # Every interface of both nodes keeps MTU 1500, so net_mtu passes; only a hop between
    # them (the host side of node2's bonded NIC, as a switch port would be) takes less.
    import subprocess

    active = subprocess.run(["virsh", "-c", URI, "domiflist", f"{LAB}node2"],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    # Interface, type, source, model, MAC: the first trunk NIC is bond0's primary (eth1).
    tap = next(line.split()[0] for line in active if "aiclab-trunk" in line)
    subprocess.run(["ip", "link", "set", tap, "mtu", "1400"], check=True)
    try:
        run = run_cmd(["ansible-playbook", "playbooks/validate.yml"])
    finally:
        subprocess.run(["ip", "link", "set", tap, "mtu", "1500"], check=True)
    assert run.returncode != 0, run.tail()
    checks = read_json(run.report())["checks"]
    failed = {(c["host"], c["name"]): c["message"] for c in checks if c["status"] == "failed"}
    expected = {(node, f"net_path_mtu_{net}_{peer}") for net in ("cluster", "storage")
                for node, peer in (("node1", "node2"), ("node2", "node1"))}
    assert set(failed) == expected, failed
    for message in failed.values():
        assert "a 1500-byte packet with don't-fragment set did not get through, though smaller ones do" in message
    # Small packets still pass: the mesh pings and every other check are green.
    assert all(c["status"] == "passed" for c in checks if (c["host"], c["name"]) not in expected)


NODE1_SSH = ["ssh", "-i", "/var/lib/aicluster-lab/ssh/id_ed25519", "-o", "BatchMode=yes",
             "-o", "UserKnownHostsFile=/var/lib/aicluster-lab/labs/aiclab/known_hosts", "root@192.168.150.11"]


def test_k3s_token_in_no_output_then_reset_leaves_nothing_and_check_mode_changes_nothing(run_cmd):
    # What the k3s scenario (on demand in CI) proves on a lab of its own, on this one.
    import base64
    import subprocess

    token = subprocess.run(NODE1_SSH + ["cat", "/etc/rancher/k3s/cluster-token"], capture_output=True, text=True,
                           timeout=120, check=True).stdout.strip()
    assert len(token) >= 32, "the cluster token is missing or short"  # its value is never printed
    # Every run so far (the outputs under tests/output, the reports and logs under results/),
    # as written and as slurp reads it (base64).
    forms = (token, base64.b64encode(token.encode()).decode())
    leaked = [str(path) for base in (OUTPUT, ROOT / "results") for path in base.rglob("*")
              if path.is_file() and any(form in path.read_text(errors="replace") for form in forms)]
    assert not leaked, f"the k3s token is written in {leaked}"
    reset = run_cmd(["ansible-playbook", "playbooks/k3s-reset.yml"])
    assert reset.returncode == 0, reset.tail()
    text = " ".join(reset.output.split())
    assert all(f"k3s reset: nothing of k3s is left on {node} (removed: " in text for node in NODES), reset.tail()
    # Check mode on nodes without k3s: changes announced, none made.
    check = run_cmd(["ansible-playbook", "playbooks/k3s.yml", "--check"])
    assert check.returncode == 0, check.tail()
    assert all(check.recap()[node]["changed"] > 0 for node in NODES), check.tail()
    left = subprocess.run(NODE1_SSH + ["ls", "/etc/rancher/k3s"], capture_output=True, text=True, timeout=120, check=False)
    assert left.returncode != 0, f"check mode wrote {left.stdout}"


def test_teardown_leaves_nothing(run_cmd):
    run = run_cmd(["ansible-playbook", "playbooks/teardown.yml"])
    assert run.returncode == 0, run.tail()
    assert "lab aiclab: no domain, network, run directory or firewall rule left" in run.output, run.tail()
    assert virsh_names("list", LAB) == [] and virsh_names("net-list", LAB) == []
    assert not pathlib.Path("/var/lib/aicluster-lab/labs/aiclab").exists()


def test_a_new_lab_is_restored_from_the_saved_boot_state(run_cmd):
    # The stages that differ on restored nodes: their boot, and the network converged onto
    # them; the stages above the network ran twice on this lab already (the first run of a
    # CI machine with saved boot states restores too). One ansible-playbook run of the three,
    # so validate names how provisioning brought each node up.
    run = run_cmd(["ansible-playbook"] + [f"playbooks/{name}.yml" for name in ("provision", "network", "validate")])
    assert run.returncode == 0, run.tail()
    report = assert_all_layers_passed(run.report(), failover=False)
    booted = {c["host"]: c for c in report["checks"] if c["name"] == "l1_systemd_running"}
    assert all("(restored)" in booted[n]["message"] for n in NODES), booted
