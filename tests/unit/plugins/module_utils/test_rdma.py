# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rdma role's reading and deciding, on the lab's captured state and real adapters' captures."""

import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import rdma
from ansible_collections.aicluster.lab.plugins.module_utils.os_release import parse_os_release

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "rdma"
ROLE_DEFAULTS = pathlib.Path(__file__).resolve().parents[4] / "roles" / "rdma" / "defaults" / "main.yml"
PACKAGES = yaml.safe_load(ROLE_DEFAULTS.read_text())["rdma_packages_by_family"]
ENDPOINT = {"network": "storage", "interface": "bond0.100", "address": "192.168.100.11", "netdev": "bond0",
            "mtu": 1500, "device": "rxe0", "priority": 3, "trust": "dscp"}


def state(name):
    return rdma.host_state((FIXTURES / name).read_text())


def hw(name):
    return (FIXTURES / "hw" / name).read_text()


def test_lab_state_with_soft_roce_is_read_whole():
    read = state("state-node1-rxe.txt")
    assert read["os_release"]["ID"] == "debian"
    assert read["links"] == [{"device": "rxe0", "port": 1, "state": "ACTIVE", "physical_state": "LINK_UP",
                              "netdev": "bond0"}]
    [device] = read["devices"]
    assert device["name"] == "rxe0" and device["parent"] == "bond0" and "pci_vendor" not in device
    port = device["ports"][1]
    assert (port["state"], port["physical_state"], port["link_layer"]) == ("ACTIVE", "LinkUp", "Ethernet")
    assert [(g["index"], g["ndev"], g["type"]) for g in port["gids"]] == [
        (0, "bond0", "RoCE v2"), (1, "bond0.200", "RoCE v2"), (2, "bond0.200", "RoCE v2"), (3, "bond0.100", "RoCE v2")]
    assert read["packages"]["perftest"] is True and read["packages"]["infiniband-diags"] is False
    assert read["tools"]["ib_send_lat"] == "/usr/bin/ib_send_lat"
    assert "rdma_rxe" in read["modules"]


def test_lab_state_without_a_device():
    read = state("state-node2-none.txt")
    assert read["links"] == [] and read["devices"] == []


def test_a_state_that_is_not_read_state_output_is_refused():
    with pytest.raises(rdma.RdmaInputError, match="lacks the section"):
        rdma.host_state("Permission denied (publickey).")


@pytest.mark.parametrize("os_release, family", [
    ('ID=debian\nVERSION_ID="12"', "Debian"),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"', "Debian"),
    ('ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"', "RedHat"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"', "RedHat"),
    ('ID="almalinux"\nID_LIKE="rhel centos fedora"', "RedHat"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"', "Debian"),
    ("ID=alpine", None),
])
def test_package_family_from_os_release(os_release, family):
    assert rdma.package_family(parse_os_release(os_release)) == family


def test_package_choice_per_family_is_the_roles_data():
    debian = state("state-node1-rxe.txt")
    family, wanted, missing = rdma.missing_packages(debian, PACKAGES)
    assert family == "Debian"
    assert wanted == ["rdma-core", "ibverbs-providers", "ibverbs-utils", "rdmacm-utils", "perftest", "infiniband-diags",
                      "iperf3"]
    assert missing == ["infiniband-diags"]
    rhel = dict(debian, os_release={"ID": "rocky", "ID_LIKE": "rhel centos fedora"}, packages={})
    family, wanted, missing = rdma.missing_packages(rhel, PACKAGES)
    assert family == "RedHat"
    assert wanted == ["rdma-core", "libibverbs-utils", "librdmacm-utils", "perftest", "infiniband-diags", "iperf3"]
    assert missing == wanted


def test_an_unknown_distribution_is_named():
    alpine = dict(state("state-node2-none.txt"), os_release={"ID": "alpine"})
    with pytest.raises(rdma.RdmaInputError, match=r"os-release ID 'alpine' .* not a distribution the rdma role has "
                                                  r"packages for \(Debian, RedHat\); set rdma_packages"):
        rdma.missing_packages(alpine, PACKAGES)


@pytest.mark.parametrize("name, links", [
    ("rdma-link-show_mlx5_cx6dx_3fs-pr283.txt", [("mlx5_0", "ACTIVE", "p1p1"), ("mlx5_1", "ACTIVE", "p1p2")]),
    ("rdma-link-show_bnxt_re_ucx-issue11048.txt", [("bnxt_re0", "ACTIVE", "enp194s0f0np0"),
                                                   ("bnxt_re1", "DOWN", "enp194s0f1np1")]),
    ("rdma-link-show_irdma_e810.txt", [("irdma0", "DOWN", "enp23s0f0"), ("irdma1", "ACTIVE", "enp23s0f1")]),
    ("rdma-link-show_mlx5_cx5_infiniband.txt", [("mlx5_0", "ACTIVE", None)]),
])
def test_rdma_link_text_of_real_adapters(name, links):
    parsed = rdma.parse_rdma_links(hw(name))
    assert [(link["device"], link["state"], link["netdev"]) for link in parsed] == links


def _adapter_state(link_text, vendor=None):
    """A host state with real adapters' links; sysfs has the PCI vendor when given."""
    links = rdma.parse_rdma_links(link_text)
    devices = []
    for link in links:
        port = {"state": link["state"], "physical_state": None, "link_layer": "Ethernet", "gids": []}
        devices.append(dict({"name": link["device"], "ports": {1: port}}, **({"pci_vendor": vendor} if vendor else {})))
    return {"os_release": {"ID": "ubuntu"}, "packages": {}, "links": links, "devices": devices}


@pytest.mark.parametrize("name, vendor, expected", [
    ("rdma-link-show_mlx5_cx6dx_3fs-pr283.txt", "0x15b3", "NVIDIA/Mellanox"),
    ("rdma-link-show_mlx5_cx6dx_3fs-pr283.txt", None, "NVIDIA/Mellanox"),
    ("rdma-link-show_bnxt_re_ucx-issue11048.txt", "0x14e4", "Broadcom"),
    ("rdma-link-show_irdma_e810.txt", None, "Intel"),
    ("rdma-link-show_irdma_e810.txt", "0x1234", "PCI vendor 0x1234"),
])
def test_real_adapters_are_recognised(name, vendor, expected):
    for device in _adapter_state(hw(name), vendor)["devices"]:
        assert rdma.device_kind(device) == {"kind": "adapter", "vendor": expected, "driver": None}


def test_soft_devices_are_recognised():
    [device] = state("state-node1-rxe.txt")["devices"]
    assert rdma.device_kind(device) == {"kind": "soft", "vendor": None, "driver": "rdma_rxe"}
    assert rdma.device_kind({"name": "siw0", "parent": "eth1"})["driver"] == "siw"


def test_no_adapter_means_soft_roce_on_the_netdev_under_the_vlan():
    decision = rdma.rdma_decision(state("state-node2-none.txt"), ENDPOINT)
    assert decision == {"action": "soft_roce", "device": "rxe0", "netdev": "bond0", "vendor": None,
                        "driver": "rdma_rxe", "adapters": []}
    # The host's own rxe0 from an earlier run is still Soft-RoCE, not an adapter.
    assert rdma.rdma_decision(state("state-node1-rxe.txt"), ENDPOINT)["action"] == "soft_roce"


def test_an_adapter_under_the_network_is_used_as_it_is():
    endpoint = dict(ENDPOINT, netdev="p1p2", interface="p1p2.100")
    decision = rdma.rdma_decision(_adapter_state(hw("rdma-link-show_mlx5_cx6dx_3fs-pr283.txt"), "0x15b3"), endpoint)
    assert decision["action"] == "adapter"
    assert (decision["device"], decision["netdev"], decision["vendor"]) == ("mlx5_1", "p1p2", "NVIDIA/Mellanox")
    assert decision["adapters"] == ["mlx5_0", "mlx5_1"]


def test_adapters_elsewhere_refuse_soft_roce_and_are_named():
    with pytest.raises(rdma.RdmaInputError, match=r"RDMA adapter\(s\) bnxt_re0 \(enp194s0f0np0\), bnxt_re1 "
                                                  r"\(enp194s0f1np1\) but none on bond0, the device under network "
                                                  r"storage \(bond0.100\)"):
        rdma.rdma_decision(_adapter_state(hw("rdma-link-show_bnxt_re_ucx-issue11048.txt")), ENDPOINT)


def test_the_gid_holding_the_storage_address_is_chosen():
    read = state("state-node1-rxe.txt")
    gid = rdma.select_gid(read, "rxe0", "192.168.100.11")
    assert gid == {"index": 3, "gid": "0000:0000:0000:0000:0000:ffff:c0a8:640b", "ndev": "bond0.100",
                   "type": "RoCE v2", "address": "192.168.100.11"}
    assert rdma.select_gid(read, "rxe0", "192.168.200.11")["index"] == 1
    assert rdma.select_gid(read, "rxe0", "192.168.100.99") is None
    assert rdma.select_gid(read, "rxe1", "192.168.100.11") is None


def test_roce_v2_is_chosen_over_v1_on_a_real_adapter():
    # show_gids of a ConnectX host: mlx5_3 holds 192.168.242.56 at index 2 (v1) and 3 (v2).
    gids = []
    for line in hw("show_gids_mlx5_roce-and-ib_centos12.txt").splitlines():
        words = line.split()
        if words and words[0] == "mlx5_3":
            version = words[-2]
            gids.append({"index": int(words[2]), "gid": words[3], "ndev": words[-1],
                         "type": "RoCE v2" if version == "v2" else "IB/RoCE v1"})
    read = {"devices": [{"name": "mlx5_3", "ports": {1: {"gids": gids}}}]}
    assert len(gids) == 4
    assert rdma.select_gid(read, "mlx5_3", "192.168.242.56")["index"] == 3
    v1_only = {"devices": [{"name": "mlx5_3", "ports": {1: {"gids": [g for g in gids if g["type"] != "RoCE v2"]}}}]}
    assert rdma.select_gid(v1_only, "mlx5_3", "192.168.242.56")["index"] == 2
