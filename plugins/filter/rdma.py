# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the rdma role: read a host's RDMA state, decide, judge (module_utils/rdma.py,
rdma_verdict.py and perftest.py hold the logic and its tests)."""

from __future__ import annotations

from itertools import combinations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import rdma
from ansible_collections.aicluster.lab.plugins.module_utils import rdma_verdict


def rdma_state(text, endpoint, packages_by_family):
    """The output of the role's read-state.sh, read and decided on for the plan's RDMA endpoint.

    {state, family, packages, missing_packages, decision, gid}; ``gid`` is None until the
    device holds the endpoint's address.
    """
    if not isinstance(endpoint, dict) or not endpoint.get("netdev"):
        raise AnsibleFilterError(f"rdma_state: the endpoint must be a plan's rdma entry, got {endpoint!r}")
    try:
        state = rdma.host_state(text)
        family, packages, missing = rdma.missing_packages(state, packages_by_family or {})
        decision = rdma.rdma_decision(state, endpoint)
    except rdma.RdmaInputError as exc:
        raise AnsibleFilterError(f"rdma_state: {exc}") from exc
    return {"state": state, "family": family, "packages": packages, "missing_packages": missing,
            "decision": decision, "gid": rdma.select_gid(state, decision["device"], endpoint["address"])}


def rdma_checks(read, endpoint, pfc_output="", app_output=""):
    """The host's rdma_device and rdma_dcb checks, as dicts for aicluster.lab.check."""
    return [rdma_verdict.device_check(read, endpoint), rdma_verdict.dcb_check(read, endpoint, pfc_output, app_output)]


def rdma_pairs(hosts, plan_hosts):
    """Every unordered pair of ``hosts`` whose plan asks for RDMA: [{client, server}], in inventory order."""
    with_rdma = [host for host in hosts if ((plan_hosts or {}).get(host) or {}).get("rdma")]
    return [{"client": client, "server": server} for client, server in combinations(with_rdma, 2)]


def rdma_end(host, hostvars, plan_hosts):
    """One end of a pair: {host, device, gid_index, address, interface, network} from its plan and state read."""
    endpoint = ((plan_hosts or {}).get(host) or {}).get("rdma")
    if not endpoint:
        raise AnsibleFilterError(f"rdma_end: host {host!r} has no rdma entry in the plan")
    read = hostvars[host].get("rdma_read") or {}
    gid = read.get("gid") or {}
    return {"host": host, "device": (read.get("decision") or {}).get("device", endpoint["device"]),
            "gid_index": gid.get("index"), "address": endpoint["address"], "interface": endpoint["interface"],
            "network": endpoint["network"]}


def rdma_pair_checks(output, client, server, thresholds):
    """The connect, latency and bandwidth checks of one pair run (see rdma_verdict.pair_checks)."""
    for side, value in (("client", client), ("server", server)):
        missing = [key for key in ("host", "device", "gid_index", "address", "network") if key not in (value or {})]
        if missing:
            raise AnsibleFilterError(f"rdma_pair_checks: {side} lacks {', '.join(missing)}: {value!r}")
    return rdma_verdict.pair_checks(output, client, server, thresholds)


class FilterModule:
    def filters(self):
        return {"rdma_state": rdma_state, "rdma_checks": rdma_checks, "rdma_pairs": rdma_pairs,
                "rdma_end": rdma_end, "rdma_pair_checks": rdma_pair_checks}
