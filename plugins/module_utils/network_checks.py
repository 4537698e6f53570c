# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare a host's running network (``ip -j`` JSON) with its network model.

Each function returns checks as dicts: name, phase, description, passed, message.
The validate role records them for the suite report. The phases follow n3x's
profile assertions (links and addresses, VLAN ids, storage network, isolation),
plus the bond and MTU, and every one of them asserts instead of only logging.
"""

from __future__ import annotations

import ipaddress
import json

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError


def _check(name, phase, description, problems, ok_message):
    return {
        "name": name,
        "phase": phase,
        "description": description,
        "passed": not problems,
        "message": "; ".join(problems) if problems else ok_message,
    }


class IpJsonError(InputError):
    """Text that should be the JSON of ``ip -j`` and is not."""


def ip_json(value, what):
    """``ip -j`` output as parsed JSON: a list passes as it is, empty text is no entries.

    Raises IpJsonError naming ``what`` (the field or section it came from) and how the text starts.
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else []
    except ValueError as exc:
        raise IpJsonError(f"{what} is not the JSON of ip -j: {exc}: {value.strip()[:200]!r}") from exc


def link_local_addresses(addrs):
    """{ifname: (usable, duplicate)}: each interface's IPv6 link-local addresses from ``ip -j addr``.

    An address that failed duplicate address detection (another host has it: a cloned VM's
    MAC) is never used, so it is apart from the usable ones.
    """
    found = {}
    for entry in addrs or []:
        for info in entry.get("addr_info") or []:
            if info.get("family") == "inet6" and "local" in info and ipaddress.ip_address(info["local"]).is_link_local:
                usable, duplicate = found.setdefault(entry["ifname"], ([], []))
                (duplicate if info.get("dadfailed") else usable).append(info["local"])
    return found


def index_links(links):
    """``ip -d -j link show`` output as {ifname: entry}."""
    return {entry["ifname"]: entry for entry in links or []}


def addresses_by_interface(addrs, family="inet"):
    """``ip -j addr show`` output as {ifname: [(address, prefixlen, dynamic)]} for one family."""
    result = {}
    for entry in addrs or []:
        result[entry["ifname"]] = [
            (info["local"], info.get("prefixlen"), bool(info.get("dynamic")))
            for info in entry.get("addr_info", [])
            if info.get("family") == family and "local" in info
        ]
    return result


def _expected_mtus(model):
    mtus = {link["name"]: link["mtu"] for link in model["links"]}
    if model.get("bond"):
        mtus[model["bond"]["name"]] = model["bond"]["mtu"]
    for vlan in model.get("vlans", []):
        mtus[vlan["name"]] = vlan["mtu"]
    return mtus


def check_links(model, links):
    """Every interface of the model exists, is administratively up and has carrier."""
    problems = []
    for name in model["interfaces"]:
        entry = links.get(name)
        if entry is None:
            problems.append(f"{name} does not exist")
            continue
        flags = entry.get("flags", [])
        if "UP" not in flags or "LOWER_UP" not in flags:
            problems.append(f"{name} is {entry.get('operstate', 'unknown')} (flags {','.join(flags)})")
    return _check("net_links_up", "links", "every interface of the profile exists and is up with carrier",
                  problems, "up: " + ", ".join(model["interfaces"]))


def check_mtu(model, links):
    problems = []
    for name, mtu in _expected_mtus(model).items():
        actual = links.get(name, {}).get("mtu")
        if actual is not None and actual != mtu:
            problems.append(f"{name}: MTU {actual}, expected {mtu}")
    return _check("net_mtu", "links", "every interface has the MTU of the profile", problems,
                  ", ".join(f"{name} {mtu}" for name, mtu in _expected_mtus(model).items()))


def check_addresses(model, addrs):
    """Each network's address sits on its interface with the subnet's prefix, and no other in the subnet."""
    by_if = addresses_by_interface(addrs)
    problems, found = [], []
    for net in model["networks"].values():
        subnet = ipaddress.ip_network(net["subnet"])
        where = f"{net['interface']} ({net['name']})"
        present = by_if.get(net["interface"], [])
        in_subnet = [(ip, plen, dyn) for ip, plen, dyn in present if ipaddress.ip_address(ip) in subnet]
        if not net.get("address"):
            # DHCP without an expected lease: any address of the subnet will do.
            if not in_subnet:
                problems.append(f"{where}: no address in {subnet}")
                continue
            ip, plen, dynamic = in_subnet[0]
        else:
            match = [a for a in in_subnet if a[0] == net["address"] and a[1] == subnet.prefixlen]
            if not match:
                have = ", ".join(f"{entry[0]}/{entry[1]}" for entry in present) or "no IPv4 address"
                problems.append(f"{where}: expected {net['address']}/{subnet.prefixlen}, has {have}")
                continue
            ip, plen, dynamic = match[0]
            # A second address in the subnet (a stale lease, a hand-added one) makes the
            # source address of the host's traffic a matter of luck.
            extra = [f"{entry[0]}/{entry[1]}" for entry in in_subnet if entry not in match]
            if extra:
                problems.append(f"{where}: unexpected {', '.join(extra)} besides {ip}/{plen}")
                continue
            if net.get("dhcp") and not dynamic:
                problems.append(f"{where}: {ip} is static, expected a DHCP lease")
                continue
        found.append(f"{net['interface']} {ip}/{plen}" + (" (DHCP)" if dynamic else ""))
    return _check("net_addresses", "addresses", "each network's address is on its interface", problems, ", ".join(found))


def check_vlans(model, links):
    """VLAN interfaces carry the profile's 802.1Q id on the right parent, read from the kernel."""
    problems, found = [], []
    for vlan in model.get("vlans", []):
        entry = links.get(vlan["name"])
        if entry is None:
            problems.append(f"{vlan['name']} does not exist (expected VLAN {vlan['id']} on {vlan['parent']})")
            continue
        info = entry.get("linkinfo", {})
        data = info.get("info_data", {})
        if info.get("info_kind") != "vlan":
            problems.append(f"{vlan['name']} is a {info.get('info_kind', 'plain')} link, not a VLAN")
            continue
        if data.get("id") != vlan["id"]:
            problems.append(f"{vlan['name']}: VLAN id {data.get('id')}, expected {vlan['id']} (network {vlan['network']})")
        if entry.get("link") != vlan["parent"]:
            problems.append(f"{vlan['name']}: parent {entry.get('link')}, expected {vlan['parent']}")
        if data.get("protocol", "802.1Q") != "802.1Q":
            problems.append(f"{vlan['name']}: protocol {data.get('protocol')}, expected 802.1Q")
        found.append(f"{vlan['name']} id {data.get('id')} on {entry.get('link')}")
    return _check("net_vlan_ids", "vlans", "VLAN ids and parents as the kernel reports them", problems, ", ".join(found))


def check_routes(model, routes):
    """Each subnet is routed through its own network's interface, and through no other."""
    problems, found = [], []
    for net in model["networks"].values():
        devs = sorted({r.get("dev") for r in routes or [] if r.get("dst") == net["subnet"]})
        if devs != [net["interface"]]:
            problems.append(f"{net['subnet']} ({net['name']}) via {', '.join(devs) or 'no interface'}, expected {net['interface']}")
        else:
            found.append(f"{net['subnet']} via {net['interface']}")
    return _check("net_routes", "routes", "each network's subnet is routed via its own interface", problems, ", ".join(found))


def check_isolation(model, addrs):
    """No address of one network on another network's interface (n3x's cross-contamination check)."""
    by_if = addresses_by_interface(addrs)
    networks = list(model["networks"].values())
    problems = []
    for net in networks:
        subnet = ipaddress.ip_network(net["subnet"])
        for ifname, entries in by_if.items():
            if ifname == net["interface"]:
                continue
            for ip, plen, _dynamic in entries:
                if ipaddress.ip_address(ip) in subnet:
                    problems.append(f"{ip}/{plen} of network {net['name']} ({subnet}) is on {ifname}, not {net['interface']}")
    distinct = {net["interface"] for net in networks}
    message = ("no network's address on another's interface" if len(distinct) > 1
               else f"all networks share {networks[0]['interface']}; no address of theirs elsewhere")
    return _check("net_isolation", "isolation", "addresses of each network stay on its own interface", problems, message)


def check_link_local(model, addrs):
    """The cluster interface keeps an IPv6 link-local address: EXO discovers peers by multicast there."""
    name = model["cluster_interface"]
    usable, duplicate = link_local_addresses(addrs).get(name, ([], []))
    if usable:
        problems = []
    elif duplicate:
        problems = [f"{name} has no usable IPv6 link-local address: {', '.join(duplicate)} is a duplicate (DAD failed)"]
    else:
        problems = [f"{name} has no IPv6 link-local address"]
    return _check("net_cluster_link_local", "addresses", "the cluster interface has an IPv6 link-local address",
                  problems, f"{name} {usable[0]}" if usable else "")


def check_bond(model, links):
    """Mode, members, primary, active member and MII polling, as the kernel reports them."""
    bond = model["bond"]
    entry = links.get(bond["name"])
    if entry is None:
        return _check("net_bond", "bond", "the bond runs as the profile says", [f"{bond['name']} does not exist"], "")
    data = entry.get("linkinfo", {}).get("info_data", {})
    problems = []
    if entry.get("linkinfo", {}).get("info_kind") != "bond":
        problems.append(f"{bond['name']} is not a bond")
    if data.get("mode") != bond["mode"]:
        problems.append(f"mode {data.get('mode')}, expected {bond['mode']}")
    members = sorted(name for name, link in links.items() if link.get("master") == bond["name"])
    if members != sorted(bond["members"]):
        problems.append(f"members {', '.join(members) or 'none'}, expected {', '.join(sorted(bond['members']))}")
    for key in ("miimon", "updelay", "downdelay"):
        if data.get(key) != bond[key]:
            problems.append(f"{key} {data.get(key)}, expected {bond[key]}")
    # The model's names, and the names ip -d -j link prints them under (iproute2 calls
    # the LACP rate ad_lacp_rate).
    for key, kernel_key in (("lacp_rate", "ad_lacp_rate"), ("xmit_hash_policy", "xmit_hash_policy")):
        if bond.get(key) and data.get(kernel_key) != bond[key]:
            problems.append(f"{key} {data.get(kernel_key)}, expected {bond[key]}")
    # In another mode the kernel has no primary or active member; the wrong mode is the cause.
    if bond.get("primary") and data.get("mode") == bond["mode"]:
        if data.get("primary") != bond["primary"]:
            problems.append(f"primary {data.get('primary')}, expected {bond['primary']}")
        # With every member up, active-backup must be using the primary.
        all_up = all("LOWER_UP" in links.get(m, {}).get("flags", []) for m in bond["members"])
        if bond["mode"] == "active-backup" and all_up and data.get("active_slave") != bond["primary"]:
            problems.append(f"active member {data.get('active_slave')}, expected the primary {bond['primary']}")
    ok = (f"{bond['name']} {data.get('mode')} over {', '.join(members)}, miimon {data.get('miimon')} ms"
          + (f", primary {data.get('primary')}, active {data.get('active_slave')}" if data.get("active_slave") else ""))
    return _check("net_bond", "bond", "the bond runs as the profile says", problems, ok)


# Bits of an LACP port state (IEEE 802.1AX): the partner agrees on the aggregation and
# is in sync, collecting and distributing on the port.
LACP_PARTNER_READY = {"sync": 0x08, "collecting": 0x10, "distributing": 0x20}
NO_PARTNER_MAC = "00:00:00:00:00:00"


def check_lacp(model, links):
    """An 802.3ad bond has an LACP partner, and every member is in its active aggregator.

    Without a partner (a plain Linux bridge, or switch ports without LACP) the kernel still
    brings the bond up on one member: it carries traffic but aggregates nothing, so this
    check fails instead of letting the bond pass as the profile asked.
    """
    bond = model["bond"]
    data = (links.get(bond["name"], {}).get("linkinfo") or {}).get("info_data") or {}
    info = data.get("ad_info") or {}
    partner = info.get("partner_mac") or NO_PARTNER_MAC
    problems = []
    if partner == NO_PARTNER_MAC:
        problems.append(f"{bond['name']} has no LACP partner (partner MAC {partner}): the other end does not "
                        f"speak LACP (a plain Linux bridge, or switch ports without an LACP group), so "
                        f"{bond['name']} runs on one member and aggregates nothing")
    else:
        for name in sorted(bond["members"]):
            slave = (links.get(name, {}).get("linkinfo") or {}).get("info_slave_data") or {}
            if slave.get("ad_aggregator_id") != info.get("aggregator"):
                problems.append(f"{name} is in aggregator {slave.get('ad_aggregator_id')}, not the active "
                                f"{info.get('aggregator')} (its partner differs from {partner})")
                continue
            state = slave.get("ad_partner_oper_port_state") or 0
            missing = [flag for flag, bit in LACP_PARTNER_READY.items() if not state & bit]
            if missing:
                problems.append(f"{name}: the partner is not {', '.join(missing)} (port state {state})")
    return _check("net_bond_lacp", "bond", "the 802.3ad bond has an LACP partner on every member", problems,
                  f"{bond['name']}: partner {partner}, aggregator {info.get('aggregator')} with "
                  f"{info.get('num_ports')} ports")


def bond_state(links, name):
    """The running state of bond ``name`` from ``ip -d -j link`` output, or None if it is not a bond.

    Members carry their permanent MAC: in active-backup every member takes the bond's
    address, so the permanent one is how a hypervisor or switch port knows the NIC.
    """
    entry = index_links(links).get(name)
    if entry is None or (entry.get("linkinfo") or {}).get("info_kind") != "bond":
        return None
    data = entry["linkinfo"].get("info_data") or {}
    members = []
    for link in links:
        if link.get("master") != name:
            continue
        slave = (link.get("linkinfo") or {}).get("info_slave_data") or {}
        members.append({
            "name": link["ifname"],
            "perm_hwaddr": slave.get("perm_hwaddr") or link.get("permaddr") or link.get("address"),
            "state": slave.get("state"),
            "mii_status": slave.get("mii_status"),
            "carrier": "LOWER_UP" in link.get("flags", []),
            "link_failure_count": slave.get("link_failure_count"),
        })
    return {
        "name": name,
        "mode": data.get("mode"),
        "active": data.get("active_slave"),
        "primary": data.get("primary"),
        "primary_reselect": data.get("primary_reselect"),
        "miimon": data.get("miimon"),
        "updelay": data.get("updelay"),
        "downdelay": data.get("downdelay"),
        "members": members,
    }


def peer_targets(models, host):
    """Every peer's address on every network of ``host``: what the mesh ping reaches.

    Returns [{network, peer, address, interface, vlan, peer_vlan, mtu}], interface being
    this host's interface for that network and mtu the smaller of the two ends' MTUs (the
    largest packet the path must carry). Peers without a known address (DHCP without an
    expected lease) are left out.
    """
    own = models[host]
    targets = []
    for net_name, net in own["networks"].items():
        for peer, model in models.items():
            peer_net = model["networks"].get(net_name)
            if peer == host or not peer_net or not peer_net.get("address"):
                continue
            targets.append({"network": net_name, "peer": peer, "address": peer_net["address"], "interface": net["interface"],
                            "vlan": net.get("vlan"), "peer_vlan": peer_net.get("vlan"),
                            "mtu": min(net.get("mtu") or 1500, peer_net.get("mtu") or 1500)})
    return targets


def check_neighbours(model, neighbours, targets):
    """After the mesh ping, each peer's address was learned on its network's interface only."""
    problems, found = [], 0
    for target in targets:
        # The kernel reports a link-layer address only for resolved entries: INCOMPLETE and
        # FAILED ones (an ARP request nobody answered) have none and learned nothing.
        devs = sorted({n.get("dev") for n in neighbours or []
                       if n.get("dst") == target["address"] and n.get("lladdr")})
        if devs != [target["interface"]]:
            problems.append(f"{target['peer']} {target['address']} ({target['network']}) learned on "
                            f"{', '.join(devs) or 'no interface'}, expected {target['interface']}")
        else:
            found += 1
    return _check("net_neighbours", "isolation", "peers' addresses are learned on the right interface", problems,
                  f"{found} peer address(es) learned on their network's interface")


def check_vlan_agreement(model, targets):
    """Every host tags a network with the profile's VLAN id.

    Hosts on one subnet with different tags are cut off from each other. A host override
    is legal data (profiles/vlans-broken.yml), so this check names which host uses which id
    against which expected. It compares what each host was configured with; that the kernel
    runs what was configured is net_vlan_ids' job, on every host.
    """
    problems, found = [], []
    host = model.get("host", "this host")
    for name, net in sorted(model["networks"].items()):
        expected = net.get("profile_vlan")
        if expected is None:
            continue
        if net["vlan"] != expected:
            problems.append(f"{host} tags network {name} with VLAN {net['vlan']} ({net['interface']}), "
                            f"expected {expected} (networks.{name}.vlan)")
        else:
            found.append(f"{name} {expected}")
    for target in targets or []:
        if target.get("peer_vlan") != target.get("vlan"):
            problems.append(f"peer {target['peer']} tags network {target['network']} with VLAN {target['peer_vlan']}, "
                            f"{host} with {target['vlan']}: they cannot reach each other")
    return _check("net_vlan_agreement", "vlans", "every host tags each network with the profile's VLAN id", problems,
                  f"{host} and its peers agree: " + ", ".join(found))


def network_checks(model, state, targets=None):
    """All checks of one host's state; the neighbour check only when the ping targets are given."""
    links = index_links(state.get("links"))
    checks = [
        check_links(model, links),
        check_mtu(model, links),
        check_addresses(model, state.get("addrs")),
        check_link_local(model, state.get("addrs")),
        check_routes(model, state.get("routes")),
        check_isolation(model, state.get("addrs")),
    ]
    if model.get("vlans"):
        checks.append(check_vlans(model, links))
        checks.append(check_vlan_agreement(model, targets))
    if model.get("bond"):
        checks.append(check_bond(model, links))
        if model["bond"]["mode"] == "802.3ad":
            checks.append(check_lacp(model, links))
    if targets is not None:
        checks.append(check_neighbours(model, state.get("neigh"), targets))
    return checks
