"""molecule scenarios, run as a user runs them: `molecule test -s <scenario>`.

The scenario provisions with the collection's own vm_lab role (create), converges,
checks idempotence, runs its fault as a side effect (the fault scenarios), verifies
with testinfra, and destroys; afterwards libvirt and the data directory hold nothing
of the scenario's lab. A fault scenario's report must hold its checks and figures.
"""

import os
import pathlib

import pytest

from labtools import read_json, record_benchmark, virsh_names

pytestmark = pytest.mark.vm

# Molecule announces each action as "<scenario> ➜ <action>: Executing" on a terminal
# and as "[<scenario> > <action>] Executing" otherwise.
ACTION_START = r"(?:➜|>) (\w+)\]?:? Executing\s*$"
ACTION_END = r"(?:➜|>) (\w+)\]?:? Executed"

# scenario -> its lab's name (inventory vm_lab_name). Scenarios whose nodes are alike
# (one NIC after eth0 on the trunk) share a lab and so its saved boot state: one cold
# boot of node1 and node2 (and one of chaos' node3) serves simple, vlans, vlan-negative
# and chaos. bonding-vlans needs two NICs, dhcp-simple a NIC on a DHCP network of its own;
# rdma and exo run on bonding-vlans' lab and restore its boot state; k3s (offline: no binary here) on mollab.
SCENARIOS = {"simple": "mollab", "vlans": "mollab", "bonding-vlans": "molbond", "rdma": "molbond",
             "dhcp-simple": "moldhcp", "vlan-negative": "mollab", "chaos": "mollab", "gpu": "molgpu",
             "k3s": "mollab", "exo": "molbond"}

# Scenarios that converge a profile another scenario already proves idempotent on the same
# lab (their molecule.yml says which): they run no idempotence step of their own.
WITHOUT_IDEMPOTENCE = {"vlan-negative"}

# The checks each fault scenario's report must hold, passed, with figures where named.
FAULT_CHECKS = {
    "bonding-vlans": {
        ("node1", "bond_failover"): ["gap_ms", "lost", "detect_ms"],
        ("node1", "bond_failback"): ["gap_ms", "lost"],
        ("node2", "bond_failover"): ["gap_ms", "lost", "detect_ms"],
        ("node1", "throughput_cluster_node2_send"): ["received_mbps"],
        ("node1", "throughput_cluster_node2_receive"): ["received_mbps"],
        ("node1", "throughput_management_node2_send"): ["received_mbps"],
        ("node1", "throughput_bond_vs_single_link"): ["cluster_mbps", "management_mbps"],
    },
    "vlan-negative": {
        ("node1", "net_vlan_agreement"): [],
        ("node2", "net_vlan_agreement"): [],
        ("node1", "net_ping_cluster_node2"): [],
        ("node1", "net_ping_storage_node2"): ["rtt_avg_ms"],
        ("node2", "l2_eth1.201_node1"): [],
    },
    "vlans": {
        ("node1", "constraint_latency"): ["rtt_rise_ms", "mdev_ms"],
        ("node1", "constraint_lossy"): ["loss_pct"],
        ("node1", "constraint_constrained"): ["mbps"],
        ("node1", "constraint_degraded"): ["rtt_rise_ms", "loss_pct", "mbps"],
        ("node1", "constraint_latency_removed"): ["rtt_ms", "mbps"],
        ("node1", "constraint_degraded_removed"): ["rtt_ms", "mbps"],
    },
    # The device, a pair run (latency and bandwidth beside TCP), and all of it again after node2 rebooted.
    "rdma": {
        **{(host, "rdma_device" + after): ["gid_index"] for host in ("node1", "node2") for after in ("", "_after_reboot")},
        **{("node1", f"rdma_{check}_node2{after}"): figures for after in ("", "_after_reboot")
           for check, figures in (("connect", ["usec_per_iter"]), ("latency", ["t_typical_us", "p99_us"]),
                                  ("bandwidth", ["bw_avg_mbps", "tcp_mbps", "rdma_to_tcp"]))},
    },
    # The q35 node: the CPU fallback naming its display devices, the passthrough round trip.
    "gpu": {
        ("node1", "gpu_cpu_fallback"): ["display_devices"],
        ("node1", "vfio_preflight"): ["iommu_groups", "devices"],
        ("node1", "vfio_bound"): ["bound", "vfio_nodes"],
        ("node1", "vfio_released"): ["bound", "vfio_nodes"],
    },
    # Offline: the config, its guard, the files and prerequisites pass on both nodes (the live part is
    # skipped with the reason; the scenario's testinfra checks the skips and their reason).
    "k3s": {
        **{(host, "k3s_config"): ["flags"] for host in ("node1", "node2")},
        **{(host, "k3s_config_guard"): ["refused"] for host in ("node1", "node2")},
        **{(host, "k3s_files"): ["files"] for host in ("node1", "node2")},
        **{(host, "k3s_prerequisites"): [] for host in ("node1", "node2")},
    },
    # EXO's offline checks on both nodes (its live ones are skipped without an artifact: SKIPPED_CHECKS).
    "exo": {(host, name): [] for host in ("node1", "node2")
            for name in ("exo_unit", "exo_hardening", "exo_environment", "exo_firewall", "exo_link_local", "exo_identity")},
    # No single kill: the cascade kills two nodes the same way (molecule/chaos/molecule.yml).
    "chaos": {
        ("localhost", "chaos_partition_node3_lost"): ["detect_s"],
        ("localhost", "chaos_partition_node3_recovered"): ["recover_s"],
        ("localhost", "chaos_cascade_node2_lost"): ["detect_s"],
        ("localhost", "chaos_cascade_node3_lost"): ["detect_s"],
        ("localhost", "chaos_cascade_node3_recovered"): ["recover_s"],
        ("localhost", "chaos_cascade_others_kept"): [],
    },
}


# Checks a scenario's report must hold skipped, with these words in the reason: EXO's live
# checks where no artifact is given (AICLUSTER_EXO_ARTIFACT), as on these machines.
SKIPPED_CHECKS = {
    "exo": {} if os.environ.get("AICLUSTER_EXO_ARTIFACT") else {
        (host, name): "no EXO artifact given" for host in ("node1", "node2")
        for name in ("exo_install", "exo_node_id", "exo_cluster_state", "exo_peer_links", "exo_chat")},
}


def check_fault_report(scenario, report):
    """Every expected check passed with its figures; returns all figures, as host/check.figure."""
    checks = {(check["host"], check["name"]): check for check in report["checks"]}
    for key, figures in FAULT_CHECKS[scenario].items():
        assert key in checks, f"{key} is not in the report: {sorted(checks)}"
        assert checks[key]["status"] == "passed", checks[key]
        missing = [name for name in figures if name not in checks[key]["figures"]]
        assert not missing, f"{key} lacks figures {missing}: {checks[key]}"
    for key, reason in SKIPPED_CHECKS.get(scenario, {}).items():
        assert key in checks, f"{key} is not in the report: {sorted(checks)}"
        assert checks[key]["status"] == "skipped" and reason in checks[key]["message"], checks[key]
    if scenario == "vlan-negative":
        # The cause is named: who tags which id against which expected.
        assert checks[("node2", "net_vlan_agreement")]["message"].startswith(
            "failed as expected: node2 tags network cluster with VLAN 201 (eth1.201), expected 200")
    return {f"{host}/{name}.{figure}": value for (host, name), check in sorted(checks.items())
            for figure, value in sorted(check["figures"].items())}


# Scenarios CI leaves out, with the reason (AICLUSTER_TEST_ALL=1 runs them too). CI has 45
# minutes on a new machine; these prove again what every full-suite run proves on the default
# lab (test_full_suite.py) or another scenario on theirs, and add only what the reason names.
ON_DEMAND = {
    "bonding-vlans": "on demand (AICLUSTER_TEST_ALL=1): every full-suite run converges the same profile and cuts "
                     "each node's active bond member and plugs it back (failover and failback), its second run proves "
                     "it idempotent; this scenario adds only iperf3 across the bond (170 s, 260 s with a cold boot)",
    "simple": "on demand (AICLUSTER_TEST_ALL=1): chaos converges the same profile on the same lab, proves it "
              "idempotent and verifies it after its faults (100 s)",
    "exo": "on demand (AICLUSTER_TEST_ALL=1): every full-suite run converges the exo role offline on the same "
           "profile (its checks passed, the live ones skipped with the reason) and its second run proves it changes "
           "nothing; this scenario adds check mode on fresh nodes, the package-file path and testinfra (450 s)",
    "rdma": "on demand (AICLUSTER_TEST_ALL=1): every full-suite run proves the rdma stage on the same profile and "
            "its second run that the role changes nothing; this scenario adds only a node's reboot (340 s)",
    "k3s": "on demand (AICLUSTER_TEST_ALL=1): every full-suite run proves the k3s stage offline, its second run that "
           "the role changes nothing, and test_full_suite the reset, check mode on a fresh node and the token "
           "kept out of every output (240 s)",
}


@pytest.mark.parametrize("scenario, lab", [
    pytest.param(scenario, lab, marks=pytest.mark.skipif(
        scenario in ON_DEMAND and not os.environ.get("AICLUSTER_TEST_ALL"), reason=ON_DEMAND.get(scenario, "")))
    for scenario, lab in SCENARIOS.items()])
def test_molecule_scenario_passes_and_leaves_nothing(run_cmd, scenario, lab):
    run = run_cmd(["molecule", "test", "-s", scenario], env={"AICLUSTER_LAB_KEEP": ""})
    assert run.returncode == 0, run.tail(80)
    if scenario not in WITHOUT_IDEMPOTENCE:
        assert "idempotence: Executed: Successful" in run.output, run.tail(80)
    # Each action's wall time: from molecule announcing it to its "Executed" line.
    starts = [(stamp, match.group(1)) for stamp, match in run.line_times(ACTION_START)]
    ends = [(stamp, match.group(1)) for stamp, match in run.line_times(ACTION_END)]
    actions = {}
    for start, action in starts:
        end = next((stamp for stamp, name in ends if name == action and stamp >= start), None)
        key = f"{action}_s" if f"{action}_s" not in actions else f"{action}_again_s"
        if end is not None:
            actions[key] = round(end - start, 1)
    figures = check_fault_report(scenario, read_json(run.report())) if scenario in FAULT_CHECKS else {}
    record_benchmark(f"molecule {scenario}", {"wall_s": round(run.seconds, 1), **actions, **figures})
    assert virsh_names("list", lab + "-") == []
    assert virsh_names("net-list", lab + "-") == []
    assert not pathlib.Path(f"/var/lib/aicluster-lab/labs/{lab}").exists()
