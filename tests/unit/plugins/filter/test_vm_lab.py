"""The vm_lab filters: stable identities, validated node specs, the management DHCP plan."""

import ipaddress

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.vm_lab import (
    lab_mac,
    lab_mgmt_dhcp,
    lab_node_specs,
    lab_owner,
    lab_uuid,
)

LAB = {
    "name": "aiclab",
    "mgmt_network": "aiclab-mgmt",
    "mgmt_address": "192.168.150.1/24",
    "node_nics": ["aiclab-trunk", "aiclab-trunk"],
    "vcpus": 1,
    "memory_mib": 1024,
    "kernel_cmdline": "root=/dev/vda console=ttyS0",
    "image_key": "0123456789abcdef",
    "snapshot_dir": "/var/lib/aicluster-lab/snapshots/aiclab",
}


def specs(hostvars, lab=None):
    return lab_node_specs(list(hostvars), hostvars, dict(LAB, **(lab or {})))


def error_of(hostvars, lab=None):
    with pytest.raises(AnsibleFilterError) as caught:
        specs(hostvars, lab)
    return str(caught.value)


def test_identities_are_stable_and_distinct():
    assert lab_mac("aiclab/node1/0") == lab_mac("aiclab/node1/0")
    assert lab_mac("aiclab/node1/0") != lab_mac("aiclab/node1/1")
    assert lab_mac("x").startswith("52:54:00:")
    assert lab_uuid("aiclab/node1") == lab_uuid("aiclab/node1") != lab_uuid("aiclab/node2")


def test_specs_of_two_nodes():
    result = specs({"node1": {"ansible_host": "192.168.150.11"}, "node2": {"ansible_host": "192.168.150.12", "vm_lab_vcpus": 2}})
    node1, node2 = result
    assert node1["domain"] == "aiclab-node1" and node1["ip"] == "192.168.150.11"
    assert [n["network"] for n in node1["nics"]] == ["aiclab-mgmt", "aiclab-trunk", "aiclab-trunk"]
    assert node1["cmdline"].endswith("systemd.hostname=node1")
    assert (node1["vcpus"], node2["vcpus"]) == (1, 2)
    macs = [n["mac"] for spec in result for n in spec["nics"]]
    assert len(set(macs)) == len(macs)


def test_snapshot_key_follows_image_and_spec():
    hostvars = {"node1": {"ansible_host": "192.168.150.11"}}
    key = specs(hostvars)[0]["snapshot_key"]
    assert specs(hostvars)[0]["snapshot_key"] == key
    assert specs(hostvars, {"image_key": "fedcba9876543210"})[0]["snapshot_key"] != key
    assert specs({"node1": {"ansible_host": "192.168.150.11", "vm_lab_memory_mib": 2048}})[0]["snapshot_key"] != key


def test_the_snapshot_key_is_the_one_saved_boot_states_were_made_with():
    # Keys computed before the specs carried owner and snapshot: a new key would make every
    # lab boot cold once, so what the spec gained must stay out of the key.
    hostvars = {"node1": {"ansible_host": "192.168.150.11"},
                "node2": {"ansible_host": "192.168.150.12", "vm_lab_machine": "q35", "vm_lab_iommu": True}}
    assert [spec["snapshot_key"] for spec in specs(hostvars)] == ["a54ded086f8e33f2", "ff5469cea4d9d7a8"]


def test_each_spec_names_its_owner_and_its_saved_boot_state():
    node1, node2 = specs({"node1": {"ansible_host": "192.168.150.11"}, "node2": {"ansible_host": "192.168.150.12"}})
    assert node1["owner"] == node2["owner"] == lab_owner("aiclab") == "aicluster.lab/aiclab"
    assert node1["snapshot"] == f"/var/lib/aicluster-lab/snapshots/aiclab/node1-{node1['snapshot_key']}"
    assert node2["snapshot"] == f"/var/lib/aicluster-lab/snapshots/aiclab/node2-{node2['snapshot_key']}"
    assert specs({"node1": {"ansible_host": "192.168.150.11"}}, {"name": "mollab"})[0]["owner"] == "aicluster.lab/mollab"


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_lab_owner_needs_the_labs_name(name):
    with pytest.raises(AnsibleFilterError, match="lab_owner: the lab's name must be a non-empty string"):
        lab_owner(name)


def test_a_passthrough_stand_in_node():
    plain = {"ansible_host": "192.168.150.11"}
    node = dict(plain, vm_lab_machine="q35", vm_lab_iommu=True, vm_lab_video=["vga"])
    spec = specs({"node1": node})[0]
    assert (spec["machine"], spec["iommu"], spec["video"]) == ("q35", True, ["vga"])
    assert spec["cmdline"].endswith("systemd.hostname=node1 intel_iommu=on")
    assert spec["snapshot_key"] != specs({"node1": plain})[0]["snapshot_key"]
    # A node that asks for none of it keeps the spec (and the saved boot state) it had.
    assert not {"machine", "iommu", "video"} & set(specs({"node1": dict(plain, vm_lab_machine="pc")})[0])


@pytest.mark.parametrize("hostvars, message", [
    ({}, "vm_lab_group: the inventory group has no hosts; a lab needs at least one node"),
    ({"node1": {}}, "host node1: ansible_host: not set; each lab node needs its management address"),
    ({"node1": {"ansible_host": "node1.example"}}, "host node1: ansible_host: 'node1.example' is not an IP address"),
    ({"node1": {"ansible_host": "10.0.0.5"}},
     "host node1: ansible_host: 10.0.0.5 is not a usable address of the management network 192.168.150.0/24"),
    ({"node1": {"ansible_host": "192.168.150.1"}},
     "host node1: ansible_host: 192.168.150.1 is already used by the host side of aiclab-mgmt"),
    ({"node1": {"ansible_host": "192.168.150.11"}, "node2": {"ansible_host": "192.168.150.11"}},
     "host node2: ansible_host: 192.168.150.11 is already used by host node1"),
    ({"Node_1": {"ansible_host": "192.168.150.11"}},
     "host Node_1: inventory_hostname: 'Node_1' is not a valid host name (a-z, 0-9, '-')"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_vcpus": "two"}},
     "host node1: vm_lab_vcpus: 'two' is not a positive whole number"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_memory_mib": 0}},
     "host node1: vm_lab_memory_mib: 0 is not a positive whole number"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_node_nics": "aiclab-trunk"}},
     "host node1: vm_lab_node_nics: 'aiclab-trunk' must be a list of network names"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_machine": "i440fx"}},
     "host node1: vm_lab_machine: 'i440fx' is not one of pc, q35"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_iommu": True}},
     "host node1: vm_lab_iommu: true needs vm_lab_machine q35, not 'pc'"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_machine": "q35", "vm_lab_iommu": "yes"}},
     "host node1: vm_lab_iommu: 'yes' is not true or false"),
    ({"node1": {"ansible_host": "192.168.150.11", "vm_lab_video": "vga"}},
     "host node1: vm_lab_video: 'vga' must be a list of display models from vga, virtio, bochs, qxl, cirrus"),
])
def test_bad_inventory_is_named(hostvars, message):
    assert error_of(hostvars) == message


def test_bad_mgmt_address_is_named():
    message = error_of({"node1": {"ansible_host": "192.168.150.11"}}, {"mgmt_address": "192.168.150.1"})
    assert message == "vm_lab_mgmt_address: '192.168.150.1' is not an address with a prefix, like 192.168.150.1/24"


def test_mgmt_dhcp_gives_fixed_leases_outside_the_range():
    nodes = specs({"node1": {"ansible_host": "192.168.150.11"}, "node2": {"ansible_host": "192.168.150.12"}})
    plan = lab_mgmt_dhcp(nodes, "192.168.150.1/24")
    assert plan["dhcp_range"] == {"start": "192.168.150.239", "end": "192.168.150.254"}
    assert [h["ip"] for h in plan["dhcp_hosts"]] == ["192.168.150.11", "192.168.150.12"]
    assert plan["dhcp_hosts"][0]["mac"] == nodes[0]["nics"][0]["mac"]
    start = ipaddress.ip_address(plan["dhcp_range"]["start"])
    assert all(ipaddress.ip_address(h["ip"]) < start for h in plan["dhcp_hosts"])


def test_mgmt_dhcp_refuses_a_node_inside_the_range():
    nodes = specs({"node1": {"ansible_host": "192.168.150.240"}})
    with pytest.raises(AnsibleFilterError) as caught:
        lab_mgmt_dhcp(nodes, "192.168.150.1/24")
    assert str(caught.value) == (
        "host node1: ansible_host: 192.168.150.240 lies in the dynamic range "
        "192.168.150.239-192.168.150.254 of the management network; pick an address below 192.168.150.239")


# --- NICs and DHCP networks from the network profile -------------------------------

def profile_models(name, hosts=("node1", "node2")):
    import pathlib

    import yaml

    from ansible_collections.aicluster.lab.plugins.module_utils.network_model import build_models

    root = pathlib.Path(__file__).resolve().parents[4]
    profile = yaml.safe_load((root / "profiles" / f"{name}.yml").read_text())
    return build_models(profile, list(hosts), {}, name)


LAB_WITH_TRUNK = dict(LAB, trunk_network="aiclab-trunk")


def lab_inputs(models):
    """The nodes' inventory variables and the run's plan holding their models."""
    hostvars = {host: {"ansible_host": f"192.168.150.1{i}"} for i, host in enumerate(models, start=1)}
    return hostvars, {host: {"network": model} for host, model in models.items()}


def specs_for(name):
    hostvars, plan = lab_inputs(profile_models(name))
    return lab_node_specs(list(hostvars), hostvars, LAB_WITH_TRUNK, plan), plan


@pytest.mark.parametrize("profile, networks", [
    ("simple", ["aiclab-mgmt", "aiclab-trunk"]),
    ("vlans", ["aiclab-mgmt", "aiclab-trunk"]),
    ("bonding-vlans", ["aiclab-mgmt", "aiclab-trunk", "aiclab-trunk"]),
    ("dhcp-simple", ["aiclab-mgmt", "aiclab-cluster"]),
])
def test_nodes_get_the_nics_their_profile_names(profile, networks):
    node_specs, _hostvars = specs_for(profile)
    assert [nic["network"] for nic in node_specs[0]["nics"]] == networks


def test_fixed_macs_of_the_profile_are_kept_and_others_derived():
    dhcp_specs, _hostvars = specs_for("dhcp-simple")
    assert dhcp_specs[0]["nics"][1]["mac"] == "52:54:00:dc:00:11"
    assert dhcp_specs[1]["nics"][1]["mac"] == "52:54:00:dc:00:12"
    bond_specs, _hostvars = specs_for("bonding-vlans")
    assert bond_specs[0]["nics"][1]["mac"] == lab_mac("aiclab/node1/1")


def test_an_explicit_nic_list_beats_the_profile():
    models = profile_models("simple", ["node1"])
    hostvars = {"node1": {"ansible_host": "192.168.150.11",
                          "vm_lab_node_nics": ["x", {"network": "y", "mac": "52:54:00:00:00:01"}]}}
    nics = lab_node_specs(["node1"], hostvars, LAB_WITH_TRUNK, {"node1": {"network": models["node1"]}})[0]["nics"]
    assert [(n["network"], n["mac"]) for n in nics[1:]] == [("x", lab_mac("aiclab/node1/1")), ("y", "52:54:00:00:00:01")]


def test_the_dhcp_profile_gets_a_lab_network_with_a_lease_per_node():
    from ansible_collections.aicluster.lab.plugins.filter.vm_lab import lab_profile_networks

    node_specs, plan = specs_for("dhcp-simple")
    (network,) = lab_profile_networks(node_specs, plan, LAB_WITH_TRUNK)
    assert network["name"] == network["bridge"] == "aiclab-cluster"
    assert network["address"] == "192.168.220.1/24"
    assert network["dhcp_hosts"] == [
        {"mac": "52:54:00:dc:00:11", "ip": "192.168.220.11", "name": "node1"},
        {"mac": "52:54:00:dc:00:12", "ip": "192.168.220.12", "name": "node2"},
    ]
    assert network["dhcp_range"] == {"start": "192.168.220.239", "end": "192.168.220.254"}
    static_specs, static_plan = specs_for("bonding-vlans")
    assert lab_profile_networks(static_specs, static_plan, LAB_WITH_TRUNK) == []


def test_lab_errors_name_the_profile_host_field_and_value():
    from ansible_collections.aicluster.lab.plugins.filter.vm_lab import lab_profile_networks, lab_profile_nics

    model = profile_models("simple", ["node1"])["node1"]
    renamed = dict(model, links=[dict(model["links"][0], name="eno1")])
    with pytest.raises(AnsibleFilterError) as caught:
        lab_profile_nics(renamed, LAB_WITH_TRUNK)
    assert str(caught.value).startswith("network profile simple, host node1: links[0].name: 'eno1' cannot be made by the VM lab")
    with pytest.raises(AnsibleFilterError) as caught:
        lab_profile_nics(profile_models("dhcp-simple", ["node1"])["node1"], dict(LAB_WITH_TRUNK, name="toolonglab"))
    assert str(caught.value) == ("vm_lab_name: 'toolonglab' is too long for the bridge of network 'cluster': "
                                 "'toolonglab-cluster' has more than 15 characters")
    node_specs, plan = specs_for("simple")
    with pytest.raises(AnsibleFilterError) as caught:
        lab_profile_networks(node_specs, plan, dict(LAB_WITH_TRUNK, mgmt_address="192.168.1.1/24"))
    assert str(caught.value) == ("network profile simple, host node1: networks.cluster.subnet: 192.168.1.0/24 overlaps "
                                 "the lab's management network 192.168.1.0/24 (vm_lab_mgmt_address)")


@pytest.mark.parametrize("node_nics, message", [
    ([{"network": "t", "mac": "52:54:00:zz:00:01"}],
     "host node2: eth1.mac: '52:54:00:zz:00:01' is not a MAC address like 52:54:00:12:34:56"),
    ([{"network": "t", "mac": "53:54:00:00:00:01"}], "host node2: eth1.mac: 53:54:00:00:00:01 is a multicast address"),
    # node1's eth1 already has this one: two NICs with one MAC break both nodes' traffic.
    ([{"network": "t", "mac": "52:54:00:AA:00:01"}], "host node2: eth1.mac: 52:54:00:aa:00:01 is already used by host node1 (eth1)"),
])
def test_lab_macs_are_valid_and_unique_across_nodes(node_nics, message):
    hostvars = {"node1": {"ansible_host": "192.168.150.11", "vm_lab_node_nics": [{"network": "t", "mac": "52:54:00:aa:00:01"}]},
                "node2": {"ansible_host": "192.168.150.12", "vm_lab_node_nics": node_nics}}
    with pytest.raises(AnsibleFilterError) as caught:
        lab_node_specs(["node1", "node2"], hostvars, LAB_WITH_TRUNK)
    assert str(caught.value).startswith(message)


def test_an_explicit_nic_list_must_carry_every_nic_the_profile_uses():
    models = profile_models("bonding-vlans", ["node1"])
    hostvars = {"node1": {"ansible_host": "192.168.150.11", "vm_lab_node_nics": ["x"]}}
    with pytest.raises(AnsibleFilterError) as caught:
        lab_node_specs(["node1"], hostvars, LAB_WITH_TRUNK, {"node1": {"network": models["node1"]}})
    assert str(caught.value) == ("host node1: vm_lab_node_nics: ['x'] gives 1 NIC(s) after eth0, but its network profile "
                                 "bonding-vlans uses eth1..eth2")


def test_lab_networks_take_the_largest_mtu_of_their_links():
    import pathlib

    import yaml

    from ansible_collections.aicluster.lab.plugins.filter.vm_lab import lab_network_mtus
    from ansible_collections.aicluster.lab.plugins.module_utils.network_model import build_models

    profiles = pathlib.Path(__file__).resolve().parents[4] / "profiles"
    # The shipped profiles all run at 1500: no lab network gets an MTU, so nothing changes.
    for name in ("simple", "vlans", "bonding-vlans", "dhcp-simple"):
        assert lab_network_mtus(*specs_for(name)) == {}, name
    # Jumbo frames on the bond (storage VLAN at 9000): the trunk carries 9000.
    jumbo = yaml.safe_load((profiles / "bonding-vlans.yml").read_text())
    jumbo["bond"]["mtu"] = 9000
    jumbo["networks"]["storage"]["mtu"] = 9000
    hostvars, plan = lab_inputs(build_models(jumbo, ["node1", "node2"], {}, "jumbo"))
    assert lab_network_mtus(lab_node_specs(list(hostvars), hostvars, LAB_WITH_TRUNK, plan), plan) == {"aiclab-trunk": 9000}
    # A DHCP-served link with a jumbo MTU: its own lab network gets it.
    dhcp = yaml.safe_load((profiles / "dhcp-simple.yml").read_text())
    next(link for link in dhcp["links"] if link["name"] == "eth1")["mtu"] = 4000
    hostvars, plan = lab_inputs(build_models(dhcp, ["node1", "node2"], {}, "dhcp"))
    assert lab_network_mtus(lab_node_specs(list(hostvars), hostvars, LAB_WITH_TRUNK, plan), plan) == {"aiclab-cluster": 4000}
