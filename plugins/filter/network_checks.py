# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the validate role's network phase: compare ip -j JSON with the host model."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import IpJsonError, bond_state, ip_json
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import network_checks as _checks


def _json(value, field):
    try:
        return ip_json(value, f"state.{field}")
    except IpJsonError as exc:
        raise AnsibleFilterError(f"network_checks: {exc}") from exc


def network_checks(model, state, targets=None):
    """Checks of one host: ``state`` holds links (ip -d -j link), addrs, routes and neigh (ip -j)."""
    if not isinstance(model, dict) or "interfaces" not in model:
        raise AnsibleFilterError("network_checks: the input must be a host's network_model")
    parsed = {field: _json(state.get(field), field) for field in ("links", "addrs", "routes", "neigh")}
    return _checks(model, parsed, targets)


def network_bond_state(links, name):
    """A bond's mode, active and primary member, timers and members from ip -d -j link."""
    return bond_state(_json(links, "links"), name)


class FilterModule:
    def filters(self):
        return {"network_checks": network_checks, "network_bond_state": network_bond_state}
