# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's plan: what every role needs to know about every host, built once.

The plan is built on the controller for all hosts at once (cross-host rules such as
an address used twice need them together) and handed to every host in one step by the
``plan`` role. Roles read their host's entry, ``plan_hosts[inventory_hostname]``, and a
peer's entry the same way; nothing is derived twice.

An entry holds (nothing per pair of hosts: the plan grows with the inventory, not its
square; ``peers`` lists a host's peers when a role asks):

- ``network``: the host's network model (network_model.build_models), or None when
  the run has no network profile (the host keeps its network as it is);
- ``cluster``: where the cluster's traffic goes (k3s' node IP, EXO's peers);
- ``storage``: where storage traffic goes, with ``netdev``, the device under a VLAN;
- ``rdma``: where the profile asks for RDMA (its ``rdma`` section), the endpoint of the
  network that carries it plus ``device`` (the Soft-RoCE device made where the host has
  no adapter; rdma_rxe refuses a VLAN device, so it attaches to ``netdev``), ``priority``
  and ``trust`` (PFC on real RoCE adapters); None otherwise.
"""

from __future__ import annotations

from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import peer_targets
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import build_models

# The only variables of a host that the plan reads from the inventory.
HOST_KEYS = ("network_addresses", "network_link_names")


def _endpoint(model, network_name):
    net = model["networks"][network_name]
    return {
        "network": network_name,
        "interface": net["interface"],
        "address": net["address"],
        # The device under a VLAN: its parent (a bond or a link); otherwise the interface itself.
        "netdev": net["parent"] if net.get("vlan") else net["interface"],
        "mtu": net["mtu"],
    }


def _entry(host, profile_name, model):
    if model is None:
        return {"host": host, "profile": None, "network": None, "cluster": None, "storage": None, "rdma": None}
    storage = "storage" if "storage" in model["networks"] else "cluster"
    rdma = model.get("rdma")
    return {
        "host": host,
        "profile": profile_name,
        "network": model,
        "cluster": _endpoint(model, "cluster"),
        "storage": _endpoint(model, storage),
        "rdma": dict(_endpoint(model, rdma["network"]), **{key: rdma[key] for key in ("device", "priority", "trust")})
        if rdma else None,
    }


def build_plan(hosts, host_vars, profile=None, profile_name="inline"):
    """{host: entry} for ``hosts``; without a profile every host's network is None.

    ``host_vars[host]`` holds the host's inventory variables named in HOST_KEYS. Raises
    network_model.NetworkModelError, naming the profile, host, field and value, before
    anything is returned: a bad host stops the whole plan.
    """
    hosts = [str(host) for host in hosts]
    models = build_models(profile, hosts, host_vars, profile_name) if profile is not None else {}
    return {host: _entry(host, profile_name, models.get(host)) for host in hosts}


def peers(plan, host):
    """Every peer's address on each of ``host``'s networks: [{network, peer, address, interface, vlan, peer_vlan, mtu}].

    Empty when the host has no network in the plan; peers without a network or without a
    known address (DHCP) are left out.
    """
    if host not in plan:
        raise KeyError(f"host {host} is not in the plan (hosts: {', '.join(sorted(plan)) or 'none'})")
    if not plan[host].get("network"):
        return []
    models = {name: entry["network"] for name, entry in plan.items() if entry.get("network")}
    return peer_targets(models, host)
