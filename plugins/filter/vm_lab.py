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

# uuid5 namespace for lab domains; any fixed value works, this one is ours.
_LAB_NAMESPACE = uuid.UUID("6f1d3c52-4e0b-5a55-9a8e-2b1f5c0a7d31")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


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


def _positive_int(host, field, value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(number) != str(value).strip():
        raise AnsibleFilterError(f"host {host}: {field}: {value!r} is not a positive whole number")
    return number


def lab_node_specs(hosts, hostvars, lab):
    """Turn the inventory's lab nodes into the specs the vm_lab role provisions.

    ``lab`` carries the role's settings: name, mgmt_network, mgmt_address,
    node_nics, vcpus, memory_mib, kernel_cmdline and image_key. Per-host inventory
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
    for host in hosts:
        hv = hostvars[host]
        if not _HOSTNAME.match(host):
            raise AnsibleFilterError(f"host {host}: inventory_hostname: {host!r} is not a valid host name (a-z, 0-9, '-')")
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

        node_nics = hv.get("vm_lab_node_nics", lab["node_nics"])
        if not isinstance(node_nics, list) or not all(isinstance(n, str) and n for n in node_nics):
            raise AnsibleFilterError(f"host {host}: vm_lab_node_nics: {node_nics!r} must be a list of network names")
        networks = [lab["mgmt_network"]] + list(node_nics)
        seed = f"{lab['name']}/{host}"
        spec = {
            "host": host,
            "domain": f"{lab['name']}-{host}",
            "uuid": lab_uuid(seed),
            "ip": str(ip),
            "vcpus": _positive_int(host, "vm_lab_vcpus", hv.get("vm_lab_vcpus", lab["vcpus"])),
            "memory_mib": _positive_int(host, "vm_lab_memory_mib", hv.get("vm_lab_memory_mib", lab["memory_mib"])),
            "cmdline": f"{lab['kernel_cmdline']} systemd.hostname={host}",
            "nics": [{"network": net, "mac": lab_mac(f"{seed}/{index}")} for index, net in enumerate(networks)],
        }
        # The snapshot key covers everything the saved memory state depends on.
        fingerprint = json.dumps([lab["image_key"], spec], sort_keys=True)
        spec["snapshot_key"] = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        specs.append(spec)
    return specs


def lab_mgmt_dhcp(specs, mgmt_address):
    """DHCP settings of the management network: a fixed lease per node.

    The range is the top of the subnet, below the broadcast address, and only serves
    a guest whose MAC is not listed; node addresses inside it are rejected so a
    stranger can never be handed a node's address.
    """
    network = ipaddress.ip_interface(str(mgmt_address)).network
    size = min(16, network.num_addresses // 4)
    start, end = network.broadcast_address - size, network.broadcast_address - 1
    hosts = []
    for spec in specs:
        if start <= ipaddress.ip_address(spec["ip"]) <= end:
            raise AnsibleFilterError(
                f"host {spec['host']}: ansible_host: {spec['ip']} lies in the dynamic range {start}-{end} "
                f"of the management network; pick an address below {start}")
        hosts.append({"mac": spec["nics"][0]["mac"], "ip": spec["ip"], "name": spec["host"]})
    return {"dhcp_range": {"start": str(start), "end": str(end)}, "dhcp_hosts": hosts}


class FilterModule:
    def filters(self):
        return {
            "lab_mac": lab_mac,
            "lab_uuid": lab_uuid,
            "lab_node_specs": lab_node_specs,
            "lab_mgmt_dhcp": lab_mgmt_dhcp,
        }
