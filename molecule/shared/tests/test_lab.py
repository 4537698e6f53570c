"""L1 and L2 of every lab node, checked the way a person would check them by hand.

Runs under molecule's testinfra verifier against the scenario's inventory
(group lab_nodes); each test runs once per node.
"""

import json

import testinfra

from profile_data import host_interface, profile_of, vlan_of


def link_local(node, interface):
    """The IPv6 link-local address of an interface, read from `ip -j`."""
    data = json.loads(node.check_output(f"ip -j -6 addr show dev {interface} scope link"))
    addresses = [a["local"] for link in data for a in link.get("addr_info", [])]
    assert addresses, f"{interface} has no IPv6 link-local address"
    return addresses[0]


def peers_of(host):
    """The other lab nodes, as testinfra hosts on the same inventory."""
    name = host.backend.get_hostname()
    inventory = host.backend.ansible_inventory
    members = host.ansible.get_variables()["groups"]["lab_nodes"]
    return [testinfra.get_host(f"ansible://{peer}", ansible_inventory=inventory) for peer in members if peer != name]


def test_l1_systemd_running_without_failed_units(host):
    state = host.run("systemctl is-system-running --wait").stdout.strip()
    failed = host.check_output("systemctl list-units --failed --plain --no-legend")
    assert (state, failed) == ("running", "")


def test_l1_hostname_is_the_inventory_name(host):
    assert host.check_output("hostname") == host.backend.get_hostname()


def test_l1_booted_the_lab_kernel_with_its_command_line(host):
    cmdline = host.file("/proc/cmdline").content_string
    assert f"systemd.hostname={host.backend.get_hostname()}" in cmdline
    assert "net.ifnames=0" in cmdline


def test_l2_reaches_every_peer_on_the_cluster_interface(host):
    # IPv6 link-local: no configured address is involved, so a reply proves the link. A peer
    # that tags the cluster network with another VLAN id must not answer.
    profile = profile_of(host)
    me = host.backend.get_hostname()
    interface = host_interface(profile, me, "cluster")
    peers = peers_of(host)
    assert peers, "the lab has a single node: nothing to reach"
    for peer in peers:
        peer_name = peer.backend.get_hostname()
        target = f"{link_local(peer, host_interface(profile, peer_name, 'cluster'))}%{interface}"
        result = host.run(f"ping -6 -n -q -c 3 -i 0.2 -W 2 {target}")
        if vlan_of(profile, me, "cluster") == vlan_of(profile, peer_name, "cluster"):
            assert result.rc == 0, f"{peer_name} via {interface}: {result.stdout}{result.stderr}"
            assert " 0% packet loss" in result.stdout
        else:
            assert result.rc != 0 and " 100% packet loss" in result.stdout, f"{peer_name} answered across VLANs: {result.stdout}"


def test_l1_boot_blockers_are_masked(host):
    # The image masks what would hold a lab guest's boot up; a mask that did not land shows here.
    units = ["systemd-networkd-wait-online.service", "apt-daily.timer", "fstrim.timer"]
    states = host.run("systemctl is-enabled " + " ".join(units)).stdout.split()
    assert dict(zip(units, states)) == dict.fromkeys(units, "masked")
