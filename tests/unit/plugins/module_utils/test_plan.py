# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's plan: each host's network, peers, cluster and storage endpoints."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils.network_model import NetworkModelError
from ansible_collections.aicluster.lab.plugins.module_utils.plan import build_plan, peers

PROFILES = pathlib.Path(__file__).resolve().parents[4] / "profiles"


def shipped(name):
    return yaml.safe_load((PROFILES / f"{name}.yml").read_text())


def test_bonded_vlans_storage_rides_the_bond_beneath_its_vlan():
    plan = build_plan(["node1", "node2"], {}, shipped("bonding-vlans"), "bonding-vlans")
    node1 = plan["node1"]
    assert node1["profile"] == "bonding-vlans"
    assert node1["network"]["cluster_interface"] == "bond0.200"
    assert node1["cluster"] == {"network": "cluster", "interface": "bond0.200", "address": "192.168.200.11",
                                "netdev": "bond0", "mtu": 1500}
    # rdma_rxe refuses a VLAN device: the storage endpoint names the bond under it.
    assert node1["storage"]["interface"] == "bond0.100"
    assert node1["storage"]["address"] == "192.168.100.11"
    assert node1["storage"]["netdev"] == "bond0"
    assert [(peer["network"], peer["peer"], peer["address"]) for peer in peers(plan, "node1")] == [
        ("cluster", "node2", "192.168.200.12"), ("storage", "node2", "192.168.100.12")]


def test_without_a_storage_network_storage_shares_the_cluster_network():
    plan = build_plan(["node1", "node2", "node3"], {}, shipped("simple"), "simple")
    assert plan["node3"]["storage"] == plan["node3"]["cluster"] == {
        "network": "cluster", "interface": "eth1", "address": "192.168.1.13", "netdev": "eth1", "mtu": 1500}
    assert [peer["peer"] for peer in peers(plan, "node3")] == ["node1", "node2"]


def test_inventory_variables_rename_links_and_set_addresses():
    host_vars = {"node1": {"network_link_names": {"eth1": "enp1s0"}, "network_addresses": {"cluster": "192.168.1.50"}}}
    plan = build_plan(["node1", "node2"], host_vars, shipped("simple"), "simple")
    assert plan["node1"]["cluster"]["interface"] == "enp1s0"
    assert peers(plan, "node2")[0]["address"] == "192.168.1.50"


def test_no_profile_plans_no_network_change():
    plan = build_plan(["node1"], {})
    assert plan == {"node1": {"host": "node1", "profile": None, "network": None, "cluster": None,
                              "storage": None, "rdma": None}}
    assert peers(plan, "node1") == []


def test_peers_of_a_host_outside_the_plan():
    with pytest.raises(KeyError, match="host node9 is not in the plan"):
        peers(build_plan(["node1"], {}), "node9")


def test_a_bad_host_stops_the_whole_plan():
    host_vars = {"node2": {"network_addresses": {"cluster": "192.168.1.11"}}}
    with pytest.raises(NetworkModelError, match="host node2: network_addresses.cluster: 192.168.1.11 is already used by host node1"):
        build_plan(["node1", "node2"], host_vars, shipped("simple"), "simple")
