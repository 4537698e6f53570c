# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's RDMA state and what the rdma role does with it.

The role reads the host once with plain sh (roles/rdma/files/read-state.sh: os-release,
the packages, ``rdma link``, each device's sysfs: PCI vendor, driver, ports, GID table)
and everything below is decided here, on the controller:

- ``host_state``: that output as a dict;
- ``package_family`` / ``missing_packages``: which of the role's package lists applies
  (from os-release's ID and ID_LIKE) and what of it is not installed;
- ``device_kind``: a real adapter (NVIDIA/Mellanox ConnectX, Broadcom, Intel irdma, or
  another vendor) or a software device (rdma_rxe, siw);
- ``rdma_decision``: for the plan's RDMA endpoint, use the adapter under its netdev, or
  make a Soft-RoCE device there when the host has no adapter at all;
- ``select_gid``: the RoCE v2 GID holding the host's address on the RDMA network: the
  index every tool is pointed at (a VLAN's addresses are served by the device under it).
"""

from __future__ import annotations

import ipaddress
import json
import re

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.os_release import family_of, parse_os_release
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections


class RdmaInputError(InputError):
    """Output that is not what read-state.sh prints, or a plan the host cannot serve."""


# PCI vendor ids of RDMA adapters (the PCI ID repository's names), by what users call them.
VENDORS = {
    "0x15b3": "NVIDIA/Mellanox",   # ConnectX (mlx4, mlx5)
    "0x14e4": "Broadcom",          # NetXtreme-E (bnxt_re)
    "0x8086": "Intel",             # E810 / X722 (irdma)
    "0x1077": "Marvell/QLogic",    # FastLinQ (qedr)
    "0x19e5": "Huawei",            # hns
}
# Device names the kernel drivers give when udev renames nothing, for captures without sysfs.
_NAME_VENDORS = (("mlx", "NVIDIA/Mellanox"), ("bnxt_re", "Broadcom"), ("irdma", "Intel"), ("i40iw", "Intel"),
                 ("qedr", "Marvell/QLogic"), ("hns", "Huawei"))
SOFT_DRIVERS = ("rxe", "siw")

FAMILIES = {"debian": "Debian", "ubuntu": "Debian", "rhel": "RedHat", "centos": "RedHat", "fedora": "RedHat",
            "rocky": "RedHat", "almalinux": "RedHat", "ol": "RedHat"}

_LINK_TEXT = re.compile(r"^link (?P<dev>[^/\s]+)/(?P<port>\d+)\s+(?P<rest>.*)$")
_NULL_GID = "0000:0000:0000:0000:0000:0000:0000:0000"


def _fail(msg):
    raise RdmaInputError(msg)


def package_family(os_release):
    """'Debian' or 'RedHat' from os-release's ID, then ID_LIKE; None when neither is known."""
    return family_of(os_release, FAMILIES)


def parse_rdma_links(text):
    """``rdma -j link show`` (iproute2 5.x and later) or its text form: [{device, port, state, physical_state, netdev}]."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except ValueError as exc:
            _fail(f"rdma -j link show printed JSON that does not parse ({exc}): {text[:80]!r}")
        return [{"device": e.get("ifname"), "port": e.get("port"), "state": e.get("state"),
                 "physical_state": e.get("physical_state"), "netdev": e.get("netdev")} for e in entries]
    links = []
    for line in text.splitlines():
        match = _LINK_TEXT.match(line.strip())
        if not match:
            continue
        words = match.group("rest").split()
        attrs = dict(zip(words[::2], words[1::2]))
        links.append({"device": match.group("dev"), "port": int(match.group("port")), "state": attrs.get("state"),
                      "physical_state": attrs.get("physical_state"), "netdev": attrs.get("netdev")})
    if not links:
        _fail(f"rdma link show printed no link line: {text[:120]!r}")
    return links


def _parse_devices(text):
    """The 'devices' section: 'device <name>' then '<key> <value>' lines, 'port' and 'gid' lines."""
    devices, device = [], None
    for line in (text or "").splitlines():
        words = line.split()
        if not words:
            continue
        key, rest = words[0], words[1:]
        if key == "device":
            device = {"name": rest[0], "ports": {}}
            devices.append(device)
        elif device is None:
            _fail(f"device section: {line!r} comes before any 'device' line")
        elif key == "port":
            # port <n> state <4: ACTIVE> phys <5: LinkUp> link_layer <Ethernet>
            match = re.match(r"port (\d+) state (.*) phys (.*) link_layer (\S*)$", line.strip())
            if not match:
                _fail(f"device {device['name']}: cannot read port line {line!r}")
            device["ports"][int(match.group(1))] = {
                "state": match.group(2).split(":")[-1].strip(), "physical_state": match.group(3).split(":")[-1].strip(),
                "link_layer": match.group(4), "gids": []}
        elif key == "gid":
            # gid <port> <index> <gid> <ndev or -> <type, may hold spaces>
            if len(rest) < 4:
                _fail(f"device {device['name']}: cannot read GID line {line!r}")
            blank = {"state": None, "physical_state": None, "link_layer": None, "gids": []}
            port = device["ports"].setdefault(int(rest[0]), blank)
            port["gids"].append({"index": int(rest[1]), "gid": rest[2], "ndev": None if rest[3] == "-" else rest[3],
                                 "type": " ".join(rest[4:]) or None})
        else:
            device[key] = " ".join(rest) or None
    return devices


def host_state(text):
    """The output of roles/rdma/files/read-state.sh as a dict."""
    found = sections(text)
    missing = [name for name in ("os_release", "packages", "rdma_link", "devices") if name not in found]
    if missing:
        _fail(f"the host's state lacks the section(s) {', '.join(missing)}: not the output of the rdma role's "
              f"read-state.sh (it starts with {(text or '').strip()[:80]!r})")
    packages = {}
    for line in found["packages"].splitlines():
        words = line.split()
        if len(words) >= 2:
            # dpkg's db:Status-Abbrev 'ii' is installed; rpm lines say ii or un the same way.
            packages[words[0]] = words[1] == "ii"
    links_text = found["rdma_link"]
    tools = {}
    for line in found.get("tools", "").splitlines():
        name, _sep, path = line.partition(" ")
        if name:
            tools[name] = path.strip() or None
    return {
        "os_release": parse_os_release(found["os_release"]),
        "packages": packages,
        # No rdma tool (iproute2 too old, or absent) is a state too: no links known.
        "links": [] if "command not found" in links_text or "not found" in links_text.lower()[:60]
        else parse_rdma_links(links_text),
        "devices": _parse_devices(found["devices"]),
        "modules": found.get("modules", "").split(),
        "tools": tools,
        "unit": dict(zip(("enabled", "active"), (found.get("unit", "").split() + ["", ""])[:2])),
    }


def missing_packages(state, packages_by_family):
    """(family, the family's packages, those not installed); family None when os-release names none we know."""
    family = package_family(state["os_release"])
    if family is None:
        os_id = state["os_release"].get("ID", "?")
        _fail(f"os-release ID {os_id!r} (ID_LIKE {state['os_release'].get('ID_LIKE', '')!r}) is not a distribution "
              f"the rdma role has packages for ({', '.join(sorted(packages_by_family))}); set rdma_packages")
    wanted = list(packages_by_family.get(family) or [])
    return family, wanted, [name for name in wanted if not state["packages"].get(name)]


def device_kind(device):
    """{kind: 'soft'|'adapter', vendor, driver} of a device from read-state.sh."""
    driver = device.get("driver")
    name = device["name"]
    # rdma_rxe and siw devices have a 'parent' netdev in sysfs and no PCI device.
    if device.get("parent") and not device.get("pci_vendor"):
        return {"kind": "soft", "vendor": None, "driver": "siw" if name.startswith("siw") else "rdma_rxe"}
    vendor = VENDORS.get((device.get("pci_vendor") or "").lower())
    if vendor is None and device.get("pci_vendor"):
        vendor = f"PCI vendor {device['pci_vendor']}"
    if vendor is None:
        vendor = next((v for prefix, v in _NAME_VENDORS if name.startswith(prefix)), None)
    if vendor is None and name.startswith(SOFT_DRIVERS):
        return {"kind": "soft", "vendor": None, "driver": "siw" if name.startswith("siw") else "rdma_rxe"}
    return {"kind": "adapter", "vendor": vendor or "unknown vendor", "driver": driver}


def rdma_decision(state, endpoint):
    """What the role does for the plan's RDMA endpoint on this host.

    {action: 'adapter'|'soft_roce', device, netdev, vendor, adapters: [...]}: the adapter
    whose port carries the endpoint's netdev (or its interface), else a Soft-RoCE device
    named ``endpoint.device`` on the netdev when the host has no adapter at all. A host
    with adapters, none of them under the network, is refused: Soft-RoCE beside real
    hardware would hide a cabling or configuration fault.
    """
    netdevs = {endpoint["netdev"], endpoint["interface"]}
    kinds = {device["name"]: device_kind(device) for device in state["devices"]}
    adapters = [name for name, kind in kinds.items() if kind["kind"] == "adapter"]
    link_netdev = {link["device"]: link.get("netdev") for link in state["links"]}
    on_network = [name for name in adapters if link_netdev.get(name) in netdevs]
    if on_network:
        name = on_network[0]
        return {"action": "adapter", "device": name, "netdev": link_netdev[name], "vendor": kinds[name]["vendor"],
                "driver": kinds[name]["driver"], "adapters": adapters}
    if adapters:
        where = ", ".join(f"{name} ({link_netdev.get(name) or 'no netdev'})" for name in adapters)
        _fail(f"the host has RDMA adapter(s) {where} but none on {endpoint['netdev']}, the device under network "
              f"{endpoint['network']} ({endpoint['interface']}); put the network on the adapter's port, or name "
              "the adapter's netdev in the profile")
    if endpoint["device"] in kinds and kinds[endpoint["device"]]["kind"] != "soft":
        _fail(f"rdma.device {endpoint['device']!r} is an adapter's name on this host; choose another Soft-RoCE name")
    return {"action": "soft_roce", "device": endpoint["device"], "netdev": endpoint["netdev"], "vendor": None,
            "driver": "rdma_rxe", "adapters": []}


def _gid_address(gid):
    """The IP address a RoCE GID holds: IPv4-mapped or IPv6."""
    try:
        address = ipaddress.IPv6Address(gid)
    except ValueError:
        return None
    return address.ipv4_mapped or address


def select_gid(state, device, address, port=1):
    """The GID entry of ``device`` that holds ``address`` (RoCE v2 before v1), or None.

    rdma_rxe on a bond serves each VLAN's addresses on top of it through its own GID
    entries (measured: bond0.100's 192.168.100.11 as ::ffff:c0a8:640b, ndev bond0.100),
    so the index differs per host and per network; tools must be given it.
    """
    entry = next((d for d in state["devices"] if d["name"] == device), None)
    if entry is None:
        return None
    wanted = ipaddress.ip_address(address)
    found = [gid for gid in (entry["ports"].get(port) or {}).get("gids", [])
             if gid["gid"] != _NULL_GID and _gid_address(gid["gid"]) == wanted]
    found.sort(key=lambda gid: (gid.get("type") != "RoCE v2", gid["index"]))
    if not found:
        return None
    return dict(found[0], address=str(wanted))


def port_of(state, device, port=1):
    entry = next((d for d in state["devices"] if d["name"] == device), None)
    return None if entry is None else entry["ports"].get(port)
