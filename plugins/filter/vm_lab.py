# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the vm_lab role: stable identities and the per-node specs.

Identities are derived from names rather than stored: a node that is torn down and
created again gets the same UUID and MACs, so its saved boot state, its DHCP lease
and its known_hosts entry stay valid.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid

from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.module_utils.mac import unicast_mac
from ansible_collections.aicluster.lab.plugins.module_utils.names import IFNAMSIZ, lab_node_name

# uuid5 namespace for lab domains; any fixed value works, this one is ours.
_LAB_NAMESPACE = uuid.UUID("6f1d3c52-4e0b-5a55-9a8e-2b1f5c0a7d31")
# What a lab writes as the owner into each of its domains' metadata (libvirt_domain's owner):
# the lab's name after this, so two labs on one host never touch each other's domains.
_OWNER_PREFIX = "aicluster.lab/"


def _seed_text(seed, filter_name):
    if not isinstance(seed, str) or not seed:
        raise AnsibleFilterError(f"{filter_name}: the seed must be a non-empty string, got {seed!r}")
    return seed


def lab_mac(seed):
    """A locally administered unicast MAC in QEMU's 52:54:00 block, from a seed string."""
    digest = hashlib.sha256(_seed_text(seed, "lab_mac").encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


def lab_uuid(seed):
    """A name-based (version 5) UUID from a seed string."""
    return str(uuid.uuid5(_LAB_NAMESPACE, _seed_text(seed, "lab_uuid")))


def lab_owner(name):
    """The owner a lab named ``name`` writes into its domains, and requires of a domain it touches."""
    if not isinstance(name, str) or not name:
        raise AnsibleFilterError(f"lab_owner: the lab's name must be a non-empty string, got {name!r}")
    return _OWNER_PREFIX + name


def _positive_int(host, field, value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(number) != str(value).strip():
        raise AnsibleFilterError(f"host {host}: {field}: {value!r} is not a positive whole number")
    return number


def _model(plan_hosts, host):
    """The host's network model in the run's plan, or None."""
    return ((plan_hosts or {}).get(host) or {}).get("network")


def lab_node_specs(hosts, hostvars, lab, plan_hosts=None):
    """Turn the inventory's lab nodes into the specs the vm_lab role provisions.

    ``lab`` carries the role's settings: name, mgmt_network, mgmt_address,
    node_nics, vcpus, memory_mib, kernel_cmdline, image_key and snapshot_dir (the lab's
    directory of saved boot states). Per-host inventory
    variables (vm_lab_vcpus, vm_lab_memory_mib, vm_lab_node_nics) override them.
    Every error names the host, the field and the value, and comes before any change.
    """
    if not hosts:
        raise AnsibleFilterError("vm_lab_group: the inventory group has no hosts; a lab needs at least one node")
    try:
        mgmt = ipaddress.ip_interface(str(lab["mgmt_address"]))
        if "/" not in str(lab["mgmt_address"]) or mgmt.network.num_addresses < 4:
            raise ValueError("no room for nodes")
    except ValueError:
        raise AnsibleFilterError(f"vm_lab_mgmt_address: {lab['mgmt_address']!r} is not an address with a prefix, like 192.168.150.1/24")

    specs = []
    used_ips = {str(mgmt.ip): "the host side of " + lab["mgmt_network"]}
    used_macs = {}  # MAC -> which node's NIC: no MAC twice in the lab, whichever way it was set
    for host in hosts:
        hv = hostvars[host]
        model = _model(plan_hosts, host)
        try:
            lab_node_name(host)
        except ValueError as exc:
            raise AnsibleFilterError(f"host {host}: inventory_hostname: {exc}") from None
        address = hv.get("ansible_host")
        if address is None:
            raise AnsibleFilterError(f"host {host}: ansible_host: not set; each lab node needs its management address")
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            raise AnsibleFilterError(f"host {host}: ansible_host: {address!r} is not an IP address")
        if ip not in mgmt.network or ip in (mgmt.network.network_address, mgmt.network.broadcast_address):
            raise AnsibleFilterError(f"host {host}: ansible_host: {ip} is not a usable address of the management network {mgmt.network}")
        if str(ip) in used_ips:
            raise AnsibleFilterError(f"host {host}: ansible_host: {ip} is already used by {used_ips[str(ip)]}")
        used_ips[str(ip)] = "host " + host

        if "vm_lab_node_nics" in hv:
            node_nics = hv["vm_lab_node_nics"]
            if model:
                # Every NIC the model configures must exist on the domain.
                needed = len(lab_profile_nics(model, lab))
                if not isinstance(node_nics, list) or len(node_nics) < needed:
                    raise AnsibleFilterError(
                        f"host {host}: vm_lab_node_nics: {node_nics!r} gives {len(node_nics) if isinstance(node_nics, list) else 0} "
                        f"NIC(s) after eth0, but its network profile {model['profile']} uses eth1..eth{needed}")
        elif model:
            node_nics = lab_profile_nics(model, lab)
        else:
            node_nics = lab["node_nics"]
        nics = [_nic(host, entry) for entry in _nic_list(host, node_nics)]
        seed = f"{lab['name']}/{host}"
        spec = {
            "host": host,
            "domain": f"{lab['name']}-{host}",
            "uuid": lab_uuid(seed),
            "ip": str(ip),
            "vcpus": _positive_int(host, "vm_lab_vcpus", hv.get("vm_lab_vcpus", lab["vcpus"])),
            "memory_mib": _positive_int(host, "vm_lab_memory_mib", hv.get("vm_lab_memory_mib", lab["memory_mib"])),
            "cmdline": f"{lab['kernel_cmdline']} systemd.hostname={host}",
            # The overlay is named after the image it is built on: a new image gets a
            # new overlay instead of running on a disk whose backing file is stale.
            "disk_name": f"{host}-{lab['image_key'][:16]}.qcow2" if lab["image_key"] else f"{host}.qcow2",
            "nics": [{"network": lab["mgmt_network"], "mac": lab_mac(f"{seed}/0")}]
            + [{"network": nic["network"], "mac": nic["mac"] or lab_mac(f"{seed}/{index}")}
               for index, nic in enumerate(nics, start=1)],
        }
        for index, nic in enumerate(spec["nics"]):
            field = f"eth{index}.mac"
            try:
                nic["mac"] = unicast_mac(nic["mac"])
            except ValueError as exc:
                raise AnsibleFilterError(f"host {host}: {field}: {exc}")
            if nic["mac"] in used_macs:
                raise AnsibleFilterError(f"host {host}: {field}: {nic['mac']} is already used by {used_macs[nic['mac']]}")
            used_macs[nic["mac"]] = f"host {host} (eth{index})"
        spec.update(_hardware(host, hv))
        if spec.get("iommu"):
            # The guest kernel leaves an emulated Intel IOMMU off unless told (Debian's default).
            spec["cmdline"] += " intel_iommu=on"
        # The snapshot key covers everything the saved memory state depends on.
        fingerprint = json.dumps([lab["image_key"], spec], sort_keys=True)
        spec["snapshot_key"] = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        # Where the node's domain comes from and where its saved boot state (memory.save,
        # disk.qcow2, hostkey.pub) lives; added after the key, which they do not change.
        spec["owner"] = lab_owner(lab["name"])
        spec["snapshot"] = f"{lab['snapshot_dir']}/{host}-{spec['snapshot_key']}"
        specs.append(spec)
    return specs


_MACHINES = ("pc", "q35")
_VIDEO_MODELS = ("vga", "virtio", "bochs", "qxl", "cirrus")


def _hardware(host, hv):
    """The node's machine type, emulated IOMMU and display devices, when the host asks for them.

    Only what differs from the plain PC (pc, no IOMMU, no display) enters the spec, so the
    specs, and the snapshot keys of labs that ask for none of it, stay as they were.
    """
    machine = hv.get("vm_lab_machine", "pc")
    if machine not in _MACHINES:
        raise AnsibleFilterError(f"host {host}: vm_lab_machine: {machine!r} is not one of {', '.join(_MACHINES)}")
    iommu = hv.get("vm_lab_iommu", False)
    if not isinstance(iommu, bool):
        raise AnsibleFilterError(f"host {host}: vm_lab_iommu: {iommu!r} is not true or false")
    if iommu and machine != "q35":
        raise AnsibleFilterError(f"host {host}: vm_lab_iommu: true needs vm_lab_machine q35, not {machine!r}")
    video = hv.get("vm_lab_video", [])
    if not isinstance(video, list) or any(model not in _VIDEO_MODELS for model in video):
        raise AnsibleFilterError(
            f"host {host}: vm_lab_video: {video!r} must be a list of display models from {', '.join(_VIDEO_MODELS)}")
    wanted = {"machine": machine, "iommu": iommu, "video": list(video)}
    return {key: value for key, value in wanted.items() if value and value != "pc"}


def _dhcp_plan(network, leases, field, network_label):
    """A fixed lease per node, and a small dynamic range at the top of the subnet.

    The range only serves a guest whose MAC is not listed; node addresses inside it
    are rejected so a stranger can never be handed a node's address.
    """
    size = min(16, network.num_addresses // 4)
    start, end = network.broadcast_address - size, network.broadcast_address - 1
    for lease in leases:
        if start <= ipaddress.ip_address(lease["ip"]) <= end:
            raise AnsibleFilterError(
                f"host {lease['name']}: {field}: {lease['ip']} lies in the dynamic range {start}-{end} "
                f"of {network_label}; pick an address below {start}")
    return {"dhcp_range": {"start": str(start), "end": str(end)}, "dhcp_hosts": leases}


def lab_mgmt_dhcp(specs, mgmt_address):
    """DHCP settings of the management network: a fixed lease per node (its ansible_host)."""
    network = ipaddress.ip_interface(str(mgmt_address)).network
    leases = [{"mac": spec["nics"][0]["mac"], "ip": spec["ip"], "name": spec["host"]} for spec in specs]
    return _dhcp_plan(network, leases, "ansible_host", "the management network")


_LAB_NIC = re.compile(r"^eth([1-9][0-9]?)$")


def _nic_list(host, node_nics):
    if not isinstance(node_nics, list):
        raise AnsibleFilterError(f"host {host}: vm_lab_node_nics: {node_nics!r} must be a list of network names")
    return node_nics


def _nic(host, entry):
    """A NIC after eth0: a network name, or {network, mac} when the MAC is fixed."""
    if isinstance(entry, str) and entry:
        return {"network": entry, "mac": None}
    if isinstance(entry, dict) and isinstance(entry.get("network"), str) and entry["network"]:
        return {"network": entry["network"], "mac": entry.get("mac") or None}
    raise AnsibleFilterError(f"host {host}: vm_lab_node_nics: {entry!r} must be a network name or a dict with network and mac")


def lab_network_name(lab, network):
    """The libvirt network (and bridge) of one profile network that the lab serves itself."""
    name = f"{lab['name']}-{network}"
    if len(name) > IFNAMSIZ:  # a longer bridge name is refused by the kernel
        raise AnsibleFilterError(
            f"vm_lab_name: {lab['name']!r} is too long for the bridge of network {network!r}: "
            f"{name!r} has more than {IFNAMSIZ} characters")
    return name


def _lab_served_networks(model):
    """The profile networks whose addresses come from a DHCP server the lab must run."""
    return [net for net in model["networks"].values() if net.get("dhcp")]


def lab_profile_nics(model, lab):
    """The NICs (after eth0) a node needs for its network model.

    A profile link ethN becomes the node's Nth NIC. Links carrying a DHCP network are
    plugged into that network's own lab bridge, where the lab's DHCP server listens;
    every other link goes to the trunk bridge, which carries tagged and untagged
    frames alike (the guest kernels demultiplex VLANs, so isolation is real).
    """
    host = model["host"]
    by_position = {}
    for index, link in enumerate(model["links"]):
        match = _LAB_NIC.match(link["name"])
        if not match:
            raise AnsibleFilterError(
                f"network profile {model['profile']}, host {host}: links[{index}].name: {link['name']!r} cannot be "
                f"made by the VM lab: its nodes name their NICs eth1, eth2, ... after the management NIC eth0")
        by_position[int(match.group(1))] = link
    served = {}
    for net in _lab_served_networks(model):
        if net.get("vlan"):
            raise AnsibleFilterError(
                f"network profile {model['profile']}, host {host}: networks.{net['name']}.vlan: {net['vlan']} "
                f"is tagged, but the VM lab's DHCP server serves untagged networks only")
        served[net["parent"]] = lab_network_name(lab, net["name"])
    nics = []
    for position in range(1, max(by_position) + 1):
        link = by_position.get(position)
        if link is None:  # a gap in the profile's links: an unused NIC keeps the order
            nics.append({"network": lab["trunk_network"], "mac": None})
            continue
        network = served.get(link["name"]) or served.get(link.get("bond") or "") or lab["trunk_network"]
        nics.append({"network": network, "mac": link.get("mac")})
    return nics


def lab_profile_networks(specs, plan_hosts, lab):
    """The lab networks that serve DHCP for the profile: name, bridge, address and leases.

    Each node's lease is the address its model expects, handed to the MAC of the NIC
    plugged into that network. The mgmt network must not overlap any profile subnet:
    the host routes both.
    """
    mgmt = ipaddress.ip_interface(str(lab["mgmt_address"])).network
    networks = {}
    for spec in specs:
        model = _model(plan_hosts, spec["host"])
        if not model:
            continue
        for net in model["networks"].values():
            subnet = ipaddress.ip_network(net["subnet"])
            if subnet.overlaps(mgmt):
                raise AnsibleFilterError(
                    f"network profile {model['profile']}, host {spec['host']}: networks.{net['name']}.subnet: "
                    f"{subnet} overlaps the lab's management network {mgmt} (vm_lab_mgmt_address)")
        for net in _lab_served_networks(model):
            name = lab_network_name(lab, net["name"])
            entry = networks.setdefault(name, {
                "name": name,
                "subnet": ipaddress.ip_network(net["subnet"]),
                "server": net.get("dhcp_server") or str(next(ipaddress.ip_network(net["subnet"]).hosts())),
                "leases": [],
                "profile_network": net["name"],
            })
            mac = next((nic["mac"] for nic in spec["nics"] if nic["network"] == name), None)
            if mac and net.get("address"):
                entry["leases"].append({"mac": mac, "ip": net["address"], "name": spec["host"]})
    result = []
    for entry in networks.values():
        plan = _dhcp_plan(entry["subnet"], entry["leases"], f"networks.{entry['profile_network']}.address",
                          f"network {entry['name']}")
        result.append({"name": entry["name"], "bridge": entry["name"],
                       "address": f"{entry['server']}/{entry['subnet'].prefixlen}", **plan})
    return result


def lab_network_mtus(specs, plan_hosts):
    """{lab network: MTU} for each lab network that must carry frames above 1500 bytes.

    A bridge (and every tap on it) takes the largest MTU of the links plugged into it:
    a profile's jumbo frames must cross the lab, not be dropped at the bridge while each
    guest reports MTU 9000. Networks at the default 1500 are left out, so their libvirt
    definitions (and the boot states saved with them) stay as they were.
    """
    mtus = {}
    for spec in specs:
        model = _model(plan_hosts, spec["host"])
        if not model:
            continue
        for link in model["links"]:
            match = _LAB_NIC.match(link["name"])
            position = int(match.group(1)) if match else 0
            if 0 < position < len(spec["nics"]) and (link.get("mtu") or 0) > 1500:
                network = spec["nics"][position]["network"]
                mtus[network] = max(mtus.get(network, 0), link["mtu"])
    return mtus


def lab_boot_targets(specs, run_dir):
    """What lab_boot_watch waits for: each node's name, management address and console log."""
    return [{"name": spec["host"], "address": spec["ip"], "console_log": f"{run_dir}/{spec['host']}.console.log"}
            for spec in specs]


class FilterModule:
    def filters(self):
        return {
            "lab_mac": lab_mac,
            "lab_uuid": lab_uuid,
            "lab_owner": lab_owner,
            "lab_node_specs": lab_node_specs,
            "lab_mgmt_dhcp": lab_mgmt_dhcp,
            "lab_profile_nics": lab_profile_nics,
            "lab_profile_networks": lab_profile_networks,
            "lab_boot_targets": lab_boot_targets,
            "lab_network_mtus": lab_network_mtus,
        }
