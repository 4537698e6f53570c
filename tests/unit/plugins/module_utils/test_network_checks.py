# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network checks on real ``ip -j`` output of a bonding-vlans node, and on faults made from it.

fixtures/ip/bonding-vlans-node1-*.json were captured on node1 of a running bonding-vlans
lab (Debian 12, iproute2 6.1). Each fault test deep-copies that output and changes it
the way the fault shows up in ip's JSON, then asserts exactly which checks fail and with
which message: a check must name the cause, and must not fail when nothing is wrong.

fixtures/ip/lacp-*-link.json are ``ip -d -j link`` in network namespaces of a lab guest
(Debian 12, kernel 6.1): "partner", an 802.3ad bond0 over veth eth1 and eth2 whose peers
are the members of another 802.3ad bond0 (each is the other's LACP partner); "no-partner",
the same bond over dummy eth1 and eth2, which answer no LACPDU.
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import (
    check_addresses,
    check_bond,
    check_lacp,
    check_vlan_agreement,
    index_links,
    network_checks,
    peer_targets,
)
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import build_models

ROOT = pathlib.Path(__file__).resolve().parents[4]
IP_FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "ip"
ALL_CHECKS = ["net_links_up", "net_mtu", "net_addresses", "net_cluster_link_local", "net_routes",
              "net_isolation", "net_vlan_ids", "net_vlan_agreement", "net_bond", "net_neighbours"]


def profile(name):
    return yaml.safe_load((ROOT / "profiles" / f"{name}.yml").read_text())


def real_state():
    """node1's ip output: links (ip -d -j link), addrs, routes and neigh, as the filter parses them."""
    files = {"links": "link", "addrs": "addr", "routes": "route", "neigh": "neigh"}
    return {field: json.loads((IP_FIXTURES / f"bonding-vlans-node1-{kind}.json").read_text())
            for field, kind in files.items()}


REAL = real_state()
MODELS = build_models(profile("bonding-vlans"), ["node1", "node2"], {}, "bonding-vlans")
MODEL = MODELS["node1"]
TARGETS = peer_targets(MODELS, "node1")


@pytest.fixture
def state():
    """A private copy of the real output, for a test to break."""
    return copy.deepcopy(REAL)


def entry(entries, ifname):
    return next(item for item in entries if item["ifname"] == ifname)


def bond_data(state):
    return entry(state["links"], "bond0")["linkinfo"]["info_data"]


def failures(state, model=MODEL, neighbours=True):
    """{name: message} of the failed checks: what a fault test expects, and nothing else."""
    checks = network_checks(model, state, TARGETS if neighbours else None)
    return {check["name"]: check["message"] for check in checks if not check["passed"]}


def lose_carrier(link):
    """A NIC whose cable is pulled: the kernel drops LOWER_UP, adds NO-CARRIER, operstate DOWN."""
    link["flags"] = ["NO-CARRIER"] + [flag for flag in link["flags"] if flag != "LOWER_UP"]
    link["operstate"] = "DOWN"
    slave = link.get("linkinfo", {}).get("info_slave_data")
    if slave:
        slave.update(mii_status="DOWN", link_failure_count=slave["link_failure_count"] + 1)


# --- the real output passes -------------------------------------------------------------


def test_peer_targets_of_node1():
    assert TARGETS == [
        {"network": "cluster", "peer": "node2", "address": "192.168.200.12", "interface": "bond0.200", "vlan": 200, "peer_vlan": 200, "mtu": 1500},
        {"network": "storage", "peer": "node2", "address": "192.168.100.12", "interface": "bond0.100", "vlan": 100, "peer_vlan": 100, "mtu": 1500},
    ]


def test_every_check_passes_on_the_real_output(state):
    checks = network_checks(MODEL, state, TARGETS)
    assert [check["name"] for check in checks] == ALL_CHECKS
    assert {check["name"]: check["message"] for check in checks} == {
        "net_links_up": "up: eth1, eth2, bond0, bond0.200, bond0.100",
        "net_mtu": "eth1 1500, eth2 1500, bond0 1500, bond0.200 1500, bond0.100 1500",
        "net_addresses": "bond0.200 192.168.200.11/24, bond0.100 192.168.100.11/24",
        "net_cluster_link_local": "bond0.200 fe80::34a4:c0ff:fe09:c794",
        "net_routes": "192.168.200.0/24 via bond0.200, 192.168.100.0/24 via bond0.100",
        "net_isolation": "no network's address on another's interface",
        "net_vlan_ids": "bond0.200 id 200 on bond0, bond0.100 id 100 on bond0",
        "net_vlan_agreement": "node1 and its peers agree: cluster 200, storage 100",
        "net_bond": "bond0 active-backup over eth1, eth2, miimon 100 ms, primary eth1, active eth1",
        "net_neighbours": "2 peer address(es) learned on their network's interface",
    }
    assert all(check["passed"] for check in checks)
    assert all(set(check) == {"name", "phase", "description", "passed", "message"} for check in checks)
    # The checks only read their input.
    assert state == REAL


def test_without_targets_there_is_no_neighbour_check(state):
    assert [check["name"] for check in network_checks(MODEL, state)] == ALL_CHECKS[:-1]


# --- VLANs ------------------------------------------------------------------------------


def test_wrong_vlan_id_names_interface_id_and_expected(state):
    entry(state["links"], "bond0.200")["linkinfo"]["info_data"]["id"] = 201
    assert failures(state) == {"net_vlan_ids": "bond0.200: VLAN id 201, expected 200 (network cluster)"}


def test_vlan_disagreement_names_host_id_and_expected_on_the_wrong_host():
    broken = build_models(profile("vlans-broken"), ["node1", "node2", "node3"], {}, "vlans-broken")
    check = check_vlan_agreement(broken["node2"], peer_targets(broken, "node2"))
    assert not check["passed"]
    assert check["message"] == (
        "node2 tags network cluster with VLAN 201 (eth1.201), expected 200 (networks.cluster.vlan); "
        "peer node1 tags network cluster with VLAN 200, node2 with 201: they cannot reach each other; "
        "peer node3 tags network cluster with VLAN 202, node2 with 201: they cannot reach each other")


def test_vlan_disagreement_is_named_by_the_correct_host_too():
    broken = build_models(profile("vlans-broken"), ["node1", "node2"], {}, "vlans-broken")
    check = check_vlan_agreement(broken["node1"], peer_targets(broken, "node1"))
    assert check["message"] == "peer node2 tags network cluster with VLAN 201, node1 with 200: they cannot reach each other"
    # The storage network, tagged alike everywhere, is not blamed.
    assert "storage" not in check["message"]


def test_vlan_on_the_wrong_parent(state):
    entry(state["links"], "bond0.100")["link"] = "eth1"
    assert failures(state) == {"net_vlan_ids": "bond0.100: parent eth1, expected bond0"}


def test_vlan_with_802_1ad_protocol(state):
    entry(state["links"], "bond0.100")["linkinfo"]["info_data"]["protocol"] = "802.1ad"
    assert failures(state) == {"net_vlan_ids": "bond0.100: protocol 802.1ad, expected 802.1Q"}


# --- the bond ---------------------------------------------------------------------------


def test_member_missing_from_the_bond(state):
    # eth2 released from the bond: no master, no SLAVE flag, no bond slave info, its own MAC back.
    eth2 = entry(state["links"], "eth2")
    del eth2["master"]
    del eth2["linkinfo"]
    eth2["flags"].remove("SLAVE")
    eth2["address"] = eth2.pop("permaddr")
    assert failures(state) == {"net_bond": "members eth1, expected eth1, eth2"}


def test_wrong_bond_mode(state):
    # In balance-rr the kernel reports neither a primary nor an active member.
    data = bond_data(state)
    data["mode"] = "balance-rr"
    del data["primary"]
    del data["active_slave"]
    assert failures(state) == {"net_bond": "mode balance-rr, expected active-backup"}


def test_backup_member_active_while_both_members_are_up(state):
    bond_data(state)["active_slave"] = "eth2"
    entry(state["links"], "eth1")["linkinfo"]["info_slave_data"]["state"] = "BACKUP"
    entry(state["links"], "eth2")["linkinfo"]["info_slave_data"]["state"] = "ACTIVE"
    assert failures(state) == {"net_bond": "active member eth2, expected the primary eth1"}


def test_failover_to_the_backup_is_not_a_bond_fault(state):
    # eth1 lost its carrier and the bond moved to eth2, as it must: only the link check fails.
    lose_carrier(entry(state["links"], "eth1"))
    entry(state["links"], "eth1")["linkinfo"]["info_slave_data"]["state"] = "BACKUP"
    entry(state["links"], "eth2")["linkinfo"]["info_slave_data"]["state"] = "ACTIVE"
    bond_data(state)["active_slave"] = "eth2"
    assert failures(state) == {"net_links_up": "eth1 is DOWN (flags NO-CARRIER,BROADCAST,MULTICAST,SLAVE,UP)"}
    bond = next(check for check in network_checks(MODEL, state, TARGETS) if check["name"] == "net_bond")
    assert bond["message"] == "bond0 active-backup over eth1, eth2, miimon 100 ms, primary eth1, active eth2"


def test_mii_polling_off(state):
    bond_data(state)["miimon"] = 0
    assert failures(state) == {"net_bond": "miimon 0, expected 100"}


def test_wrong_primary(state):
    bond_data(state)["primary"] = "eth2"
    assert failures(state) == {"net_bond": "primary eth2, expected eth1"}


def test_bond_missing(state):
    # networkd never created bond0: its members are plain NICs, nothing is stacked on them.
    state["links"] = [link for link in state["links"] if link["ifname"] not in ("bond0", "bond0.200", "bond0.100")]
    for link in state["links"]:
        link.pop("master", None)
    assert failures(state, neighbours=False)["net_bond"] == "bond0 does not exist"


LACP_BOND = {"name": "bond0", "mode": "802.3ad", "members": ["eth1", "eth2"], "miimon": 100, "lacp_rate": "fast",
             "xmit_hash_policy": "layer3+4"}
LACP_PROFILE = dict(profile("bonding-vlans"), bond=LACP_BOND)
LACP_MODEL = build_models(LACP_PROFILE, ["node1", "node2"], {}, "lacp")["node1"]


def lacp_links(name):
    """ip -d -j link of a real 802.3ad bond0 over eth1 and eth2 (see the module's docstring)."""
    return index_links(json.loads((IP_FIXTURES / f"lacp-{name}-link.json").read_text()))


def test_lacp_bond_reads_the_kernels_ad_lacp_rate():
    # iproute2 prints the LACP rate as ad_lacp_rate, and no primary or active member in this mode.
    links = lacp_links("partner")
    assert check_bond(LACP_MODEL, links)["passed"], check_bond(LACP_MODEL, links)
    links["bond0"]["linkinfo"]["info_data"].update(ad_lacp_rate="slow", xmit_hash_policy="layer2")
    assert check_bond(LACP_MODEL, links)["message"] == ("lacp_rate slow, expected fast; "
                                                        "xmit_hash_policy layer2, expected layer3+4")


def test_an_lacp_bond_with_a_partner_on_every_member_passes():
    check = check_lacp(LACP_MODEL, lacp_links("partner"))
    assert check["passed"], check
    assert check["message"].startswith("bond0: partner ") and "with 2 ports" in check["message"]


def test_an_lacp_bond_without_a_partner_fails_saying_so():
    check = check_lacp(LACP_MODEL, lacp_links("no-partner"))
    assert not check["passed"]
    assert check["message"].startswith("bond0 has no LACP partner (partner MAC 00:00:00:00:00:00): the other end "
                                       "does not speak LACP")


def test_an_lacp_member_outside_the_active_aggregator_or_not_in_sync_is_named():
    links = lacp_links("partner")
    eth2 = links["eth2"]["linkinfo"]["info_slave_data"]
    eth2["ad_aggregator_id"] = 99
    assert check_lacp(LACP_MODEL, links)["message"].startswith("eth2 is in aggregator 99, not the active ")
    links = lacp_links("partner")
    links["eth1"]["linkinfo"]["info_slave_data"]["ad_partner_oper_port_state"] &= ~0x30
    assert check_lacp(LACP_MODEL, links)["message"].startswith("eth1: the partner is not collecting, distributing")


def test_the_lacp_check_runs_for_802_3ad_bonds_only(state):
    assert "net_bond_lacp" not in {check["name"] for check in network_checks(MODEL, state, TARGETS)}
    names = [check["name"] for check in network_checks(LACP_MODEL, {"links": list(lacp_links("partner").values())})]
    assert "net_bond_lacp" in names


# --- links and MTU ----------------------------------------------------------------------


def test_member_without_carrier(state):
    lose_carrier(entry(state["links"], "eth2"))
    assert failures(state) == {"net_links_up": "eth2 is DOWN (flags NO-CARRIER,BROADCAST,MULTICAST,SLAVE,UP)"}


def test_interface_set_down(state):
    # ip link set bond0.100 down: UP and LOWER_UP go, the kernel drops the connected route
    # and flushes the neighbours learned there. The link check names the cause.
    link = entry(state["links"], "bond0.100")
    link["flags"] = ["BROADCAST", "MULTICAST"]
    link["operstate"] = "DOWN"
    state["routes"] = [route for route in state["routes"] if route["dev"] != "bond0.100"]
    state["neigh"] = [neigh for neigh in state["neigh"] if neigh["dev"] != "bond0.100"]
    assert failures(state) == {
        "net_links_up": "bond0.100 is DOWN (flags BROADCAST,MULTICAST)",
        "net_routes": "192.168.100.0/24 (storage) via no interface, expected bond0.100",
        "net_neighbours": "node2 192.168.100.12 (storage) learned on no interface, expected bond0.100",
    }


def test_missing_interface(state):
    # bond0.100 never created: it is in no table of the kernel's.
    for field in ("links", "addrs"):
        state[field] = [item for item in state[field] if item["ifname"] != "bond0.100"]
    for field in ("routes", "neigh"):
        state[field] = [item for item in state[field] if item["dev"] != "bond0.100"]
    assert failures(state) == {
        "net_links_up": "bond0.100 does not exist",
        "net_addresses": "bond0.100 (storage): expected 192.168.100.11/24, has no IPv4 address",
        "net_routes": "192.168.100.0/24 (storage) via no interface, expected bond0.100",
        "net_vlan_ids": "bond0.100 does not exist (expected VLAN 100 on bond0)",
        "net_neighbours": "node2 192.168.100.12 (storage) learned on no interface, expected bond0.100",
    }


def test_wrong_mtu_on_a_vlan(state):
    entry(state["links"], "bond0.200")["mtu"] = 1400
    assert failures(state) == {"net_mtu": "bond0.200: MTU 1400, expected 1500"}


def test_jumbo_bond_where_the_profile_says_1500(state):
    # The bond's MTU is pushed down to its members.
    for name in ("eth1", "eth2", "bond0"):
        entry(state["links"], name)["mtu"] = 9000
    assert failures(state) == {
        "net_mtu": "eth1: MTU 9000, expected 1500; eth2: MTU 9000, expected 1500; bond0: MTU 9000, expected 1500"}


# --- addresses, isolation, routes -------------------------------------------------------


def storage_address_on(ifname):
    return {"family": "inet", "local": "192.168.100.11", "prefixlen": 24, "broadcast": "192.168.100.255",
            "scope": "global", "label": ifname, "valid_life_time": 4294967295, "preferred_life_time": 4294967295}


def test_storage_address_also_on_the_cluster_vlan(state):
    # ip addr add 192.168.100.11/24 dev bond0.200: the kernel adds a connected route there too.
    entry(state["addrs"], "bond0.200")["addr_info"].insert(1, storage_address_on("bond0.200"))
    state["routes"].insert(1, {"dst": "192.168.100.0/24", "dev": "bond0.200", "protocol": "kernel",
                               "scope": "link", "prefsrc": "192.168.100.11", "flags": []})
    assert failures(state) == {
        "net_isolation": "192.168.100.11/24 of network storage (192.168.100.0/24) is on bond0.200, not bond0.100",
        "net_routes": "192.168.100.0/24 (storage) via bond0.100, bond0.200, expected bond0.100",
    }


def test_storage_subnet_routed_via_the_wrong_interface(state):
    route = next(route for route in state["routes"] if route["dst"] == "192.168.100.0/24")
    route["dev"] = "bond0.200"
    assert failures(state) == {"net_routes": "192.168.100.0/24 (storage) via bond0.200, expected bond0.100"}


def test_unexpected_address_in_the_subnet(state):
    # A second address of the cluster subnet on its own interface: the kernel marks it secondary.
    entry(state["addrs"], "bond0.200")["addr_info"].insert(1, {
        "family": "inet", "local": "192.168.200.50", "prefixlen": 24, "broadcast": "192.168.200.255",
        "scope": "global", "secondary": True, "label": "bond0.200",
        "valid_life_time": 4294967295, "preferred_life_time": 4294967295})
    assert failures(state) == {
        "net_addresses": "bond0.200 (cluster): unexpected 192.168.200.50/24 besides 192.168.200.11/24"}


def test_wrong_prefix_length(state):
    # 192.168.200.11/16: the connected route covers the /16 instead of the cluster subnet.
    entry(state["addrs"], "bond0.200")["addr_info"][0].update(prefixlen=16, broadcast="192.168.255.255")
    route = next(route for route in state["routes"] if route["dst"] == "192.168.200.0/24")
    route["dst"] = "192.168.0.0/16"
    assert failures(state) == {
        "net_addresses": "bond0.200 (cluster): expected 192.168.200.11/24, has 192.168.200.11/16",
        "net_routes": "192.168.200.0/24 (cluster) via no interface, expected bond0.200",
    }


def test_missing_link_local_on_the_cluster_interface(state):
    # IPv6 link-local addressing off on bond0.200 (addr_gen_mode none): only IPv4 is left.
    addr = entry(state["addrs"], "bond0.200")
    addr["addr_info"] = [info for info in addr["addr_info"] if info["family"] != "inet6"]
    assert failures(state) == {"net_cluster_link_local": "bond0.200 has no IPv6 link-local address"}


def test_duplicate_link_local_on_the_cluster_interface(state):
    # A peer with the same MAC (a cloned VM): DAD fails and the kernel never uses the address.
    info = entry(state["addrs"], "bond0.200")["addr_info"][1]
    info.update(tentative=True, dadfailed=True)
    assert failures(state) == {"net_cluster_link_local": "bond0.200 has no usable IPv6 link-local address: "
                                                         "fe80::34a4:c0ff:fe09:c794 is a duplicate (DAD failed)"}


# --- neighbours -------------------------------------------------------------------------


def neighbour(state, address):
    return next(neigh for neigh in state["neigh"] if neigh["dst"] == address)


def test_neighbour_learned_on_the_wrong_interface(state):
    neighbour(state, "192.168.200.12")["dev"] = "bond0.100"
    assert failures(state) == {
        "net_neighbours": "node2 192.168.200.12 (cluster) learned on bond0.100, expected bond0.200"}


def test_neighbour_also_learned_on_another_interface(state):
    state["neigh"].append(dict(neighbour(state, "192.168.200.12"), dev="bond0.100"))
    assert failures(state) == {
        "net_neighbours": "node2 192.168.200.12 (cluster) learned on bond0.100, bond0.200, expected bond0.200"}


def test_neighbour_missing(state):
    state["neigh"].remove(neighbour(state, "192.168.100.12"))
    assert failures(state) == {
        "net_neighbours": "node2 192.168.100.12 (storage) learned on no interface, expected bond0.100"}


@pytest.mark.parametrize("unresolved", ["INCOMPLETE", "FAILED"])
def test_unanswered_neighbour_is_not_learned(state, unresolved):
    # The peer never answered ARP: the entry has a state but no link-layer address.
    neigh = neighbour(state, "192.168.100.12")
    del neigh["lladdr"]
    neigh["state"] = [unresolved]
    assert failures(state) == {
        "net_neighbours": "node2 192.168.100.12 (storage) learned on no interface, expected bond0.100"}


# --- DHCP (dhcp-simple) -----------------------------------------------------------------


def dhcp_addrs(dynamic):
    """dhcp-simple's node1 addresses: lo, eth0, and eth1 made from the real bond0.200 entry.

    eth1 is a plain NIC there, so it loses the VLAN's parent link; its address is the
    profile's expected lease. A networkd lease is dynamic with a finite lifetime and the
    DHCP route metric (as eth0's is); a static address is neither.
    """
    addrs = copy.deepcopy([entry(REAL["addrs"], "lo"), entry(REAL["addrs"], "eth0"),
                           entry(REAL["addrs"], "bond0.200")])
    eth1 = addrs[2]
    del eth1["link"]
    eth1.update(ifindex=3, ifname="eth1", address="52:54:00:dc:00:11")
    inet, inet6 = eth1["addr_info"]
    inet.update(local="192.168.220.11", broadcast="192.168.220.255", label="eth1")
    inet6["local"] = "fe80::5054:ff:fedc:11"
    if dynamic:
        inet.update(metric=1024, dynamic=True, valid_life_time=3410, preferred_life_time=3410)
    return addrs


DHCP_MODEL = build_models(profile("dhcp-simple"), ["node1", "node2"], {}, "dhcp-simple")["node1"]


def test_dhcp_lease_passes():
    check = check_addresses(DHCP_MODEL, dhcp_addrs(dynamic=True))
    assert (check["passed"], check["message"]) == (True, "eth1 192.168.220.11/24 (DHCP)")


def test_dhcp_expected_but_address_static():
    check = check_addresses(DHCP_MODEL, dhcp_addrs(dynamic=False))
    assert (check["passed"], check["message"]) == (False, "eth1 (cluster): 192.168.220.11 is static, expected a DHCP lease")


def test_dhcp_lease_other_than_the_expected_one():
    # The server did not hand out the fixed lease (the MAC is not the profile's).
    addrs = dhcp_addrs(dynamic=True)
    addrs[2]["addr_info"][0]["local"] = "192.168.220.57"
    check = check_addresses(DHCP_MODEL, addrs)
    assert (check["passed"], check["message"]) == (False, "eth1 (cluster): expected 192.168.220.11/24, has 192.168.220.57/24")


def test_dhcp_without_an_expected_lease_takes_any_address_of_the_subnet():
    model = copy.deepcopy(DHCP_MODEL)
    model["networks"]["cluster"]["address"] = None
    addrs = dhcp_addrs(dynamic=True)
    addrs[2]["addr_info"][0]["local"] = "192.168.220.57"
    assert check_addresses(model, addrs)["message"] == "eth1 192.168.220.57/24 (DHCP)"
    addrs[2]["addr_info"] = addrs[2]["addr_info"][1:]
    check = check_addresses(model, addrs)
    assert (check["passed"], check["message"]) == (False, "eth1 (cluster): no address in 192.168.220.0/24")
