# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the validate role: read a host's state, plan its probes, judge both
(module_utils/validate_checks.py holds the logic and says why it is split so)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import validate_checks as vc


def validate_host_state(text):
    """The output of roles/validate/files/read-state.sh as a dict."""
    try:
        return vc.host_state(text)
    except vc.ValidateInputError as exc:
        raise AnsibleFilterError(f"validate_host_state: {exc}") from exc


def validate_probe(hostvars, host, play_hosts, plan_hosts, l2_interfaces, net_targets, count, layers):
    """The host's L2 and network ping targets and the sh that pings them all at once.

    Each peer's link-local addresses come from its state read (``validate_state`` in
    ``hostvars``), its cluster interface from the plan.
    """
    peers = {}
    for name in play_hosts:
        cluster = ((plan_hosts or {}).get(name) or {}).get("cluster") or {}
        peers[name] = {"link_local": (hostvars[name].get("validate_state") or {}).get("link_local") or {},
                       "cluster_interface": cluster.get("interface")}
    if host not in peers:
        raise AnsibleFilterError(f"validate_probe: host {host!r} is not among the play's hosts {sorted(peers)}")
    l2 = vc.l2_targets(host, l2_interfaces, peers) if "L2" in layers else []
    net = list(net_targets or []) if "network" in layers else []
    return {"l2": l2, "net": net, "script": vc.probe_script(l2, net, count)}


def validate_checks(state, host, probe, probe_output, layers, model=None, boot=None):
    """Every L1, L2 and network check of the host, as dicts for aicluster.lab.check."""
    try:
        return vc.validate_checks(host, state, probe, probe_output, layers, model or None, boot or None)
    except vc.ValidateInputError as exc:
        raise AnsibleFilterError(f"validate_checks: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"validate_host_state": validate_host_state, "validate_probe": validate_probe,
                "validate_checks": validate_checks}
