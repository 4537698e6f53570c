# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network renderer: systemd-networkd files and netplan YAML from host models (docs/network.md)."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import network_render as nr
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.network_units import (
    load_models,
    parse_unit,
    values,
)

MODELS = load_models()


def networkd(profile, **kwargs):
    return nr.render_networkd(MODELS[profile], **kwargs)


def netplan(profile):
    return yaml.safe_load(nr.render_netplan(MODELS[profile]))["network"]


# --- systemd-networkd files ---------------------------------------------------------------

EXPECTED_FILES = {
    "simple": ["10-aicluster-eth1.network"],
    "dhcp-simple": ["10-aicluster-eth1.network"],
    "vlans": [
        "10-aicluster-eth1.network",
        "10-aicluster-eth1.200.netdev", "10-aicluster-eth1.200.network",
        "10-aicluster-eth1.100.netdev", "10-aicluster-eth1.100.network",
    ],
    "bonding-vlans": [
        "10-aicluster-eth1.network", "10-aicluster-eth2.network",
        "10-aicluster-bond0.netdev", "10-aicluster-bond0.network",
        "10-aicluster-bond0.200.netdev", "10-aicluster-bond0.200.network",
        "10-aicluster-bond0.100.netdev", "10-aicluster-bond0.100.network",
    ],
    "lacp-jumbo": [
        "10-aicluster-enp65s0f0.network", "10-aicluster-enp65s0f1.network",
        "10-aicluster-bond0.netdev", "10-aicluster-bond0.network",
        "10-aicluster-bond0.200.netdev", "10-aicluster-bond0.200.network",
        "10-aicluster-bond0.100.netdev", "10-aicluster-bond0.100.network",
    ],
}


@pytest.mark.parametrize("profile", sorted(EXPECTED_FILES))
def test_file_set_in_interface_order(profile):
    assert list(networkd(profile)) == EXPECTED_FILES[profile]


@pytest.mark.parametrize("profile", sorted(EXPECTED_FILES))
def test_every_file_says_who_manages_it_and_parses(profile):
    for name, text in networkd(profile).items():
        assert text.splitlines()[0] == (
            f"# Managed by aicluster.lab (profile {profile}, host node1); changes are overwritten."
        ), name
        assert text.endswith("\n") and not text.endswith("\n\n"), name
        sections = [section for section, _items in parse_unit(text)]
        assert sections[:1] == (["NetDev"] if name.endswith(".netdev") else ["Match"]), name


@pytest.mark.parametrize("profile", sorted(EXPECTED_FILES))
def test_files_sort_before_the_image_catch_all(profile):
    # networkd takes the first matching .network file in lexical order.
    assert all(name < "90-" for name in networkd(profile))


def test_simple_whole_file():
    assert networkd("simple")["10-aicluster-eth1.network"] == (
        "# Managed by aicluster.lab (profile simple, host node1); changes are overwritten.\n"
        "\n"
        "[Match]\n"
        "Name=eth1\n"
        "\n"
        "[Link]\n"
        "MTUBytes=1500\n"
        "\n"
        "[Network]\n"
        "Address=192.168.1.11/24\n"
        "LinkLocalAddressing=ipv6\n"
        "IPv6AcceptRA=no\n"
    )


def test_vlans_trunk_parent_carries_both_vlans_and_no_address():
    eth1 = networkd("vlans")["10-aicluster-eth1.network"]
    assert values(eth1, "Match", "Name") == ["eth1"]
    assert values(eth1, "Network", "VLAN") == ["eth1.200", "eth1.100"]
    assert values(eth1, "Network", "Address") == []
    assert values(eth1, "Network", "LinkLocalAddressing") == ["no"]
    assert values(eth1, "Network", "IPv6AcceptRA") == ["no"]
    assert values(eth1, "Network", "ConfigureWithoutCarrier") == ["yes"]
    assert values(eth1, "Link", "RequiredForOnline") == ["no"]


@pytest.mark.parametrize("vlan, vid, address, link_local", [
    ("eth1.200", "200", "192.168.200.11/24", "ipv6"),
    ("eth1.100", "100", "192.168.100.11/24", "no"),
])
def test_vlans_vlan_interfaces(vlan, vid, address, link_local):
    files = networkd("vlans")
    netdev, network = files[f"10-aicluster-{vlan}.netdev"], files[f"10-aicluster-{vlan}.network"]
    assert values(netdev, "NetDev", "Name") == [vlan]
    assert values(netdev, "NetDev", "Kind") == ["vlan"]
    assert values(netdev, "VLAN", "Id") == [vid]
    assert values(network, "Network", "Address") == [address]
    # Only the cluster network keeps IPv6 link-local (EXO's peer discovery).
    assert values(network, "Network", "LinkLocalAddressing") == [link_local]
    assert values(network, "Network", "IPv6AcceptRA") == ["no"]
    assert values(network, "Network", "Gateway") == []
    # Address interfaces are what wait-online waits for.
    assert values(network, "Link", "RequiredForOnline") == []


def test_bonding_vlans_bond_netdev():
    netdev = networkd("bonding-vlans")["10-aicluster-bond0.netdev"]
    assert parse_unit(netdev) == [
        ("NetDev", [("Name", "bond0"), ("Kind", "bond"), ("MTUBytes", "1500")]),
        ("Bond", [("Mode", "active-backup"), ("MIIMonitorSec", "100ms"), ("UpDelaySec", "0ms"), ("DownDelaySec", "0ms")]),
    ]


def test_bonding_vlans_members():
    files = networkd("bonding-vlans")
    eth1, eth2 = files["10-aicluster-eth1.network"], files["10-aicluster-eth2.network"]
    for member in (eth1, eth2):
        assert values(member, "Network", "Bond") == ["bond0"]
        assert values(member, "Network", "LinkLocalAddressing") == ["no"]
        assert values(member, "Network", "Address") == []
        assert values(member, "Link", "RequiredForOnline") == ["no"]
        assert values(member, "Link", "MTUBytes") == ["1500"]
    # systemd 252's name for the preferred member.
    assert values(eth1, "Network", "PrimarySlave") == ["true"]
    assert values(eth2, "Network", "PrimarySlave") == []


def test_bonding_vlans_bond_is_a_trunk():
    bond = networkd("bonding-vlans")["10-aicluster-bond0.network"]
    assert values(bond, "Network", "VLAN") == ["bond0.200", "bond0.100"]
    assert values(bond, "Network", "Address") == []
    assert values(bond, "Network", "LinkLocalAddressing") == ["no"]
    assert values(bond, "Network", "ConfigureWithoutCarrier") == ["yes"]
    assert values(bond, "Link", "RequiredForOnline") == ["no"]


def test_bonding_vlans_cluster_vlan():
    files = networkd("bonding-vlans")
    assert values(files["10-aicluster-bond0.200.netdev"], "VLAN", "Id") == ["200"]
    network = files["10-aicluster-bond0.200.network"]
    assert values(network, "Network", "Address") == ["192.168.200.11/24"]
    assert values(network, "Network", "LinkLocalAddressing") == ["ipv6"]
    assert values(files["10-aicluster-bond0.100.network"], "Network", "LinkLocalAddressing") == ["no"]


def test_lacp_bond_settings():
    netdev = networkd("lacp-jumbo")["10-aicluster-bond0.netdev"]
    assert parse_unit(netdev)[1] == ("Bond", [
        ("Mode", "802.3ad"), ("MIIMonitorSec", "100ms"), ("UpDelaySec", "200ms"), ("DownDelaySec", "200ms"),
        ("LACPTransmitRate", "fast"), ("TransmitHashPolicy", "layer3+4"),
    ])
    for member in ("enp65s0f0", "enp65s0f1"):
        # No primary in 802.3ad: every member is active.
        assert values(networkd("lacp-jumbo")[f"10-aicluster-{member}.network"], "Network", "PrimarySlave") == []


def test_lacp_jumbo_mtus_per_interface():
    files = networkd("lacp-jumbo")
    mtu = {
        name: (values(text, "NetDev", "MTUBytes") or values(text, "Link", "MTUBytes"))
        for name, text in files.items()
    }
    assert mtu == {
        "10-aicluster-enp65s0f0.network": ["9000"],
        "10-aicluster-enp65s0f1.network": ["9000"],
        "10-aicluster-bond0.netdev": ["9000"],
        "10-aicluster-bond0.network": ["9000"],
        "10-aicluster-bond0.200.netdev": ["1500"],
        "10-aicluster-bond0.200.network": ["1500"],
        "10-aicluster-bond0.100.netdev": ["9000"],
        "10-aicluster-bond0.100.network": ["9000"],
    }


def test_gateway_only_where_the_model_has_one():
    files = networkd("lacp-jumbo")
    assert values(files["10-aicluster-bond0.200.network"], "Network", "Gateway") == ["10.0.200.1"]
    assert values(files["10-aicluster-bond0.100.network"], "Network", "Gateway") == []


def test_dhcp_takes_the_lease_not_a_static_address():
    eth1 = networkd("dhcp-simple")["10-aicluster-eth1.network"]
    assert values(eth1, "Network", "DHCP") == ["ipv4"]
    # The model's address is the expected lease, for validation only.
    assert values(eth1, "Network", "Address") == []
    assert "192.168.220.11" not in eth1
    assert values(eth1, "Network", "LinkLocalAddressing") == ["ipv6"]
    assert values(eth1, "DHCPv4", "ClientIdentifier") == ["mac"]
    assert values(eth1, "DHCPv4", "UseRoutes") == ["no"]
    assert values(eth1, "DHCPv4", "UseMTU") == ["no"]


def test_static_networks_have_no_dhcp_section():
    for profile in ("simple", "vlans", "bonding-vlans", "lacp-jumbo"):
        for name, text in networkd(profile).items():
            assert values(text, "Network", "DHCP") == [], name
            assert "DHCPv4" not in [section for section, _items in parse_unit(text)], name


def test_accept_ra_off_on_every_network_file():
    for profile in EXPECTED_FILES:
        for name, text in networkd(profile).items():
            if name.endswith(".network"):
                assert values(text, "Network", "IPv6AcceptRA") == ["no"], name


def test_link_local_only_on_the_cluster_interface():
    for profile, model in MODELS.items():
        with_ll = [
            name for name, text in nr.render_networkd(model).items()
            if values(text, "Network", "LinkLocalAddressing") == ["ipv6"]
        ]
        assert with_ll == [f"10-aicluster-{model['cluster_interface']}.network"], profile


def test_prefix():
    files = networkd("bonding-vlans", prefix="20-lab")
    assert sorted(files) == sorted(name.replace("10-aicluster-", "20-lab-") for name in EXPECTED_FILES["bonding-vlans"])


@pytest.mark.parametrize("prefix", ["", "../x", "a/b", "-x", None])
def test_bad_prefix(prefix):
    with pytest.raises(nr.NetworkRenderError, match="prefix"):
        networkd("simple", prefix=prefix)


def test_output_is_deterministic():
    for profile, model in MODELS.items():
        again = copy.deepcopy(model)
        assert nr.render_networkd(model) == nr.render_networkd(again), profile
        assert nr.render_netplan(model) == nr.render_netplan(again), profile


def test_not_a_model():
    with pytest.raises(nr.NetworkRenderError, match="must be a dict"):
        nr.render_networkd(["eth1"])
    with pytest.raises(nr.NetworkRenderError, match="missing interfaces"):
        nr.render_netplan({"links": [], "networks": {}})


def test_unknown_interface_in_the_model():
    model = copy.deepcopy(MODELS["simple"])
    model["interfaces"].append("eth9")
    with pytest.raises(nr.NetworkRenderError, match="'eth9' is neither a link, the bond nor a VLAN"):
        nr.render_networkd(model)


def test_unused_link_is_held_without_addresses():
    model = copy.deepcopy(MODELS["simple"])
    model["links"].append({"name": "eth2", "profile_name": "eth2", "mtu": 1500, "bond": None, "mac": None})
    model["interfaces"].append("eth2")
    eth2 = nr.render_networkd(model)["10-aicluster-eth2.network"]
    assert values(eth2, "Network", "LinkLocalAddressing") == ["no"]
    assert values(eth2, "Link", "RequiredForOnline") == ["no"]
    assert values(eth2, "Network", "ConfigureWithoutCarrier") == []


# --- netplan ------------------------------------------------------------------------------

def test_netplan_header_and_top_level():
    text = nr.render_netplan(MODELS["simple"])
    assert text.startswith("# Managed by aicluster.lab (profile simple, host node1); changes are overwritten.\n")
    plan = yaml.safe_load(text)["network"]
    assert (plan["version"], plan["renderer"]) == (2, "networkd")
    assert list(plan) == ["version", "renderer", "ethernets"]


def test_netplan_simple():
    assert netplan("simple")["ethernets"] == {
        "eth1": {
            "mtu": 1500, "addresses": ["192.168.1.11/24"], "dhcp4": False,
            "link-local": ["ipv6"], "accept-ra": False,
        },
    }


def test_netplan_vlans():
    plan = netplan("vlans")
    assert plan["ethernets"]["eth1"] == {
        "mtu": 1500, "dhcp4": False, "link-local": [], "accept-ra": False, "optional": True, "ignore-carrier": True,
    }
    assert plan["vlans"]["eth1.200"]["id"] == 200
    assert plan["vlans"]["eth1.200"]["link"] == "eth1"
    assert plan["vlans"]["eth1.200"]["addresses"] == ["192.168.200.11/24"]
    assert plan["vlans"]["eth1.200"]["link-local"] == ["ipv6"]
    assert plan["vlans"]["eth1.100"]["link-local"] == []
    assert list(plan["vlans"]) == ["eth1.200", "eth1.100"]


def test_netplan_bonding_vlans():
    plan = netplan("bonding-vlans")
    bond = plan["bonds"]["bond0"]
    assert bond["interfaces"] == ["eth1", "eth2"]
    assert bond["parameters"] == {
        "mode": "active-backup", "primary": "eth1", "mii-monitor-interval": 100, "up-delay": 0, "down-delay": 0,
    }
    assert bond["optional"] is True and bond["link-local"] == []
    assert set(plan["ethernets"]) == {"eth1", "eth2"}
    assert {vlan["link"] for vlan in plan["vlans"].values()} == {"bond0"}


def test_netplan_lacp_gateway_and_mtu():
    plan = netplan("lacp-jumbo")
    assert plan["bonds"]["bond0"]["parameters"] == {
        "mode": "802.3ad", "mii-monitor-interval": 100, "up-delay": 200, "down-delay": 200,
        "lacp-rate": "fast", "transmit-hash-policy": "layer3+4",
    }
    assert plan["bonds"]["bond0"]["mtu"] == 9000
    assert plan["vlans"]["bond0.100"]["mtu"] == 9000
    assert plan["vlans"]["bond0.200"]["mtu"] == 1500
    assert plan["vlans"]["bond0.200"]["routes"] == [{"to": "default", "via": "10.0.200.1"}]
    assert "routes" not in plan["vlans"]["bond0.100"]
    assert plan["ethernets"]["enp65s0f0"]["mtu"] == 9000


def test_netplan_dhcp():
    assert netplan("dhcp-simple")["ethernets"]["eth1"] == {
        "mtu": 1500, "dhcp4": True, "dhcp-identifier": "mac",
        "dhcp4-overrides": {"use-routes": False, "use-mtu": False},
        "link-local": ["ipv6"], "accept-ra": False,
    }


@pytest.mark.parametrize("value, expected", [
    ("eth1", "eth1"), ("bond0.200", "bond0.200"), ("layer3+4", "layer3+4"),
    ("192.168.1.11/24", "192.168.1.11/24"), ("802.3ad", '"802.3ad"'), ("on", '"on"'), ("no", '"no"'),
    ("fe80::1/64", '"fe80::1/64"'), ('a "b"', '"a \\"b\\""'), (True, "true"), (100, "100"),
])
def test_yaml_scalars_keep_their_type(value, expected):
    assert nr._scalar(value) == expected  # pylint: disable=protected-access
    assert yaml.safe_load(f"k: {expected}")["k"] == value


# --- summary ------------------------------------------------------------------------------

@pytest.mark.parametrize("profile, summary", [
    ("simple", "node1 (simple): cluster 192.168.1.11/24 on eth1, mtu 1500"),
    ("dhcp-simple", "node1 (dhcp-simple): cluster by DHCP, expecting 192.168.220.11/24 on eth1, mtu 1500"),
    ("bonding-vlans", "node1 (bonding-vlans): bond0 over eth1*, eth2 (active-backup, mtu 1500); "
                      "cluster 192.168.200.11/24 on bond0.200 (VLAN 200), mtu 1500; "
                      "storage 192.168.100.11/24 on bond0.100 (VLAN 100), mtu 1500"),
    ("lacp-jumbo", "node1 (lacp-jumbo): bond0 over enp65s0f0, enp65s0f1 (802.3ad, lacp fast, mtu 9000); "
                   "cluster 10.0.200.21/24 on bond0.200 (VLAN 200), mtu 1500; "
                   "storage 10.0.100.21/24 on bond0.100 (VLAN 100), mtu 9000"),
])
def test_summary(profile, summary):
    assert nr.render_summary(MODELS[profile]) == summary
