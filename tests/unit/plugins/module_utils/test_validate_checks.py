# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validate role's checks, judged from what its two reads print on a real guest.

Fixtures (tests/unit/fixtures/validate/), from node1 of the default lab (profile
bonding-vlans, node2 as its peer), each the stdout of the role's raw task:

- bonding-vlans-node1-state.txt: roles/validate/files/read-state.sh;
- bonding-vlans-node1-probe-ok.txt: the probe script of node1's L2 target (node2's
  link-local address on bond0.200) and network targets (cluster and storage);
- bonding-vlans-node1-probe-failures.txt: the same script aimed where nothing answers
  (L2: fe80::dead; cluster: 192.168.200.99) while the host side of node2's bond primary
  had MTU 1400, like a switch port: the storage mesh ping answers, its 1500-byte packet
  with don't-fragment set does not.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.filter.validate import FilterModule, validate_host_state, validate_probe
from ansible_collections.aicluster.lab.plugins.module_utils import validate_checks as vc
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import peer_targets
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import build_models

ROOT = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "validate"
STATE_TEXT = (FIXTURES / "bonding-vlans-node1-state.txt").read_text()
PROBE_OK = (FIXTURES / "bonding-vlans-node1-probe-ok.txt").read_text()
PROBE_FAILURES = (FIXTURES / "bonding-vlans-node1-probe-failures.txt").read_text()
MODELS = build_models(yaml.safe_load((ROOT / "profiles" / "bonding-vlans.yml").read_text()),
                      ["node1", "node2"], {}, "bonding-vlans")
NET_TARGETS = peer_targets(MODELS, "node1")
NODE2_LINK_LOCAL = "fe80::34f9:54ff:fec6:8c93"
L2_TARGETS = [{"interface": "bond0.200", "peer": "node2", "peer_interface": "bond0.200", "address": NODE2_LINK_LOCAL}]
LAYERS = ["L1", "L2", "network"]


def by_name(checks):
    return {check["name"]: check for check in checks}


def judge(probe_output, boot=None, state=None):
    return by_name(vc.validate_checks("node1", state or vc.host_state(STATE_TEXT), {"l2": L2_TARGETS, "net": NET_TARGETS},
                                      probe_output, LAYERS, MODELS["node1"], boot))


def test_the_state_read_parses_into_each_section():
    state = vc.host_state(STATE_TEXT)
    assert (state["system_state"], state["failed_units"], state["hostname"]) == ("running", [], "node1")
    assert state["kernel"].endswith("-amd64")
    assert {"eth1", "eth2", "bond0", "bond0.200", "bond0.100"} <= {link["ifname"] for link in state["links"]}
    assert state["link_local"]["bond0.200"].startswith("fe80::")
    assert "bond0.100" not in state["link_local"]  # the profile keeps link-local on the cluster interface only


def test_a_healthy_host_passes_every_check_with_figures():
    checks = judge(PROBE_OK, boot={"how": "cold boot", "ssh_s": 51.8})
    assert [name for name, check in checks.items() if not check["passed"]] == []
    assert len(checks) == 17  # 2 L1, 1 L2, 10 network phases, 2 pings and 2 path MTUs
    assert checks["l1_systemd_running"]["message"].startswith("running (cold boot), kernel 6.1.")
    assert checks["l1_systemd_running"]["figures"] == {"time_to_ssh_s": 51.8}
    assert checks["l2_bond0.200_node2"]["figures"]["received"] == 5
    assert checks["net_ping_storage_node2"]["message"].startswith("rtt min/avg/max/mdev = ")
    assert checks["net_path_mtu_cluster_node2"]["figures"]["mtu"] == 1500
    assert checks["net_path_mtu_cluster_node2"]["skip_reason"] == ""
    assert checks["net_neighbours"]["message"] == "2 peer address(es) learned on their network's interface"
    assert {check["category"] for check in checks.values()} == {"L1", "L2", "network"}


def test_unanswered_pings_and_a_smaller_mtu_on_the_path_fail_their_checks():
    targets = [dict(NET_TARGETS[0], address="192.168.200.99"), NET_TARGETS[1]]
    l2 = [dict(L2_TARGETS[0], address="fe80::dead")]
    checks = by_name(vc.validate_checks("node1", vc.host_state(STATE_TEXT), {"l2": l2, "net": targets},
                                        PROBE_FAILURES, LAYERS, MODELS["node1"]))
    assert checks["l2_bond0.200_node2"]["passed"] is False
    assert "100% packet loss" in checks["l2_bond0.200_node2"]["message"]
    assert checks["net_ping_cluster_node2"]["passed"] is False
    # The peer does not answer at all: the path MTU is not judged, and the reason names the ping.
    assert checks["net_path_mtu_cluster_node2"]["skip_reason"] == \
        "node2 does not answer on this network at all (net_ping_cluster_node2)"
    assert checks["net_ping_storage_node2"]["passed"] is True
    mtu = checks["net_path_mtu_storage_node2"]
    assert mtu["passed"] is False and mtu["skip_reason"] == ""
    assert mtu["message"].startswith("a 1500-byte packet with don't-fragment set did not get through, though smaller "
                                     "ones do")
    assert "100% packet loss" in mtu["message"]
    # The address that never answered is not learned: the neighbour check names it.
    assert "192.168.200.99 (cluster) learned on no interface, expected bond0.200" in checks["net_neighbours"]["message"]


def test_a_degraded_system_names_its_failed_units():
    state = dict(vc.host_state(STATE_TEXT), system_state="degraded", failed_units=["ssh.service", "foo.mount"])
    check = judge(PROBE_OK, state=state)["l1_systemd_running"]
    assert not check["passed"]
    assert check["message"] == "state degraded; failed units: ssh.service, foo.mount"


def test_failed_units_are_named_by_their_first_field():
    text = STATE_TEXT.replace("### failed_units\n", "### failed_units\nfoo.service loaded failed failed Foo\n")
    assert vc.host_state(text)["failed_units"] == ["foo.service"]


def test_a_wrong_hostname_is_named():
    check = judge(PROBE_OK, state=dict(vc.host_state(STATE_TEXT), hostname="debian"))["l1_hostname"]
    assert not check["passed"] and check["message"] == "hostname is debian, expected node1"


def test_missing_link_local_addresses_are_named_on_either_end():
    state = vc.host_state(STATE_TEXT)
    no_peer = vc.l2_checks(state, [dict(L2_TARGETS[0], address=None)], {})
    assert no_peer[0]["message"] == "no link-local address on node2 bond0.200" and not no_peer[0]["passed"]
    no_own = vc.l2_checks(dict(state, link_local={}), L2_TARGETS, vc.split_sections(PROBE_OK))
    assert no_own[0]["message"] == "no link-local address on bond0.200"


def test_a_ping_the_probe_did_not_report_fails_rather_than_passes():
    checks = judge("### neigh\n[]\n")
    assert not checks["l2_bond0.200_node2"]["passed"]
    assert not checks["net_ping_cluster_node2"]["passed"]
    assert checks["net_ping_cluster_node2"]["message"] == "the probe printed no result for this ping"


def test_layers_leave_out_what_was_not_asked():
    checks = vc.validate_checks("node1", vc.host_state(STATE_TEXT), {"l2": [], "net": []}, "", ["L1"])
    assert sorted(by_name(checks)) == ["l1_hostname", "l1_systemd_running"]
    without_model = vc.validate_checks("node1", vc.host_state(STATE_TEXT), {"l2": [], "net": []}, "", ["L1", "network"])
    assert sorted(by_name(without_model)) == ["l1_hostname", "l1_systemd_running"]


@pytest.mark.parametrize("text, message", [
    ("### system_state\nrunning\n", "lacks section(s) failed_units, uname, links, addrs, routes"),
    (STATE_TEXT.replace('### routes\n[', '### routes\n-bash: ip: not found\n['), "section routes is not the JSON of ip -j"),
])
def test_bad_state_output_is_named(text, message):
    with pytest.raises(vc.ValidateInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        vc.host_state(text)


def test_l2_targets_use_the_peers_own_cluster_interface():
    peers = {"node1": {"link_local": {"eth1.200": "fe80::1"}, "cluster_interface": "eth1.200"},
             "node2": {"link_local": {"eth1.201": "fe80::2"}, "cluster_interface": "eth1.201"},
             "node3": {"link_local": {}, "cluster_interface": None}}
    targets = vc.l2_targets("node1", ["eth1.200"], peers)
    assert targets == [
        {"interface": "eth1.200", "peer": "node2", "peer_interface": "eth1.201", "address": "fe80::2"},
        {"interface": "eth1.200", "peer": "node3", "peer_interface": "eth1.200", "address": None},
    ]


def test_the_probe_script_is_valid_sh_and_quotes_its_arguments():
    targets = [dict(NET_TARGETS[0], interface="eth1; reboot")]
    script = vc.probe_script(L2_TARGETS + [dict(L2_TARGETS[0], address=None)], targets, 3)
    assert "'eth1; reboot'" in script and "-c 3 " in script and "-s 1472 " in script
    assert "### l2 1" not in script  # no address, no ping
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_the_filters_are_registered_and_name_bad_input():
    assert sorted(FilterModule().filters()) == ["validate_checks", "validate_host_state", "validate_probe"]
    with pytest.raises(Exception, match="validate_host_state: the state read lacks section"):
        validate_host_state("nothing")
    hostvars = {"node1": {"validate_state": {"link_local": {}}}, "node2": {}}
    with pytest.raises(Exception, match="validate_probe: host 'node3' is not among the play's hosts"):
        validate_probe(hostvars, "node3", ["node1", "node2"], {}, ["eth1"], [], 5, LAYERS)
    probe = validate_probe(hostvars, "node1", ["node1", "node2"], {}, ["eth1"], [], 5, ["L1"])
    assert probe["l2"] == [] and probe["net"] == []


def test_a_link_local_address_that_failed_dad_is_not_a_ping_target():
    state = vc.host_state(STATE_TEXT)
    addrs = [dict(entry, addr_info=[dict(info, dadfailed=True) if info.get("local", "").startswith("fe80") else info
                                    for info in entry.get("addr_info", [])])
             if entry["ifname"] == "bond0.200" else entry for entry in state["addrs"]]
    text = STATE_TEXT.replace(json.dumps(state["addrs"], separators=(",", ":")), json.dumps(addrs, separators=(",", ":")))
    assert text != STATE_TEXT
    assert "bond0.200" not in vc.host_state(text)["link_local"]
