"""RDMA on the nodes as a person would check it by hand: the unit, the device on the netdev
under the storage VLAN, and the GID holding the node's storage address.

Only the rdma scenario converges RDMA; in the others these tests are skipped with that reason.
"""

import ipaddress
import json
import os

import pytest

from profile_data import host_interface, profile_of

pytestmark = pytest.mark.skipif(os.environ.get("MOLECULE_SCENARIO_NAME") != "rdma",
                                reason=f"scenario {os.environ.get('MOLECULE_SCENARIO_NAME')!r} does not converge RDMA "
                                       "(only the rdma scenario does)")


def rdma_of(host):
    profile = profile_of(host)
    name = host.backend.get_hostname()
    network = profile["rdma"]["network"]
    interface = host_interface(profile, name, network)
    netdev = profile["networks"][network]["parent"]
    address = profile["hosts"][name]["addresses"][network]
    return profile["rdma"].get("device", "rxe0"), netdev, interface, address


def test_the_soft_roce_unit_is_enabled_and_active(host):
    device, _netdev, _interface, _address = rdma_of(host)
    unit = host.service(f"aicluster-soft-roce-{device}.service")
    assert unit.is_enabled and unit.is_running


def test_the_device_is_active_on_the_netdev_under_the_vlan(host):
    device, netdev, _interface, _address = rdma_of(host)
    links = json.loads(host.check_output("rdma -j link show"))
    mine = [link for link in links if link["ifname"] == device]
    assert mine, f"no {device} in {links}"
    assert (mine[0]["netdev"], mine[0]["state"]) == (netdev, "ACTIVE")


def test_a_roce_v2_gid_holds_the_storage_address(host):
    device, _netdev, interface, address = rdma_of(host)
    port = f"/sys/class/infiniband/{device}/ports/1"
    # The table has 1024 entries, nearly all empty: read them in one command, not one each.
    found = []
    for line in host.check_output(f"grep -H . {port}/gids/*").splitlines():
        path, _sep, gid = line.partition(":")
        index = path.rsplit("/", 1)[1]
        if ipaddress.IPv6Address(gid).ipv4_mapped == ipaddress.IPv4Address(address):
            found.append((host.check_output(f"cat {port}/gid_attrs/ndevs/{index}").strip(),
                          host.check_output(f"cat {port}/gid_attrs/types/{index}").strip()))
    assert (interface, "RoCE v2") in found, found


def test_the_rdma_user_space_is_installed(host):
    for package in ("rdma-core", "ibverbs-providers", "ibverbs-utils", "rdmacm-utils", "perftest", "infiniband-diags"):
        assert host.package(package).is_installed, package
