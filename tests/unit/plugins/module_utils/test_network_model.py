# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host model: shipped profiles, renames, MTUs, and a corpus of bad input.

Each file in fixtures/bad_profiles/ is one mistake: ``error`` (the exact message),
``profile`` (the data), and optionally ``hosts`` (the play's hosts; default: the
profile's hosts, or node1), ``host_vars`` (inventory variables by host) and ``name``
(the profile's name; default: the file's stem). A new rule gets a new file; the test
picks it up.
"""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils.network_model import NetworkModelError, build_models

ROOT = pathlib.Path(__file__).resolve().parents[4]
PROFILES = ROOT / "profiles"
BAD = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "bad_profiles"
NODES = ["node1", "node2", "node3"]


def shipped(name):
    return yaml.safe_load((PROFILES / f"{name}.yml").read_text())


def models(name, hosts=None, host_vars=None, profile=None):
    return build_models(profile or shipped(name), hosts or NODES, host_vars or {}, name)


def error_of(profile, hosts=("node1",), host_vars=None, name="test"):
    with pytest.raises(NetworkModelError) as caught:
        build_models(profile, list(hosts), host_vars or {}, name)
    return str(caught.value)


def network(name, interface, parent, vlan, subnet, address, link_local, mtu=1500, dhcp=False, dhcp_server=None):
    return {"name": name, "interface": interface, "parent": parent, "vlan": vlan, "profile_vlan": vlan, "subnet": subnet,
            "prefix": int(subnet.split("/")[1]), "address": address, "dhcp": dhcp, "dhcp_server": dhcp_server,
            "gateway": None, "mtu": mtu, "link_local": link_local}


def link(name, bond=None, mac=None, mtu=1500, profile_name=None):
    return {"name": name, "profile_name": profile_name or name, "mtu": mtu, "bond": bond, "mac": mac}


K3S = {"cluster_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16", "cluster_dns": "10.43.0.10"}

EXPECTED_NODE1 = {
    "simple": {
        "profile": "simple", "host": "node1", "links": [link("eth1")], "bond": None, "vlans": [],
        "networks": {"cluster": network("cluster", "eth1", "eth1", None, "192.168.1.0/24", "192.168.1.11", True)},
        "interfaces": ["eth1"], "cluster_interface": "eth1", "cluster_address": "192.168.1.11",
        "storage_interface": "eth1", "storage_address": "192.168.1.11",
        "routes": [{"to": "192.168.1.0/24", "dev": "eth1"}], "k3s": K3S, "rdma": None,
    },
    "vlans": {
        "profile": "vlans", "host": "node1", "links": [link("eth1")], "bond": None,
        "vlans": [{"name": "eth1.200", "id": 200, "parent": "eth1", "mtu": 1500, "network": "cluster"},
                  {"name": "eth1.100", "id": 100, "parent": "eth1", "mtu": 1500, "network": "storage"}],
        "networks": {
            "cluster": network("cluster", "eth1.200", "eth1", 200, "192.168.200.0/24", "192.168.200.11", True),
            "storage": network("storage", "eth1.100", "eth1", 100, "192.168.100.0/24", "192.168.100.11", False),
        },
        "interfaces": ["eth1", "eth1.200", "eth1.100"], "cluster_interface": "eth1.200", "cluster_address": "192.168.200.11",
        "storage_interface": "eth1.100", "storage_address": "192.168.100.11",
        "routes": [{"to": "192.168.200.0/24", "dev": "eth1.200"}, {"to": "192.168.100.0/24", "dev": "eth1.100"}], "k3s": K3S, "rdma": None,
    },
    "bonding-vlans": {
        "profile": "bonding-vlans", "host": "node1", "links": [link("eth1", "bond0"), link("eth2", "bond0")],
        "bond": {"name": "bond0", "mode": "active-backup", "members": ["eth1", "eth2"], "primary": "eth1", "miimon": 100,
                 "updelay": 0, "downdelay": 0, "lacp_rate": None, "xmit_hash_policy": None, "mtu": 1500},
        "vlans": [{"name": "bond0.200", "id": 200, "parent": "bond0", "mtu": 1500, "network": "cluster"},
                  {"name": "bond0.100", "id": 100, "parent": "bond0", "mtu": 1500, "network": "storage"}],
        "networks": {
            "cluster": network("cluster", "bond0.200", "bond0", 200, "192.168.200.0/24", "192.168.200.11", True),
            "storage": network("storage", "bond0.100", "bond0", 100, "192.168.100.0/24", "192.168.100.11", False),
        },
        "interfaces": ["eth1", "eth2", "bond0", "bond0.200", "bond0.100"],
        "cluster_interface": "bond0.200", "cluster_address": "192.168.200.11",
        "storage_interface": "bond0.100", "storage_address": "192.168.100.11",
        "routes": [{"to": "192.168.200.0/24", "dev": "bond0.200"}, {"to": "192.168.100.0/24", "dev": "bond0.100"}], "k3s": K3S,
        "rdma": {"network": "storage", "device": "rxe0", "priority": 3, "trust": "dscp"},
    },
    "dhcp-simple": {
        "profile": "dhcp-simple", "host": "node1", "links": [link("eth1", mac="52:54:00:dc:00:11")], "bond": None, "vlans": [],
        "networks": {"cluster": network("cluster", "eth1", "eth1", None, "192.168.220.0/24", "192.168.220.11", True,
                                        dhcp=True, dhcp_server="192.168.220.1")},
        "interfaces": ["eth1"], "cluster_interface": "eth1", "cluster_address": "192.168.220.11",
        "storage_interface": "eth1", "storage_address": "192.168.220.11",
        "routes": [{"to": "192.168.220.0/24", "dev": "eth1"}], "k3s": K3S, "rdma": None,
    },
}
EXPECTED_NODE1["vlans-broken"] = dict(EXPECTED_NODE1["vlans"], profile="vlans-broken")


def test_every_shipped_profile_has_an_expected_model():
    assert sorted(EXPECTED_NODE1) == sorted(path.stem for path in PROFILES.glob("*.yml"))


@pytest.mark.parametrize("name", sorted(EXPECTED_NODE1))
def test_shipped_profile_model_of_node1(name):
    result = models(name)
    assert list(result) == NODES
    assert result["node1"] == EXPECTED_NODE1[name]
    # The model's key order is the documented one (it is what a person reads in debug output).
    assert list(result["node1"]) == list(EXPECTED_NODE1[name])
    assert list(result["node1"]["networks"]["cluster"]) == list(EXPECTED_NODE1[name]["networks"]["cluster"])


def test_other_nodes_of_a_shipped_profile_get_their_own_addresses_and_macs():
    result = models("dhcp-simple")
    assert [m["cluster_address"] for m in result.values()] == ["192.168.220.11", "192.168.220.12", "192.168.220.13"]
    assert [m["links"][0]["mac"] for m in result.values()] == ["52:54:00:dc:00:11", "52:54:00:dc:00:12", "52:54:00:dc:00:13"]


def test_vlans_broken_tags_node2_and_node3_with_their_own_ids():
    result = models("vlans-broken")
    assert [m["networks"]["cluster"]["vlan"] for m in result.values()] == [200, 201, 202]
    node2 = result["node2"]
    assert node2["cluster_interface"] == "eth1.201"
    # The network's own tag stays in the model: validation names the disagreement.
    assert [m["networks"]["cluster"]["profile_vlan"] for m in result.values()] == [200, 200, 200]
    assert node2["vlans"][0] == {"name": "eth1.201", "id": 201, "parent": "eth1", "mtu": 1500, "network": "cluster"}
    assert node2["interfaces"] == ["eth1", "eth1.201", "eth1.100"]
    assert node2["routes"][0] == {"to": "192.168.200.0/24", "dev": "eth1.201"}


def test_models_do_not_share_mutable_parts():
    result = models("bonding-vlans")
    result["node1"]["links"][0]["name"] = "changed"
    result["node1"]["bond"]["members"].append("eth9")
    result["node1"]["interfaces"].append("x")
    assert result["node2"]["links"][0]["name"] == "eth1"
    assert result["node2"]["bond"]["members"] == ["eth1", "eth2"]
    assert "x" not in result["node2"]["interfaces"]
    assert models("bonding-vlans")["node1"] == EXPECTED_NODE1["bonding-vlans"]


def test_profile_data_is_not_changed():
    profile = shipped("bonding-vlans")
    before = copy.deepcopy(profile)
    models("bonding-vlans", profile=profile)
    assert profile == before


def test_renamed_links_are_followed_everywhere():
    result = models("bonding-vlans", host_vars={"node2": {"network_link_names": {"eth1": "enp65s0f0", "eth2": "enp65s0f1"}}})
    node2 = result["node2"]
    assert node2["links"] == [link("enp65s0f0", "bond0", profile_name="eth1"), link("enp65s0f1", "bond0", profile_name="eth2")]
    assert node2["bond"]["members"] == ["enp65s0f0", "enp65s0f1"]
    assert node2["bond"]["primary"] == "enp65s0f0"
    assert node2["interfaces"] == ["enp65s0f0", "enp65s0f1", "bond0", "bond0.200", "bond0.100"]
    # Other hosts keep the profile's names.
    assert result["node1"] == EXPECTED_NODE1["bonding-vlans"]
    assert result["node3"]["bond"]["primary"] == "eth1"


def test_renamed_parent_renames_vlans_networks_and_routes():
    result = models("vlans", host_vars={"node1": {"network_link_names": {"eth1": "enp1s0"}}})
    node1 = result["node1"]
    assert [v["name"] for v in node1["vlans"]] == ["enp1s0.200", "enp1s0.100"]
    assert [v["parent"] for v in node1["vlans"]] == ["enp1s0", "enp1s0"]
    assert node1["networks"]["cluster"]["interface"] == "enp1s0.200"
    assert node1["networks"]["cluster"]["parent"] == "enp1s0"
    assert node1["cluster_interface"] == "enp1s0.200" and node1["storage_interface"] == "enp1s0.100"
    assert node1["routes"] == [{"to": "192.168.200.0/24", "dev": "enp1s0.200"}, {"to": "192.168.100.0/24", "dev": "enp1s0.100"}]
    assert node1["interfaces"] == ["enp1s0", "enp1s0.200", "enp1s0.100"]
    assert result["node2"]["cluster_interface"] == "eth1.200"


def test_untagged_network_follows_the_rename_and_macs_keep_profile_names():
    result = models("dhcp-simple", hosts=["node1"], host_vars={"node1": {"network_link_names": {"eth1": "eno1"}}})
    node1 = result["node1"]
    assert node1["links"] == [link("eno1", mac="52:54:00:dc:00:11", profile_name="eth1")]
    assert node1["cluster_interface"] == node1["storage_interface"] == "eno1"


def test_swapping_two_names_is_allowed():
    result = models("bonding-vlans", hosts=["node1"], host_vars={"node1": {"network_link_names": {"eth1": "eth2", "eth2": "eth1"}}})
    assert result["node1"]["bond"]["primary"] == "eth2"
    assert [(li["name"], li["profile_name"]) for li in result["node1"]["links"]] == [("eth2", "eth1"), ("eth1", "eth2")]


def test_inventory_addresses_beat_the_profile():
    result = models("vlans", host_vars={"node2": {"network_addresses": {"cluster": "192.168.200.22"}}})
    assert result["node2"]["cluster_address"] == "192.168.200.22"
    assert result["node2"]["storage_address"] == "192.168.100.12"  # the profile's, not overridden


def test_host_missing_from_the_profile_with_inventory_addresses():
    host_vars = {"node9": {"network_addresses": {"cluster": "192.168.200.19", "storage": "192.168.100.19"}}}
    result = models("vlans", hosts=["node1", "node9"], host_vars=host_vars)
    assert (result["node9"]["cluster_address"], result["node9"]["storage_address"]) == ("192.168.200.19", "192.168.100.19")


def test_dhcp_host_without_an_expected_lease():
    # Named by the profile, with no address and no MAC: it takes whatever the DHCP server gives.
    profile = shipped("dhcp-simple")
    profile["hosts"]["node7"] = {}
    result = models("dhcp-simple", hosts=["node1", "node7"], profile=profile)
    assert result["node7"]["cluster_address"] is None and result["node7"]["networks"]["cluster"]["address"] is None
    assert result["node7"]["routes"] == [{"to": "192.168.220.0/24", "dev": "eth1"}]
    assert result["node7"]["links"][0]["mac"] is None


def test_an_inventory_host_the_profile_does_not_name_is_a_typo_unless_the_inventory_addresses_it():
    # "node-2" for "node2": without this error a DHCP node would lose its fixed MAC and lease.
    assert error_of(shipped("dhcp-simple"), hosts=["node1", "node-2"], name="dhcp-simple") == (
        "network profile dhcp-simple, host node-2: inventory_hostname: 'node-2' is not one of the profile's hosts "
        "(node1, node2, node3); add hosts.node-2 to profile dhcp-simple or set network_addresses for it in the inventory")
    # A profile for three nodes used by an inventory of two is deliberate, and an inventory
    # that addresses a host itself needs no profile entry for it.
    assert list(models("simple", hosts=["node1", "node2"])) == ["node1", "node2"]
    own = models("simple", hosts=["node1", "gpu1"], host_vars={"gpu1": {"network_addresses": {"cluster": "192.168.1.21"}}})
    assert own["gpu1"]["cluster_address"] == "192.168.1.21"


def test_hosts_not_in_the_play_are_not_built():
    assert list(models("simple", hosts=["node2"])) == ["node2"]
    assert build_models(shipped("simple"), [], {}, "simple") == {}


def test_no_k3s_section_means_k3s_defaults():
    profile = shipped("simple")
    del profile["k3s"]
    assert models("simple", profile=profile)["node1"]["k3s"] == K3S


def test_storage_mtu_raises_its_parents_but_not_its_siblings():
    profile = shipped("bonding-vlans")
    profile["networks"]["storage"]["mtu"] = 9000
    node1 = models("bonding-vlans", profile=profile)["node1"]
    assert [li["mtu"] for li in node1["links"]] == [9000, 9000]
    assert node1["bond"]["mtu"] == 9000
    assert {v["network"]: v["mtu"] for v in node1["vlans"]} == {"cluster": 1500, "storage": 9000}
    assert (node1["networks"]["cluster"]["mtu"], node1["networks"]["storage"]["mtu"]) == (1500, 9000)


def test_explicit_parent_mtu_is_kept_and_vlans_without_one_stay_at_or_below_it():
    profile = shipped("vlans")
    profile["links"][0]["mtu"] = 9000
    node1 = models("vlans", profile=profile)["node1"]
    assert node1["links"][0]["mtu"] == 9000
    assert [v["mtu"] for v in node1["vlans"]] == [1500, 1500]
    profile["links"][0]["mtu"] = 1400
    node1 = models("vlans", profile=profile)["node1"]
    # A VLAN cannot be larger than its parent: without an MTU of its own it takes the parent's.
    assert [v["mtu"] for v in node1["vlans"]] == [1400, 1400]


def test_untagged_network_mtu_sets_its_link():
    profile = shipped("simple")
    profile["networks"]["cluster"]["mtu"] = 9000
    node1 = models("simple", profile=profile)["node1"]
    assert node1["links"][0]["mtu"] == node1["networks"]["cluster"]["mtu"] == 9000


def test_unused_link_keeps_the_default_mtu():
    profile = shipped("simple")
    profile["links"].append({"name": "eth2"})
    node1 = models("simple", profile=profile)["node1"]
    assert node1["links"][1] == link("eth2")
    assert node1["interfaces"] == ["eth1", "eth2"]


def test_a_profile_from_data_only_lacp_jumbo_storage_and_a_third_vlan():
    """802.3ad with LACP, storage at MTU 9000 and a third VLAN: no code knows this profile."""
    profile = {
        "description": "LACP bond, jumbo storage, a management VLAN",
        "links": [{"name": "eth1"}, {"name": "eth2"}],
        "bond": {"name": "bond0", "mode": "802.3ad", "members": ["eth1", "eth2"], "miimon": 100, "updelay": 200,
                 "downdelay": 200, "lacp_rate": "fast", "xmit_hash_policy": "layer3+4"},
        "networks": {
            "storage": {"parent": "bond0", "vlan": 100, "subnet": "10.10.100.0/24", "mtu": 9000},
            "cluster": {"parent": "bond0", "vlan": 200, "subnet": "10.10.200.0/24", "gateway": "10.10.200.1"},
            "mgmt": {"parent": "bond0", "vlan": 300, "subnet": "10.10.30.0/24"},
        },
        "hosts": {f"gpu{i}": {"addresses": {"cluster": f"10.10.200.{10 + i}", "storage": f"10.10.100.{10 + i}",
                                            "mgmt": f"10.10.30.{10 + i}"}} for i in range(1, 5)},
    }
    result = build_models(profile, [f"gpu{i}" for i in range(1, 5)], {}, "inline")
    gpu1 = result["gpu1"]
    assert gpu1["bond"] == {"name": "bond0", "mode": "802.3ad", "members": ["eth1", "eth2"], "primary": None, "miimon": 100,
                            "updelay": 200, "downdelay": 200, "lacp_rate": "fast", "xmit_hash_policy": "layer3+4", "mtu": 9000}
    assert list(gpu1["networks"]) == ["cluster", "storage", "mgmt"]  # cluster first, then the profile's order
    assert gpu1["vlans"] == [
        {"name": "bond0.200", "id": 200, "parent": "bond0", "mtu": 1500, "network": "cluster"},
        {"name": "bond0.100", "id": 100, "parent": "bond0", "mtu": 9000, "network": "storage"},
        {"name": "bond0.300", "id": 300, "parent": "bond0", "mtu": 1500, "network": "mgmt"},
    ]
    assert gpu1["interfaces"] == ["eth1", "eth2", "bond0", "bond0.200", "bond0.100", "bond0.300"]
    assert [li["mtu"] for li in gpu1["links"]] == [9000, 9000]
    assert gpu1["networks"]["cluster"]["gateway"] == "10.10.200.1"
    assert [n["link_local"] for n in gpu1["networks"].values()] == [True, False, False]
    assert gpu1["routes"] == [{"to": "10.10.200.0/24", "dev": "bond0.200"}, {"to": "10.10.100.0/24", "dev": "bond0.100"},
                              {"to": "10.10.30.0/24", "dev": "bond0.300"}]
    assert (gpu1["storage_interface"], gpu1["storage_address"]) == ("bond0.100", "10.10.100.11")
    assert result["gpu4"]["networks"]["mgmt"]["address"] == "10.10.30.14"
    assert gpu1["profile"] == "inline"


def test_mac_is_normalised_to_lower_case():
    profile = shipped("dhcp-simple")
    profile["hosts"]["node1"]["macs"]["eth1"] = "52:54:00:DC:00:AA"
    assert models("dhcp-simple", profile=profile)["node1"]["links"][0]["mac"] == "52:54:00:dc:00:aa"


def test_slash_31_has_no_network_or_broadcast_address():
    profile = {"links": [{"name": "eth1"}], "networks": {"cluster": {"parent": "eth1", "subnet": "192.168.5.0/31"}},
               "hosts": {"a": {"addresses": {"cluster": "192.168.5.0"}}, "b": {"addresses": {"cluster": "192.168.5.1"}}}}
    assert [m["cluster_address"] for m in build_models(profile, ["a", "b"], {}, "p2p").values()] == ["192.168.5.0", "192.168.5.1"]


def test_duplicate_host_names_in_the_list_are_built_once():
    assert list(models("simple", hosts=["node1", "node1", "node2"])) == ["node1", "node2"]


def test_hosts_must_be_a_list():
    with pytest.raises(NetworkModelError) as caught:
        build_models(shipped("simple"), "node1", {}, "simple")
    assert str(caught.value) == "network profile simple: hosts: 'node1' must be a list of host names"


def test_error_is_a_value_error():
    assert issubclass(NetworkModelError, ValueError)


# -- the corpus of bad input ------------------------------------------------------------------

CASES = sorted(BAD.glob("*.yml"))


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_bad_input_gives_its_exact_error(path):
    case = yaml.safe_load(path.read_text())
    assert set(case) <= {"error", "name", "profile", "hosts", "host_vars"}, f"{path.name}: unexpected keys"
    profile = case["profile"]
    hosts = case.get("hosts")
    if hosts is None:
        hosts = list(profile.get("hosts") or {}) if isinstance(profile, dict) else []
        hosts = hosts or ["node1"]
    message = error_of(profile, hosts, case.get("host_vars"), case.get("name", path.stem))
    assert message == case["error"]
