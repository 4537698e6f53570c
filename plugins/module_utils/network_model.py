# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network profile + inventory host -> host model (the format is in docs/network.md).

Everything that configures, provisions or checks a host's network reads the model
built here, so every rule of a profile is enforced in one place, before any host is
changed. The work is split so that 1,000 hosts stay cheap:

* the profile is parsed and checked once (names, bond, subnets, MTUs, the default
  interface layout);
* a layout that differs per host (renamed NICs, a per-host VLAN id) is built once
  per distinct variant and reused;
* per host only its addresses and MACs are parsed, and cross-host uniqueness uses
  dicts keyed by integer address / MAC, so the whole run is linear in the hosts.

The standard library's ipaddress is used rather than netaddr: it is strict enough
(no '10.1' shorthand, no leading zeros), fast, and always importable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.mac import unicast_mac
from ansible_collections.aicluster.lab.plugins.module_utils.names import IFNAMSIZ, interface_name

BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")
PRIMARY_MODES = ("active-backup", "balance-tlb", "balance-alb")
HASH_MODES = ("balance-xor", "802.3ad", "balance-tlb", "balance-alb")
HASH_POLICIES = ("layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac")
LACP_RATES = ("slow", "fast")
# 1280 is the IPv6 minimum: below it the kernel drops IPv6 from the interface, and the
# cluster interface must keep its IPv6 link-local address (EXO discovers peers there).
MTU_MIN, MTU_MAX, MTU_DEFAULT = 1280, 9216, 1500
# The kernel sets miimon to 100 when neither miimon nor arp_interval is given.
MIIMON_DEFAULT = 100
K3S_DEFAULTS = {"cluster_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16"}
# k3s's own default for cluster-dns is the 10th address of the service CIDR (10.43.0.10 for
# its default range); a profile that moves service_cidr moves the DNS address with it.
K3S_DNS_INDEX = 10

PROFILE_KEYS = ("bond", "description", "hosts", "k3s", "links", "networks", "rdma")
LINK_KEYS = ("mtu", "name")
BOND_KEYS = ("downdelay", "lacp_rate", "members", "miimon", "mode", "mtu", "name", "primary", "updelay",
             "xmit_hash_policy")
NETWORK_KEYS = ("dhcp", "dhcp_server", "gateway", "mtu", "parent", "subnet", "vlan")
HOST_KEYS = ("addresses", "macs", "vlans")
K3S_KEYS = ("cluster_cidr", "service_cidr", "cluster_dns")
K3S_CIDR_KEYS = ("cluster_cidr", "service_cidr")
RDMA_KEYS = ("device", "network", "priority", "trust")
# The Soft-RoCE device made where a host has no RDMA adapter; the name rdma_rxe's docs use.
RDMA_DEFAULTS = {"device": "rxe0", "priority": 3, "trust": "dscp"}
# An RDMA device name: the kernel allows 63 characters (IB_DEVICE_NAME_MAX - 1); keep
# to what a shell and a unit name take without quoting.
_RDMA_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class NetworkModelError(InputError):
    """A profile or an inventory value that cannot make a valid host model."""


def _show(value):
    """A value as an error shows it: names quoted, anything odd in its repr, kept short."""
    if isinstance(value, str):
        text = repr(str(value))
    elif isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, Mapping):
        text = repr(dict(value))
    elif isinstance(value, (list, tuple)):
        text = repr(list(value))
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listing(names):
    return ", ".join(str(name) for name in names)


def _is_int(value):
    # YAML's true/false are ints to Python; a VLAN id of `true` is a typo, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value):
    return isinstance(value, (list, tuple))


class _Where:
    """The prefix of every error: the profile, and the host when there is one."""

    def __init__(self, profile_name, host=None):
        self.host = host
        self.prefix = f"network profile {profile_name}" + (f", host {host}" if host is not None else "")

    def fail(self, field, text):
        raise NetworkModelError(f"{self.prefix}: {field}: {text}")

    def mapping(self, value, field, known, required=False):
        """``value`` as a mapping with only ``known`` keys ({} when absent and optional)."""
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            self.fail(field, f"{_show(value)} must be a mapping")
        for key in value:
            if key not in known:
                path = f"{field}.{key}" if field else str(key)
                self.fail(path, f"unknown key (known: {_listing(known)})")
        return value

    def required(self, value, field, what):
        """A required value; missing says what belongs there rather than showing None."""
        if value is None:
            self.fail(field, f"not set; {what}")
        return value

    def ifname(self, value, field):
        try:
            interface_name(value)
        except ValueError as exc:
            self.fail(field, str(exc))
        return str(value)

    def mtu(self, value, field):
        if value is None:
            return None
        if not _is_int(value) or not MTU_MIN <= value <= MTU_MAX:
            self.fail(field, f"{_show(value)} is not an MTU between {MTU_MIN} and {MTU_MAX} "
                             f"({MTU_MIN} is IPv6's minimum, which the cluster interface needs for its link-local address)")
        return value

    def vlan(self, value, field):
        if not _is_int(value) or not 1 <= value <= 4094:
            self.fail(field, f"{_show(value)} is not a VLAN id (a whole number 1-4094)")
        return value

    def whole(self, value, field):
        if not _is_int(value) or value < 0:
            self.fail(field, f"{_show(value)} is not a whole number >= 0")
        return value

    def cidr(self, value, field):
        """An IPv4 subnet written with its prefix and without host bits."""
        if not isinstance(value, str) or "/" not in value:
            self.fail(field, f"{_show(value)} is not an IPv4 subnet like 192.168.1.0/24")
        try:
            return ipaddress.IPv4Network(str(value), strict=True)
        except ipaddress.NetmaskValueError:
            self.fail(field, f"{_show(value)} has an invalid prefix length (0-32)")
        except ValueError as exc:
            if "host bits set" in str(exc):
                network = ipaddress.IPv4Network(str(value), strict=False)
                self.fail(field, f"{value} has host bits set; the subnet is {network}")
            self.fail(field, f"{_show(value)} is not an IPv4 subnet like 192.168.1.0/24")
        return None  # not reached: fail() raises

    def address(self, value, field):
        if not isinstance(value, str):
            self.fail(field, f"{_show(value)} is not an IPv4 address like 192.168.1.11")
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            self.fail(field, f"{_show(value)} is not an IPv4 address like 192.168.1.11")
        return None  # not reached


class _Subnet:
    """A subnet as integers, so the per-host checks avoid building ipaddress objects."""

    __slots__ = ("network", "text", "prefix", "first", "last", "hosts_only")

    def __init__(self, network):
        self.network = network
        self.text = str(network)
        self.prefix = network.prefixlen
        self.first = int(network.network_address)
        self.last = int(network.broadcast_address)
        # /31 (RFC 3021) and /32 have no network or broadcast address to avoid.
        self.hosts_only = network.prefixlen < 31

    def overlaps(self, other):
        return self.first <= other.last and other.first <= self.last

    def problem(self, ip_int):
        """Why an address cannot be a host's in this subnet, or None."""
        if not self.first <= ip_int <= self.last:
            return "outside"
        if self.hosts_only and ip_int == self.first:
            return f"the network address of {self.text}"
        if self.hosts_only and ip_int == self.last:
            return f"the broadcast address of {self.text}"
        return None


class _Network:
    __slots__ = ("name", "parent", "vlan", "subnet", "mtu", "gateway", "dhcp", "dhcp_server", "reserved",
                 "link_local", "eff_mtu")

    def __init__(self, name):
        self.name = name
        self.reserved = {}  # int address -> what it is (gateway, DHCP server): no host may take it
        self.link_local = name == "cluster"
        self.eff_mtu = None


class _Layout:
    """The interfaces of a host: names after renaming, VLAN ids after per-host overrides."""

    __slots__ = ("links", "bond_members", "bond_primary", "nets", "vlans", "interfaces")


class _Profile:
    """A profile parsed and checked once; build_models then makes each host's model from it."""

    def __init__(self, profile, name):
        self.name = name
        where = self.where = _Where(name)
        if not isinstance(profile, Mapping):
            raise NetworkModelError(f"network profile {name}: the profile must be a mapping, got {_show(profile)}")
        where.mapping(profile, "", PROFILE_KEYS)
        if profile.get("description") is not None and not isinstance(profile["description"], str):
            where.fail("description", f"{_show(profile['description'])} must be text")
        self._parse_links(profile.get("links"))
        self._parse_bond(profile.get("bond"))
        self._parse_k3s(profile.get("k3s"))
        self._parse_networks(profile.get("networks"))
        self._parse_rdma(profile.get("rdma"))
        self.hosts = self._hosts(profile.get("hosts"))
        self._resolve_mtus()
        self._layouts = {}
        # The layout of a host that renames nothing and overrides no VLAN: checked here,
        # so a bad name in the profile is reported as the profile's error.
        self.default_layout = self._layout(where, {}, {})

    # -- profile sections --------------------------------------------------------------

    def _parse_links(self, links):
        where = self.where
        if not _is_list(links) or not links:
            where.fail("links", f"{_show(links)} must be a non-empty list of the host's NICs, like [{{name: eth1}}]")
        self.links, self.link_mtu = [], {}
        for index, link in enumerate(links):
            field = f"links[{index}]"
            if not isinstance(link, Mapping):
                where.fail(field, f"{_show(link)} must be a mapping with a name, like {{name: eth1}}")
            where.mapping(link, field, LINK_KEYS)
            link_name = where.ifname(where.required(link.get("name"), f"{field}.name", "the NIC's name, like eth1"),
                                     f"{field}.name")
            if link_name in self.link_mtu:
                where.fail(f"{field}.name", f"{_show(link_name)} is listed twice")
            self.links.append(link_name)
            self.link_mtu[link_name] = where.mtu(link.get("mtu"), f"{field}.mtu")
        self.link_index = {link_name: index for index, link_name in enumerate(self.links)}

    def _not_a_link(self, value, field):
        if not isinstance(value, str) or value not in self.link_index:
            self.where.fail(field, f"{_show(value)} is not a link of the profile ({_listing(self.links)})")

    def _parse_bond(self, bond):
        where = self.where
        self.bond = None
        if bond is None:
            return
        where.mapping(bond, "bond", BOND_KEYS)
        name = where.ifname(where.required(bond.get("name"), "bond.name", "the bond's interface name, like bond0"), "bond.name")
        if name in self.link_index:
            where.fail("bond.name", f"{_show(name)} is also a link; the bond needs a name of its own")
        mode = where.required(bond.get("mode"), "bond.mode", f"one of {_listing(BOND_MODES)}")
        if mode not in BOND_MODES:
            where.fail("bond.mode", f"{_show(mode)} is not a bonding mode ({_listing(BOND_MODES)})")
        members = where.required(bond.get("members"), "bond.members", "a list of links of the profile")
        if not _is_list(members) or not members:
            where.fail("bond.members", f"{_show(members)} must be a non-empty list of links of the profile")
        seen = set()
        for member in members:
            self._not_a_link(member, "bond.members")
            if member in seen:
                where.fail("bond.members", f"{_show(member)} is listed twice")
            seen.add(member)
        members = [str(member) for member in members]
        primary = bond.get("primary")
        if primary is not None:
            if mode not in PRIMARY_MODES:
                where.fail("bond.primary", f"{_show(primary)} is only for modes {_listing(PRIMARY_MODES)}, not {mode}")
            if primary not in members:
                where.fail("bond.primary", f"{_show(primary)} is not one of the bond's members ({_listing(members)})")
            primary = str(primary)
        miimon = where.whole(bond.get("miimon", MIIMON_DEFAULT), "bond.miimon")
        delays = {}
        for key in ("updelay", "downdelay"):
            delay = delays[key] = where.whole(bond.get(key, 0), f"bond.{key}")
            # The kernel counts these delays in MII polls: anything else is rounded down, or
            # ignored without MII monitoring, and the bond would not do what the profile says.
            if delay and not miimon:
                where.fail(f"bond.{key}", f"{delay} has no effect without MII monitoring (bond.miimon is 0)")
            if miimon and delay % miimon:
                where.fail(f"bond.{key}", f"{delay} is not a multiple of bond.miimon {miimon}")
        # The profile format has no ARP monitoring, so MII polling is the bond's only way
        # to see a member fail: without it the bond keeps sending into a dead link.
        if not miimon:
            where.fail("bond.miimon", "0 turns off link monitoring, and the profile has no other: the bond could "
                                      "never notice a failed member; use a period in ms, like 100")
        lacp_rate = bond.get("lacp_rate")
        if lacp_rate is not None:
            if mode != "802.3ad":
                where.fail("bond.lacp_rate", f"{_show(lacp_rate)} is only for mode 802.3ad, not {mode}")
            if lacp_rate not in LACP_RATES:
                where.fail("bond.lacp_rate", f"{_show(lacp_rate)} is not one of {_listing(LACP_RATES)}")
            lacp_rate = str(lacp_rate)
        policy = bond.get("xmit_hash_policy")
        if policy is not None:
            if mode not in HASH_MODES:
                where.fail("bond.xmit_hash_policy", f"{_show(policy)} is only for modes {_listing(HASH_MODES)}, not {mode}")
            if policy not in HASH_POLICIES:
                where.fail("bond.xmit_hash_policy", f"{_show(policy)} is not one of {_listing(HASH_POLICIES)}")
            policy = str(policy)
        self.bond = {
            "name": name, "mode": str(mode), "members": members, "primary": primary, "miimon": miimon,
            "updelay": delays["updelay"], "downdelay": delays["downdelay"], "lacp_rate": lacp_rate,
            "xmit_hash_policy": policy, "mtu": where.mtu(bond.get("mtu"), "bond.mtu"),
        }
        self.members = set(members)

    def _parse_k3s(self, k3s):
        where = self.where
        k3s = where.mapping(k3s, "k3s", K3S_KEYS)
        self.k3s, self.k3s_subnets = {}, []
        for key in K3S_CIDR_KEYS:
            value = k3s.get(key)
            subnet = _Subnet(where.cidr(K3S_DEFAULTS[key] if value is None else value, f"k3s.{key}"))
            for other_field, other in self.k3s_subnets:
                if subnet.overlaps(other):
                    where.fail(f"k3s.{key}", f"{subnet.text} overlaps {other_field} {other.text}")
            self.k3s[key] = subnet.text
            self.k3s_subnets.append((f"k3s.{key}", subnet))
        service = self.k3s_subnets[1][1]
        if k3s.get("cluster_dns") is None:
            dns = ipaddress.IPv4Address(service.first + K3S_DNS_INDEX)
        else:
            dns = where.address(k3s["cluster_dns"], "k3s.cluster_dns")
        # CoreDNS's service address is allocated from the service range: outside it the
        # apiserver refuses the Service, and every pod's resolv.conf points nowhere.
        problem = service.problem(int(dns))
        if problem == "outside":
            where.fail("k3s.cluster_dns", f"{dns} is outside k3s.service_cidr {service.text}")
        if problem:
            where.fail("k3s.cluster_dns", f"{dns} is {problem}")
        self.k3s["cluster_dns"] = str(dns)

    def _parse_networks(self, networks):
        where = self.where
        if not isinstance(networks, Mapping) or not networks:
            where.fail("networks", f"{_show(networks)} must be a mapping of networks by name, with at least cluster")
        if "cluster" not in networks:
            where.fail("networks", f"no cluster network (networks: {_listing(networks)}); every profile needs one")
        parents = ([self.bond["name"]] if self.bond else []) + self.links
        self.networks = []
        on_parent = {}  # (parent, vlan or None) -> network name: one network per tag per parent
        for name in ["cluster"] + [key for key in networks if key != "cluster"]:
            field = f"networks.{name}"
            if not isinstance(name, str) or not _NETWORK_NAME.match(name):
                where.fail("networks", f"{_show(name)} is not a valid network name (letters, digits, '-', '_')")
            spec = where.mapping(networks[name], field, NETWORK_KEYS, required=True)
            net = _Network(str(name))
            parent = where.required(spec.get("parent"), f"{field}.parent", f"a link or the bond of the profile ({_listing(parents)})")
            if parent not in parents:
                where.fail(f"{field}.parent", f"{_show(parent)} is not a link or the bond of the profile ({_listing(parents)})")
            if self.bond and parent in self.members:
                where.fail(f"{field}.parent", f"{_show(parent)} is a member of {self.bond['name']}; "
                                              f"put the network on {self.bond['name']}")
            net.parent = str(parent)
            net.vlan = None if spec.get("vlan") is None else where.vlan(spec["vlan"], f"{field}.vlan")
            taken = on_parent.get((net.parent, net.vlan))
            if taken is not None:
                if net.vlan is None:
                    where.fail(f"{field}.parent", f"{_show(net.parent)} already carries networks.{taken} untagged; "
                                                  f"give one of them a vlan")
                where.fail(f"{field}.vlan", f"{net.vlan} is already the VLAN of networks.{taken} on {net.parent}")
            on_parent[(net.parent, net.vlan)] = net.name
            subnet = where.required(spec.get("subnet"), f"{field}.subnet", "an IPv4 subnet like 192.168.1.0/24")
            net.subnet = _Subnet(where.cidr(subnet, f"{field}.subnet"))
            for other in self.networks:
                if net.subnet.overlaps(other.subnet):
                    where.fail(f"{field}.subnet", f"{net.subnet.text} overlaps networks.{other.name}.subnet {other.subnet.text}")
            for other_field, other in self.k3s_subnets:
                if net.subnet.overlaps(other):
                    where.fail(f"{field}.subnet", f"{net.subnet.text} overlaps {other_field} {other.text}")
            net.mtu = where.mtu(spec.get("mtu"), f"{field}.mtu")
            net.dhcp = spec.get("dhcp", False)
            if not isinstance(net.dhcp, bool):
                where.fail(f"{field}.dhcp", f"{_show(net.dhcp)} is not true or false")
            net.gateway = self._special(net, spec.get("gateway"), f"{field}.gateway", "gateway")
            if spec.get("dhcp_server") is not None and not net.dhcp:
                where.fail(f"{field}.dhcp_server", f"{_show(spec['dhcp_server'])} is set but {field}.dhcp is false; "
                                                   f"only a DHCP network has a DHCP server")
            net.dhcp_server = self._special(net, spec.get("dhcp_server"), f"{field}.dhcp_server", "DHCP server")
            self.networks.append(net)
        self.network_names = [net.name for net in self.networks]
        self.tagged = {net.name for net in self.networks if net.vlan is not None}

    def _parse_rdma(self, rdma):
        """Which network carries RDMA (RoCE), the Soft-RoCE device name, the PFC priority and trust."""
        where = self.where
        self.rdma = None
        if rdma is None:
            return
        rdma = where.mapping(rdma, "rdma", RDMA_KEYS)
        networks = {net.name: net for net in self.networks}
        name = where.required(rdma.get("network"), "rdma.network", f"the network that carries RDMA ({_listing(networks)})")
        if name not in networks:
            where.fail("rdma.network", f"{_show(name)} is not a network of the profile ({_listing(networks)})")
        if networks[name].dhcp:
            # The GID every tool is pointed at is the one holding the host's address on this
            # network, so the plan must know that address before the host is touched.
            where.fail("rdma.network", f"{_show(name)} is DHCP-addressed; RDMA needs a network with fixed addresses")
        device = rdma.get("device", RDMA_DEFAULTS["device"])
        if not isinstance(device, str) or not _RDMA_DEVICE.match(device):
            where.fail("rdma.device", f"{_show(device)} is not an RDMA device name (letters, digits, '_', '.', '-'; "
                                      "at most 63 characters)")
        priority = rdma.get("priority", RDMA_DEFAULTS["priority"])
        if not _is_int(priority) or not 0 <= priority <= 7:
            where.fail("rdma.priority", f"{_show(priority)} is not an 802.1p priority (a whole number 0-7)")
        trust = rdma.get("trust", RDMA_DEFAULTS["trust"])
        if trust not in ("dscp", "pcp"):
            where.fail("rdma.trust", f"{_show(trust)} is not dscp or pcp (what the NIC trusts to classify RoCE traffic)")
        self.rdma = {"network": str(name), "device": device, "priority": priority, "trust": trust}

    def _special(self, net, value, field, role):
        """A gateway or DHCP server address: inside the subnet, and reserved from the hosts."""
        if value is None:
            return None
        address = self.where.address(value, field)
        problem = net.subnet.problem(int(address))
        if problem == "outside":
            self.where.fail(field, f"{address} is outside networks.{net.name}.subnet {net.subnet.text}")
        if problem:
            self.where.fail(field, f"{address} is {problem}")
        net.reserved.setdefault(int(address), f"the {role} of network {net.name} ({field})")
        return str(address)

    def _hosts(self, hosts):
        if hosts is None:
            return {}
        if not isinstance(hosts, Mapping):
            self.where.fail("hosts", f"{_show(hosts)} must be a mapping of host names to their addresses")
        return hosts

    # -- MTUs ----------------------------------------------------------------------------

    def _resolve_mtus(self):
        """Effective MTUs: each interface carries at least what it carries, default 1500.

        A link and an untagged network on it are one interface, as are a bond and its
        members (the kernel gives members the bond's MTU): their explicit MTUs must agree
        and be at least every VLAN's on top. A VLAN without an MTU gets 1500 (or its
        parent's, when that is lower), not a sibling's jumbo MTU: raising storage to 9000
        must not change what the cluster network sends.
        """
        where = self.where
        groups = []  # (interface, [(field, explicit mtu)], [networks on it])
        if self.bond:
            explicit = [("bond.mtu", self.bond["mtu"])]
            explicit += [(f"links[{self.link_index[m]}].mtu", self.link_mtu[m]) for m in self.bond["members"]]
            groups.append((self.bond["name"], explicit))
        for link in self.links:
            if not self.bond or link not in self.members:
                groups.append((link, [(f"links[{self.link_index[link]}].mtu", self.link_mtu[link])]))
        self.iface_mtu = {}
        for iface, explicit in groups:
            carried = [net for net in self.networks if net.parent == iface]
            explicit = explicit + [(f"networks.{net.name}.mtu", net.mtu) for net in carried if net.vlan is None]
            explicit = [(field, mtu) for field, mtu in explicit if mtu is not None]
            tagged = [(f"networks.{net.name}.mtu", net.mtu) for net in carried if net.vlan is not None and net.mtu]
            if explicit:
                field, value = explicit[0]
                for other_field, other in explicit[1:]:
                    if other != value:
                        where.fail(other_field, f"{other} differs from {field} {value}; {iface} has one MTU "
                                                f"(a bond's members and an untagged network share their interface's)")
                for child_field, child in tagged:
                    if child > value:
                        where.fail(field, f"{value} is below {child_field} {child}, which {iface} carries")
            else:
                value = max([MTU_DEFAULT] + [child for unused_field, child in tagged])
            self.iface_mtu[iface] = value
            for net in carried:
                net.eff_mtu = value if net.vlan is None else (net.mtu or min(MTU_DEFAULT, value))
        for link in self.links:
            self.link_mtu[link] = self.iface_mtu[self.bond["name"] if self.bond and link in self.members else link]
        if self.bond:
            self.bond["mtu"] = self.iface_mtu[self.bond["name"]]

    # -- layouts ---------------------------------------------------------------------------

    def layout(self, where, renames, vlans):
        if not renames and not vlans:
            return self.default_layout
        key = (tuple(sorted(renames.items())), tuple(sorted(vlans.items())))
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = self._layout(where, renames, vlans)
        return layout

    def _layout(self, where, renames, vlans):
        """Interface names, VLAN ids and the order the interfaces are configured in."""
        def real(name):
            return renames.get(name, name)

        layout = _Layout()
        layout.links = [(link, real(link)) for link in self.links]
        # real interface name -> (what it is, the rename that made it or None): a rename
        # onto another interface's name is blamed on the rename, not on the profile.
        used = {}
        for link, name in layout.links:
            renamed = f"network_link_names.{link}" if link in renames else None
            if name in used:
                other, other_rename = used[name]
                where.fail(renamed or other_rename, f"{_show(name)} is already the name of {other}"
                           if renamed else f"{_show(name)} is already the name of link {link}")
            used[name] = (f"link {link}", renamed)
        bond = self.bond
        if bond:
            if bond["name"] in used:
                where.fail(used[bond["name"]][1], f"{_show(bond['name'])} is already the name of the bond")
            used[bond["name"]] = ("the bond", None)
            layout.bond_members = [real(member) for member in bond["members"]]
            layout.bond_primary = real(bond["primary"]) if bond["primary"] else None
        layout.nets, layout.vlans = {}, []
        on_parent = {}
        for net in self.networks:
            parent = real(net.parent)
            vlan = vlans.get(net.name, net.vlan)
            taken = on_parent.get((parent, vlan))
            if taken is not None:  # only a per-host VLAN id can get here: the profile's are checked
                blamed, other = (net.name, taken) if net.name in vlans else (taken, net.name)
                where.fail(f"hosts.{where.host}.vlans.{blamed}", f"{vlan} is already the VLAN of networks.{other} on {parent}")
            on_parent[(parent, vlan)] = net.name
            if vlan is None:
                layout.nets[net.name] = (parent, parent, None)
                continue
            iface = f"{parent}.{vlan}"
            if len(iface) > IFNAMSIZ:
                field = (f"network_link_names.{net.parent}" if net.parent in renames else
                         f"hosts.{where.host}.vlans.{net.name}" if net.name in vlans else f"networks.{net.name}.parent")
                where.fail(field, f"{_show(iface)}, the VLAN interface of network {net.name}, is longer than "
                                  f"{IFNAMSIZ} characters, the kernel's limit for interface names")
            if iface in used:
                where.fail(f"networks.{net.name}.vlan", f"{vlan} makes {_show(iface)}, already the name of {used[iface][0]}")
            used[iface] = (f"the VLAN interface of network {net.name}", None)
            layout.nets[net.name] = (iface, parent, vlan)
            layout.vlans.append((iface, vlan, parent, net.eff_mtu, net.name))
        layout.interfaces = ([name for unused_link, name in layout.links] + ([bond["name"]] if bond else [])
                             + [vlan[0] for vlan in layout.vlans])
        return layout

    # -- one host ----------------------------------------------------------------------------

    def host_entry(self, where, host):
        entry = self.hosts.get(host)
        field = f"hosts.{host}"
        entry = where.mapping(entry, field, HOST_KEYS)
        addresses = where.mapping(entry.get("addresses"), f"{field}.addresses", self.network_names)
        macs = where.mapping(entry.get("macs"), f"{field}.macs", self.links)
        vlans = where.mapping(entry.get("vlans"), f"{field}.vlans", self.network_names)
        for net_name, vlan in vlans.items():
            if net_name not in self.tagged:
                where.fail(f"{field}.vlans.{net_name}", f"{_show(vlan)} is for a tagged network; networks.{net_name} has no vlan")
            where.vlan(vlan, f"{field}.vlans.{net_name}")
        return addresses, macs, vlans

    def renames(self, where, value):
        renames = where.mapping(value, "network_link_names", self.links)
        result = {}
        for link, name in renames.items():
            if name is not None:
                result[str(link)] = where.ifname(name, f"network_link_names.{link}")
        return result


def _address_of(profile, where, host, net, inventory, from_profile):
    """The host's address on ``net``: the inventory's beats the profile's; None for DHCP without one."""
    if inventory.get(net.name) is not None:
        raw, field = inventory[net.name], f"network_addresses.{net.name}"
    elif from_profile.get(net.name) is not None:
        raw, field = from_profile[net.name], f"hosts.{host}.addresses.{net.name}"
    elif net.dhcp:
        return None, None, None
    else:
        where.fail(f"hosts.{host}.addresses.{net.name}",
                   f"not set, and networks.{net.name} is static; set hosts.{host}.addresses.{net.name} "
                   f"in profile {profile.name} or network_addresses.{net.name} in the inventory")
    address = where.address(raw, field)
    ip_int = int(address)
    problem = net.subnet.problem(ip_int)
    if problem == "outside":
        where.fail(field, f"{address} is outside networks.{net.name}.subnet {net.subnet.text}")
    if problem:
        where.fail(field, f"{address} is {problem}")
    if ip_int in net.reserved:
        where.fail(field, f"{address} is {net.reserved[ip_int]}")
    return str(address), ip_int, field


def build_models(profile, hosts, host_vars, profile_name="inline"):
    """The models of ``hosts`` ({host: model}), after validating the profile and every host.

    ``host_vars[host]`` may hold ``network_addresses`` ({network: address}, beating the
    profile's hosts.<host>.addresses) and ``network_link_names`` ({profile link: real
    name}). Raises NetworkModelError naming the profile, the host, the field and the value.
    """
    parsed = _Profile(profile, profile_name)
    if not _is_list(hosts):
        raise NetworkModelError(f"network profile {profile_name}: hosts: {_show(hosts)} must be a list of host names")
    used_addresses = {}  # int address -> host: no address twice, across hosts and networks
    used_macs = {}  # MAC -> (host, link)
    models = {}
    for host in hosts:
        host = str(host)
        if host in models:
            continue
        where = _Where(profile_name, host)
        hostvars = host_vars.get(host) or {}
        profile_addresses, macs, vlan_overrides = parsed.host_entry(where, host)
        inventory_addresses = where.mapping(hostvars.get("network_addresses"), "network_addresses", parsed.network_names)
        # A profile written for more nodes than the inventory uses is fine; an inventory
        # host the profile does not name is a typo unless the inventory addresses it itself:
        # otherwise a DHCP node would silently lose its fixed MAC and lease.
        if parsed.hosts and host not in parsed.hosts and not inventory_addresses:
            where.fail("inventory_hostname", f"{_show(host)} is not one of the profile's hosts ({_listing(parsed.hosts)}); "
                                             f"add hosts.{host} to profile {profile_name} or set network_addresses "
                                             "for it in the inventory")
        renames = parsed.renames(where, hostvars.get("network_link_names"))
        layout = parsed.layout(where, renames, vlan_overrides)

        link_macs = {}
        for link, mac in macs.items():
            field = f"hosts.{host}.macs.{link}"
            try:
                mac = unicast_mac(mac)
            except ValueError as exc:
                where.fail(field, str(exc))
            if mac in used_macs:
                other_host, other_link = used_macs[mac]
                where.fail(field, f"{mac} is already used by host {other_host} ({other_link})")
            used_macs[mac] = (host, link)
            link_macs[link] = mac

        networks = {}
        for net in parsed.networks:
            address, ip_int, field = _address_of(parsed, where, host, net, inventory_addresses, profile_addresses)
            if ip_int is not None:
                if ip_int in used_addresses:
                    where.fail(field, f"{address} is already used by host {used_addresses[ip_int]}")
                used_addresses[ip_int] = host
            interface, parent, vlan = layout.nets[net.name]
            networks[net.name] = {
                "name": net.name, "interface": interface, "parent": parent, "vlan": vlan,
                # The network's own tag: a host override that differs is legal data, but
                # such a host cannot reach the others (validation names it).
                "profile_vlan": net.vlan,
                "subnet": net.subnet.text, "prefix": net.subnet.prefix, "address": address,
                "dhcp": net.dhcp, "dhcp_server": net.dhcp_server, "gateway": net.gateway,
                "mtu": net.eff_mtu, "link_local": net.link_local,
            }

        bond = parsed.bond
        bond_name = bond["name"] if bond else None
        members = parsed.members if bond else ()
        cluster = networks["cluster"]
        storage = networks.get("storage", cluster)
        models[host] = {
            "profile": profile_name,
            "host": host,
            "links": [{"name": name, "profile_name": link, "mtu": parsed.link_mtu[link],
                       "bond": bond_name if link in members else None, "mac": link_macs.get(link)}
                      for link, name in layout.links],
            "bond": dict(bond, members=list(layout.bond_members), primary=layout.bond_primary) if bond else None,
            "vlans": [{"name": name, "id": vlan, "parent": parent, "mtu": mtu, "network": network}
                      for name, vlan, parent, mtu, network in layout.vlans],
            "networks": networks,
            "interfaces": list(layout.interfaces),
            "cluster_interface": cluster["interface"],
            "cluster_address": cluster["address"],
            "storage_interface": storage["interface"],
            "storage_address": storage["address"],
            "routes": [{"to": net["subnet"], "dev": net["interface"]} for net in networks.values()],
            "k3s": dict(parsed.k3s),
            "rdma": dict(parsed.rdma) if parsed.rdma else None,
        }
    return models
