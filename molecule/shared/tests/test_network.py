"""The nodes' network against the scenario's profile, checked as a person would by hand.

Each test reads the kernel's own view (`ip -j`, /proc/net/bonding) on the node and
compares it with what the profile's YAML says. Runs once per node.
"""

import ipaddress
import json

import pytest

from profile_data import host_interface, profile_of, vlan_of


def ip_json(host, command):
    return json.loads(host.check_output(f"ip -j {command}"))


def name_of(host):
    return host.backend.get_hostname()


def address_of(profile, host_name, network):
    return profile["hosts"][host_name]["addresses"][network]


def peer_names(host):
    return [peer for peer in host.ansible.get_variables()["groups"]["lab_nodes"] if peer != name_of(host)]


def test_every_interface_of_the_profile_is_up(host):
    profile = profile_of(host)
    wanted = [link["name"] for link in profile["links"]]
    wanted += [profile["bond"]["name"]] if profile.get("bond") else []
    wanted += [host_interface(profile, name_of(host), name) for name in profile["networks"]]
    links = {link["ifname"]: link for link in ip_json(host, "link show")}
    for name in dict.fromkeys(wanted):
        assert name in links, f"{name} is missing"
        assert {"UP", "LOWER_UP"} <= set(links[name]["flags"]), f"{name}: {links[name]['flags']}"


def test_each_network_has_its_address_on_its_interface(host):
    profile = profile_of(host)
    for name, network in profile["networks"].items():
        interface = host_interface(profile, name_of(host), name)
        expected = address_of(profile, name_of(host), name)
        prefix = ipaddress.ip_network(network["subnet"]).prefixlen
        info = [a for link in ip_json(host, f"-4 addr show dev {interface}") for a in link["addr_info"]]
        assert [(a["local"], a["prefixlen"]) for a in info] == [(expected, prefix)], f"{interface}: {info}"
        # A DHCP network's address is a lease (dynamic), a static one is not.
        assert bool(info[0].get("dynamic")) == bool(network.get("dhcp")), f"{interface}: {info}"


def test_vlan_interfaces_carry_the_profile_ids(host):
    profile = profile_of(host)
    tagged = {name: net for name, net in profile["networks"].items() if net.get("vlan")}
    if not tagged:
        pytest.skip(f"profile {host.ansible.get_variables()['network_profile']} has no VLANs")
    for name, network in tagged.items():
        link = ip_json(host, f"-d link show dev {host_interface(profile, name_of(host), name)}")[0]
        assert link["linkinfo"]["info_kind"] == "vlan"
        assert link["linkinfo"]["info_data"]["id"] == vlan_of(profile, name_of(host), name)
        assert link["linkinfo"]["info_data"]["protocol"] == "802.1Q"
        assert link["link"] == network["parent"]


def test_the_bond_runs_as_the_profile_says(host):
    bond = profile_of(host).get("bond")
    if not bond:
        pytest.skip(f"profile {host.ansible.get_variables()['network_profile']} has no bond")
    # /proc/net/bonding is what an operator reads first.
    text = host.file(f"/proc/net/bonding/{bond['name']}").content_string
    assert "Bonding Mode: fault-tolerance (active-backup)" in text or bond["mode"] != "active-backup", text
    assert f"Primary Slave: {bond['primary']}" in text, text
    assert f"Currently Active Slave: {bond['primary']}" in text, text
    assert f"MII Polling Interval (ms): {bond['miimon']}" in text, text
    members = [line.split(": ")[1] for line in text.splitlines() if line.startswith("Slave Interface: ")]
    assert sorted(members) == sorted(bond["members"]), text
    assert text.count("MII Status: up") == 1 + len(bond["members"]), text


def test_each_subnet_is_routed_via_its_own_interface(host):
    routes = ip_json(host, "-4 route show")
    profile = profile_of(host)
    for name, network in profile["networks"].items():
        devices = [r["dev"] for r in routes if r["dst"] == network["subnet"]]
        assert devices == [host_interface(profile, name_of(host), name)], f"{network['subnet']}: {devices}"


def test_no_address_of_one_network_on_another_interface(host):
    profile = profile_of(host)
    for link in ip_json(host, "-4 addr show"):
        for info in link["addr_info"]:
            for name, network in profile["networks"].items():
                if ipaddress.ip_address(info["local"]) in ipaddress.ip_network(network["subnet"]):
                    expected = host_interface(profile, name_of(host), name)
                    assert link["ifname"] == expected, f"{info['local']} on {link['ifname']}"


def test_cluster_interface_keeps_ipv6_link_local(host):
    interface = host_interface(profile_of(host), name_of(host), "cluster")
    info = [a for link in ip_json(host, f"-6 addr show dev {interface} scope link") for a in link["addr_info"]]
    assert info and info[0]["local"].startswith("fe80:"), info


def test_every_peer_answers_on_every_network_and_is_learned_there(host):
    # Peers that tag a network like this host answer; a peer with another tag on the same
    # subnet must not (profiles/vlans-broken.yml): the tag alone keeps the traffic apart,
    # since the other networks prove the wire between the two works.
    profile = profile_of(host)
    me = name_of(host)
    for peer_name in peer_names(host):
        for name in profile["networks"]:
            interface = host_interface(profile, me, name)
            address = address_of(profile, peer_name, name)
            result = host.run(f"ping -n -q -c 3 -i 0.2 -W 2 -I {interface} {address}")
            neighbours = ip_json(host, f"-4 neigh show to {address}")
            if vlan_of(profile, me, name) == vlan_of(profile, peer_name, name):
                assert result.rc == 0 and " 0% packet loss" in result.stdout, f"{peer_name} {address}: {result.stdout}"
                assert [n["dev"] for n in neighbours] == [interface], f"{address}: {neighbours}"
            else:
                assert result.rc != 0 and " 100% packet loss" in result.stdout, (
                    f"{peer_name} {address} answered across VLANs {vlan_of(profile, me, name)} and "
                    f"{vlan_of(profile, peer_name, name)}: {result.stdout}")
                # Nobody answered the ARP request: nothing was learned, on any interface.
                assert [n for n in neighbours if n.get("lladdr")] == [], f"{address}: {neighbours}"


def test_network_files_are_root_owned_and_marked_managed(host):
    # One command for all files: each round trip to an emulated guest costs about a second.
    listing = host.check_output("cd /etc/systemd/network && stat -c '%n %U %a' 10-aicluster-*")
    unmarked = host.run("cd /etc/systemd/network && grep -L 'Managed by aicluster.lab' 10-aicluster-*").stdout.split()
    files = dict((line.split(" ", 1) for line in listing.splitlines()))
    assert files, "no file of ours in /etc/systemd/network"
    assert set(files.values()) == {"root 644"}, files
    assert unmarked == [], unmarked
