# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rdma role's filters: their wiring to module_utils and the errors a playbook sees."""

import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter import rdma as filters
from ansible_collections.aicluster.lab.plugins.module_utils.plan import build_plan

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "rdma"
PACKAGES = {"Debian": ["rdma-core", "perftest"], "RedHat": ["rdma-core"]}


def bonding_vlans_plan(hosts=("node1", "node2", "node3")):
    import yaml
    profile = yaml.safe_load((pathlib.Path(__file__).resolve().parents[4] / "profiles" / "bonding-vlans.yml").read_text())
    return build_plan(list(hosts), {}, profile, "bonding-vlans")


def test_the_plan_gives_each_host_its_rdma_endpoint_on_the_bond():
    plan = bonding_vlans_plan()
    assert plan["node1"]["rdma"] == {"network": "storage", "interface": "bond0.100", "address": "192.168.100.11",
                                     "netdev": "bond0", "mtu": 1500, "device": "rxe0", "priority": 3, "trust": "dscp"}


def test_rdma_state_reads_and_decides():
    plan = bonding_vlans_plan()
    read = filters.rdma_state((FIXTURES / "state-node1-rxe.txt").read_text(), plan["node1"]["rdma"], PACKAGES)
    assert read["family"] == "Debian" and read["missing_packages"] == []
    assert read["decision"]["action"] == "soft_roce" and read["gid"]["index"] == 3


def test_rdma_state_errors_are_filter_errors():
    plan = bonding_vlans_plan()
    with pytest.raises(AnsibleFilterError, match="rdma_state: the host's state lacks the section"):
        filters.rdma_state("", plan["node1"]["rdma"], PACKAGES)
    with pytest.raises(AnsibleFilterError, match="rdma_state: the endpoint must be a plan's rdma entry, got None"):
        filters.rdma_state("", None, PACKAGES)


def test_every_pair_once_and_only_hosts_that_ask_for_rdma():
    plan = bonding_vlans_plan()
    assert filters.rdma_pairs(["node1", "node2", "node3"], plan) == [
        {"client": "node1", "server": "node2"}, {"client": "node1", "server": "node3"},
        {"client": "node2", "server": "node3"}]
    plan["node3"]["rdma"] = None
    assert filters.rdma_pairs(["node1", "node2", "node3"], plan) == [{"client": "node1", "server": "node2"}]
    assert filters.rdma_pairs(["node1"], plan) == []


def test_a_pair_end_from_the_plan_and_the_hosts_read():
    plan = bonding_vlans_plan()
    hostvars = {"node2": {"rdma_read": {"decision": {"device": "rxe0"}, "gid": {"index": 3}}}, "node1": {}}
    assert filters.rdma_end("node2", hostvars, plan) == {
        "host": "node2", "device": "rxe0", "gid_index": 3, "address": "192.168.100.12", "interface": "bond0.100",
        "network": "storage"}
    # A host that was never read (its setup failed) has no GID: the pair is reported, not measured.
    assert filters.rdma_end("node1", hostvars, plan)["gid_index"] is None
    plan["node3"]["rdma"] = None
    with pytest.raises(AnsibleFilterError, match="rdma_end: host 'node3' has no rdma entry in the plan"):
        filters.rdma_end("node3", hostvars, plan)


def test_pair_checks_want_both_ends_whole():
    with pytest.raises(AnsibleFilterError, match="rdma_pair_checks: server lacks gid_index, address, network"):
        filters.rdma_pair_checks("", {"host": "a", "device": "rxe0", "gid_index": 1, "address": "x", "network": "n"},
                                 {"host": "b", "device": "rxe0"}, {})
