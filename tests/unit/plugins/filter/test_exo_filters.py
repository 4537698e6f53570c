# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo filters as the role calls them: with hostvars, across the hosts of the play."""

import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter import exo as exo_filters
from ansible_collections.aicluster.lab.plugins.module_utils import exo
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.exo_lab import lab_ctx, lab_state

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "exo"
FILTERS = exo_filters.FilterModule().filters()
N1, N2 = "9f1c0d2e4b7a4c1e8d3f6a5b2c1d0e9f", "4e8b2a7c9d1f0e3b5a6c7d8e9f0a1b2c"


def lab(host):
    return lab_state(host)


def plan():
    entries = {}
    for index, host in ((11, "node1"), (12, "node2")):
        entries[host] = {"cluster": {"network": "cluster", "interface": "bond0.200", "address": f"192.168.200.{index}"},
                         "network": {"networks": {"cluster": {"subnet": "192.168.200.0/24", "prefix": 24}},
                                     "interfaces": ["eth1", "eth2", "bond0", "bond0.200", "bond0.100"]}}
    return entries


def test_every_filter_is_offered():
    assert sorted(FILTERS) == sorted(
        ["exo_state", "exo_backend", "exo_artifact_problems", "exo_identity", "exo_firewall_spec", "exo_ruleset",
         "exo_decision", "exo_file_set", "exo_checks", "exo_live_skipped", "exo_live_checks", "exo_chat_check",
         "exo_chaos_checks", "exo_node_id", "exo_shared_node_zids", "exo_running_hosts"])


def test_identity_and_firewall_with_every_hosts_read():
    hostvars = {"node1": {"exo_read": lab("node1")}, "node2": {"exo_read": lab("node2")}}
    assert FILTERS["exo_identity"](hostvars, "node1", ["node1", "node2"])["action"] == "keep"
    spec = FILTERS["exo_firewall_spec"](plan(), "node1", hostvars, ["node1", "node2"],
                                        {"discovery": 52413, "zenoh": 52414, "api": 52415})
    node2_ll = exo.cluster_link_local(lab("node2"), "bond0.200")[0]
    assert spec["peers_v6"] == node2_ll and spec["peers_v4"] == ["192.168.200.12"] and spec["note"] == ""
    assert "table inet aicluster_exo {" in FILTERS["exo_ruleset"](spec)


def test_a_host_the_role_did_not_read_is_left_out_and_a_missing_one_named():
    hostvars = {"node1": {"exo_read": lab("node1")}, "node2": {}}
    spec = FILTERS["exo_firewall_spec"](plan(), "node1", hostvars, ["node1", "node2"],
                                        {"discovery": 52413, "zenoh": 52414, "api": 52415})
    assert spec["peers_v6"] == ["fe80::/10"] and "node2 not read" in spec["note"]
    with pytest.raises(AnsibleFilterError, match="host node2 has no exo_read"):
        FILTERS["exo_identity"](hostvars, "node2", ["node1", "node2"])


def test_input_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError, match="exo_state: the host's state lacks"):
        FILTERS["exo_state"]("nothing")
    with pytest.raises(AnsibleFilterError, match="exo_backend: exo_backend: 'x'"):
        FILTERS["exo_backend"]({}, "x")


def test_file_set_takes_the_files_that_differ_and_refuses_another_owner():
    files = [{"path": "/etc/systemd/system/exo.service", "content": "[Unit]\n", "owner": "root", "group": "root",
              "mode": "0644", "unit": True},
             {"path": "/etc/aicluster-lab/exo/firewall.nft", "content": "table\n", "owner": "root", "group": "root",
              "mode": "644", "unit": False}]
    assert FILTERS["exo_file_set"](files, ["/etc/aicluster-lab/exo/firewall.nft"]) == [
        {"path": "/etc/aicluster-lab/exo/firewall.nft", "content": "table\n", "mode": "0644"}]
    assert FILTERS["exo_file_set"](files, []) == []
    files[0]["owner"] = "exo"
    with pytest.raises(AnsibleFilterError, match="exo_file_set: /etc/systemd/system/exo.service: owned by exo:root, "
                                                 "but file_set writes root's files only"):
        FILTERS["exo_file_set"](files, ["/etc/systemd/system/exo.service"])


def test_running_hosts_shared_zids_and_node_id():
    one, two = lab("node1"), lab("node2")
    two["units"]["exo.service"] = {"enabled": "enabled", "active": "active"}
    one["node_zid"] = two["node_zid"] = "ab" * 32
    hostvars = {"node1": {"exo_read_after": one, "exo_read": one}, "node2": {"exo_read_after": two, "exo_read": two}}
    assert FILTERS["exo_running_hosts"](hostvars, ["node1", "node2"], "exo.service") == ["node2"]
    assert FILTERS["exo_shared_node_zids"](hostvars, ["node1", "node2"]) == ["node1", "node2"]
    assert FILTERS["exo_node_id"](f'### node_id\nstatus 200\nseconds 0.01\n"{N1}"\n') == N1
    assert FILTERS["exo_node_id"]("") is None


def test_live_checks_across_the_running_hosts():
    state = (FIXTURES / "api-state-two-nodes.json").read_text()
    sockets = {"node1": (FIXTURES / "netns-ss-node1-with-management.txt").read_text(),
               "node2": (FIXTURES / "netns-ss-node2-with-management.txt").read_text()}
    hostvars = {}
    for host, node in (("node1", N1), ("node2", N2)):
        read = lab(host)
        hostvars[host] = {"exo_read_after": read, "exo_probe": {"stdout": (
            f'### node_id\nstatus 200\nseconds 0.01\n"{node}"\n### state\nstatus 200\nseconds 1.0\n{state}\n'
            f"### sockets\n{sockets[host]}")}}
    records = FILTERS["exo_live_checks"](hostvars, "node1", ["node1", "node2"], {"plan_hosts": plan(), "zenoh_port": 52414})
    names = {record["name"]: record for record in records}
    assert names["exo_node_id"]["passed"] and names["exo_cluster_state"]["passed"]
    # The namespace capture's link-local addresses are not the lab's: node2 is found by its cluster address,
    # and the management connection is flagged.
    assert "192.168.155.11:52414 <-> 192.168.155.12" in names["exo_peer_links"]["message"]


def test_offline_checks_across_hosts_find_a_clone():
    one, two = lab_state("node1"), lab_state("node2")
    hostvars = {"node1": {"exo_read_after": one}, "node2": {"exo_read_after": two}}
    records = {r["name"]: r for r in FILTERS["exo_checks"](one, lab_ctx(one), hostvars, ["node1", "node2"])}
    assert records["exo_identity"]["passed"], records["exo_identity"]
    assert "unique among 2 host(s)" in records["exo_identity"]["message"]
    two["identity"] = dict(one["identity"])  # node2 cloned from node1's image after the role ran there
    records = {r["name"]: r for r in FILTERS["exo_checks"](two, lab_ctx(two, "node2"), hostvars, ["node1", "node2"])}
    assert not records["exo_identity"]["passed"]
    assert "made for node1" in records["exo_identity"]["message"] and "node1 hold the same" in records["exo_identity"]["message"]
