# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a host's network model (docs/network.md) to systemd-networkd files or netplan YAML.

Both renderers read the same per-interface plan (``interface_plan``), so the two outputs
cannot drift apart in what they decide, only in how they spell it; the unit tests run
``netplan generate`` on the YAML and compare its networkd files with ours.

Settings that matter, and why:

* Every address interface gets ``IPv6AcceptRA=no``: the lab has no IPv6 routers, and a
  rogue or stray RA must not add addresses or a default route behind the model's back.
* IPv6 link-local stays on the cluster interface only (EXO finds its peers by IPv6
  multicast there); elsewhere ``LinkLocalAddressing=no`` keeps the interfaces free of
  addresses the model does not name, which validation's isolation check relies on.
* Interfaces without an address of their own (bond members, VLAN trunk parents) never
  reach networkd's "degraded" operational state, so ``RequiredForOnline=no`` keeps
  systemd-networkd-wait-online from waiting for them until it times out at boot.
* Nothing here needs Python beyond the standard library: module_utils may be shipped to
  a target, so the YAML is written by hand (its values are names, addresses and numbers).
"""

from __future__ import annotations

import re

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError

# systemd-networkd uses the first .network file, in lexical order, that matches a link.
# Debian's cloud images ship a catch-all such as 90-*.network (DHCP on every ethernet);
# a 10- prefix puts ours first, so the catch-all never configures our interfaces.
DEFAULT_PREFIX = "10-aicluster"

_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class NetworkRenderError(InputError):
    """The input is not a host model this module can render."""


def _header(model, comment="#"):
    return (
        f"{comment} Managed by aicluster.lab (profile {model.get('profile', '?')}, "
        f"host {model.get('host', '?')}); changes are overwritten.\n"
    )


def _check_model(model):
    if not isinstance(model, dict):
        raise NetworkRenderError(f"the host model must be a dict, got {type(model).__name__}")
    missing = [key for key in ("links", "networks", "interfaces") if key not in model]
    if missing:
        raise NetworkRenderError(f"host model of {model.get('host', '?')}: missing {', '.join(missing)}")


def interface_plan(model):
    """What each interface of the model needs, in the model's interface order (parents first).

    Returns a list of dicts: name, kind (ether, bond, vlan), mtu, bond (the bond's settings,
    for the bond), vlan_id and vlan_parent (for VLANs), member_of and primary (for bond
    members), vlans (the VLANs it carries), addresses (ip/prefix), gateways, dhcp,
    link_local, networks (their names), required_for_online and without_carrier.
    """
    _check_model(model)
    links = {link["name"]: link for link in model.get("links") or []}
    bond = model.get("bond") or None
    vlans = {vlan["name"]: vlan for vlan in model.get("vlans") or []}
    networks = list((model.get("networks") or {}).values())

    plan = []
    for name in model["interfaces"]:
        if bond and name == bond["name"]:
            kind, device = "bond", bond
        elif name in vlans:
            kind, device = "vlan", vlans[name]
        elif name in links:
            kind, device = "ether", links[name]
        else:
            raise NetworkRenderError(
                f"host model of {model.get('host', '?')}: interfaces: {name!r} is neither a link, the bond nor a VLAN"
            )
        carried = [net for net in networks if net.get("interface") == name]
        member_of = device.get("bond") if kind == "ether" else None
        mtu = device.get("mtu")
        if mtu is None:
            # The model's MTUs are effective values; a device entry without one falls back
            # to its network's, so an address interface still gets the MTU the model names.
            mtu = next((net["mtu"] for net in carried if net.get("mtu") is not None), None)
        entry = {
            "name": name,
            "kind": kind,
            "mtu": mtu,
            "bond": bond if kind == "bond" else None,
            "vlan_id": device.get("id") if kind == "vlan" else None,
            "vlan_parent": device.get("parent") if kind == "vlan" else None,
            "member_of": member_of,
            "primary": bool(member_of and bond and bond.get("primary") == name),
            "vlans": [vlan_name for vlan_name, vlan in vlans.items() if vlan.get("parent") == name],
            # With DHCP the model's address is the lease it expects, not one to configure.
            "addresses": [f"{net['address']}/{net['prefix']}" for net in carried if not net.get("dhcp") and net.get("address")],
            "gateways": [net["gateway"] for net in carried if net.get("gateway")],
            "dhcp": any(net.get("dhcp") for net in carried),
            "link_local": any(
                net.get("link_local", net.get("interface") == model.get("cluster_interface")) for net in carried
            ),
            "networks": [net.get("name") for net in carried],
        }
        # No address of its own: a bond member, or a trunk that only carries VLANs.
        entry["required_for_online"] = bool(carried)
        # Bonds and VLANs take their carrier from the devices below them: configuring them
        # regardless (and keeping their addresses when the carrier goes, networkd's
        # IgnoreCarrierLoss follows this setting) keeps a failover or a flapping member
        # from dropping and re-adding the cluster addresses. netplan sets the same on every
        # virtual device. A physical trunk gets it too: it has nothing to lose, and its
        # VLANs are then configured without waiting for its carrier.
        entry["without_carrier"] = kind in ("bond", "vlan") or (not carried and not member_of and bool(entry["vlans"]))
        plan.append(entry)
    return plan


def _ms(value):
    return f"{int(value)}ms"


def _ini(model, sections):
    """An INI text from [(section, [(key, value), ...]), ...]; empty sections are left out."""
    parts = [_header(model).rstrip("\n")]
    for section, items in sections:
        if not items:
            continue
        parts.append("")
        parts.append(f"[{section}]")
        parts.extend(f"{key}={value}" for key, value in items)
    return "\n".join(parts) + "\n"


def _netdev(model, entry):
    netdev = [("Name", entry["name"]), ("Kind", entry["kind"])]
    if entry["mtu"] is not None:
        netdev.append(("MTUBytes", entry["mtu"]))
    sections = [("NetDev", netdev)]
    if entry["kind"] == "vlan":
        sections.append(("VLAN", [("Id", entry["vlan_id"])]))
    else:
        bond = entry["bond"]
        params = [("Mode", bond["mode"])]
        # PrimaryReselectPolicy is not written: the kernel's default, "always", makes the
        # primary active again as soon as it is back, which is what a preferred member means.
        if bond.get("miimon") is not None:
            params.append(("MIIMonitorSec", _ms(bond["miimon"])))
        if bond.get("updelay") is not None:
            params.append(("UpDelaySec", _ms(bond["updelay"])))
        if bond.get("downdelay") is not None:
            params.append(("DownDelaySec", _ms(bond["downdelay"])))
        if bond.get("lacp_rate"):
            params.append(("LACPTransmitRate", bond["lacp_rate"]))
        if bond.get("xmit_hash_policy"):
            params.append(("TransmitHashPolicy", bond["xmit_hash_policy"]))
        sections.append(("Bond", params))
    return _ini(model, sections)


def _network(model, entry):
    link = []
    if entry["mtu"] is not None:
        link.append(("MTUBytes", entry["mtu"]))
    if not entry["required_for_online"]:
        link.append(("RequiredForOnline", "no"))

    network = []
    if entry["member_of"]:
        network.append(("Bond", entry["member_of"]))
        if entry["primary"]:
            # systemd 252 spells it PrimarySlave= (PrimaryMember= is not there yet).
            network.append(("PrimarySlave", "true"))
    network.extend(("Address", address) for address in entry["addresses"])
    network.extend(("Gateway", gateway) for gateway in entry["gateways"])
    if entry["dhcp"]:
        network.append(("DHCP", "ipv4"))
    network.append(("LinkLocalAddressing", "ipv6" if entry["link_local"] else "no"))
    network.append(("IPv6AcceptRA", "no"))
    if entry["without_carrier"]:
        network.append(("ConfigureWithoutCarrier", "yes"))
    network.extend(("VLAN", vlan) for vlan in entry["vlans"])

    dhcp = []
    if entry["dhcp"]:
        dhcp = [
            # Identify by MAC, not by networkd's DUID (which follows the machine id): the
            # server's fixed lease is tied to the NIC's MAC, so a re-created node gets it back.
            ("ClientIdentifier", "mac"),
            # Routes and a default gateway come from the model, not from the server: a
            # DHCP router on a lab network would add a second default route beside the
            # management network's. The subnet's own route comes with the address anyway.
            ("UseRoutes", "no"),
            # The MTU comes from the model too (networkd's default, written to be plain).
            ("UseMTU", "no"),
        ]
    return _ini(model, [("Match", [("Name", entry["name"])]), ("Link", link), ("Network", network), ("DHCPv4", dhcp)])


def render_networkd(model, prefix=DEFAULT_PREFIX):
    """systemd-networkd files for the host: {file name: content}, in the model's interface order.

    Bonds and VLANs get a .netdev and a .network, links a .network, each named
    ``<prefix>-<interface>.<suffix>``.
    """
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise NetworkRenderError(f"prefix: {prefix!r} is not a file name prefix like 10-aicluster")
    files = {}
    for entry in interface_plan(model):
        if entry["kind"] != "ether":
            files[f"{prefix}-{entry['name']}.netdev"] = _netdev(model, entry)
        files[f"{prefix}-{entry['name']}.network"] = _network(model, entry)
    return files


# YAML 1.1 reads these plain scalars as booleans or null; netplan's parser is YAML 1.1.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_PLAIN_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.+/-]*$")
_PLAIN_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}(/\d{1,2})?$")


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if (_PLAIN_WORD.match(text) and text.lower() not in _YAML_WORDS) or _PLAIN_IPV4.match(text):
        return text
    # A double-quoted YAML scalar with JSON's escapes is valid YAML.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml(value, indent):
    """Block YAML for dicts; lists of scalars as flow lists, lists of dicts as blocks."""
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{_scalar(key)}:")
            lines.extend(_yaml(item, indent + 1))
        elif isinstance(item, list) and item and all(isinstance(element, dict) for element in item):
            lines.append(f"{pad}{_scalar(key)}:")
            for element in item:
                inner = _yaml(element, indent + 2)
                lines.append(f"{pad}  - " + inner[0].lstrip())
                lines.extend(inner[1:])
        elif isinstance(item, list):
            lines.append(f"{pad}{_scalar(key)}: [{', '.join(_scalar(element) for element in item)}]")
        else:
            lines.append(f"{pad}{_scalar(key)}: {_scalar(item)}")
    return lines


def _netplan_interface(entry):
    config = {}
    if entry["mtu"] is not None:
        config["mtu"] = entry["mtu"]
    if entry["addresses"]:
        config["addresses"] = list(entry["addresses"])
    if entry["gateways"]:
        config["routes"] = [{"to": "default", "via": gateway} for gateway in entry["gateways"]]
    config["dhcp4"] = entry["dhcp"]
    if entry["dhcp"]:
        # The same choices as the networkd files' [DHCPv4] section, for the same reasons.
        config["dhcp-identifier"] = "mac"
        config["dhcp4-overrides"] = {"use-routes": False, "use-mtu": False}
    config["link-local"] = ["ipv6"] if entry["link_local"] else []
    config["accept-ra"] = False
    if not entry["required_for_online"]:
        config["optional"] = True  # netplan's spelling of RequiredForOnline=no
    if entry["without_carrier"]:
        config["ignore-carrier"] = True  # netplan's spelling of ConfigureWithoutCarrier=yes
    return config


def render_netplan(model):
    """netplan YAML (version 2, renderer networkd) for the same configuration as render_networkd."""
    plan = interface_plan(model)
    ethernets, bonds, vlans = {}, {}, {}
    for entry in plan:
        config = _netplan_interface(entry)
        if entry["kind"] == "ether":
            # Members are named by the bond's interfaces list; netplan writes their Bond=
            # and PrimarySlave= lines from the bond's side.
            ethernets[entry["name"]] = config
        elif entry["kind"] == "vlan":
            vlans[entry["name"]] = dict({"id": entry["vlan_id"], "link": entry["vlan_parent"]}, **config)
        else:
            bond = entry["bond"]
            members = [member["name"] for member in plan if member["member_of"] == entry["name"]]
            params = {"mode": bond["mode"]}
            if bond.get("primary"):
                params["primary"] = bond["primary"]
            # netplan reads bare numbers as milliseconds and writes them with "ms" for networkd.
            for key, field in (("mii-monitor-interval", "miimon"), ("up-delay", "updelay"), ("down-delay", "downdelay")):
                if bond.get(field) is not None:
                    params[key] = int(bond[field])
            if bond.get("lacp_rate"):
                params["lacp-rate"] = bond["lacp_rate"]
            if bond.get("xmit_hash_policy"):
                params["transmit-hash-policy"] = bond["xmit_hash_policy"]
            bonds[entry["name"]] = dict({"interfaces": members}, **config, parameters=params)
    network = {"version": 2, "renderer": "networkd"}
    for key, section in (("ethernets", ethernets), ("bonds", bonds), ("vlans", vlans)):
        if section:
            network[key] = section
    return _header(model) + "\n".join(_yaml({"network": network}, 0)) + "\n"


def render_summary(model):
    """One line about the host's network, for progress output."""
    _check_model(model)
    parts = []
    bond = model.get("bond")
    if bond:
        members = ", ".join(m + ("*" if m == bond.get("primary") else "") for m in bond.get("members") or [])
        detail = [bond["mode"]]
        if bond.get("lacp_rate"):
            detail.append(f"lacp {bond['lacp_rate']}")
        if bond.get("mtu") is not None:
            detail.append(f"mtu {bond['mtu']}")
        parts.append(f"{bond['name']} over {members} ({', '.join(detail)})")
    for net in (model.get("networks") or {}).values():
        how = "by DHCP, expecting " if net.get("dhcp") else ""
        where = net["interface"] + (f" (VLAN {net['vlan']})" if net.get("vlan") else "")
        mtu = f", mtu {net['mtu']}" if net.get("mtu") is not None else ""
        parts.append(f"{net['name']} {how}{net.get('address')}/{net.get('prefix')} on {where}{mtu}")
    return f"{model.get('host', '?')} ({model.get('profile', '?')}): " + "; ".join(parts)
