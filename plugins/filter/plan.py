# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters plan (every host's entry of the run's plan, built at once) and plan_peers (a host's peers in it)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import NetworkModelError
from ansible_collections.aicluster.lab.plugins.module_utils.plan import HOST_KEYS, build_plan, peers


def inventory_vars(hostvars, host, keys=HOST_KEYS):
    """{key: value} of ``host``'s inventory variables named in ``keys`` (None where unset), from Ansible's hostvars.

    The one reader of hostvars for the filters that build on the plan (plan, k3s_config): only the
    named keys are read, and a host Ansible does not know has none.
    """
    if hostvars is None or host not in hostvars:
        return {}
    host_vars = hostvars[host]
    if not isinstance(host_vars, Mapping):  # an undefined marker for a host Ansible does not know
        return {}
    return {key: host_vars.get(key) for key in keys}


def plan(hosts, hostvars, profile=None, within=None):
    """{host: entry} for ``hosts``; ``profile`` is the network_profile lookup's {name, profile} or None.

    With ``within`` (the play's hosts), only the hosts in it are planned, unless none is:
    --limit narrows the plan as it narrows the run, and a play on the controller alone
    plans the whole group.
    """
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"plan: the input must be a list of host names, got {hosts!r}")
    if within:
        play = set(within)
        hosts = [host for host in hosts if host in play] or list(hosts)
    if profile is not None and not (isinstance(profile, Mapping) and "profile" in profile):
        raise AnsibleFilterError(f"plan: profile must be the network_profile lookup's {{name, profile}} or none, got {profile!r}")
    try:
        host_vars = {str(host): inventory_vars(hostvars, host) for host in hosts}
        if profile is None:
            return build_plan(hosts, host_vars)
        return build_plan(hosts, host_vars, profile["profile"], str(profile.get("name") or "inline"))
    except NetworkModelError as exc:
        # Same text as the model's error: it already names the profile, host, field and value.
        raise AnsibleFilterError(str(exc)) from None


def plan_peers(plan_hosts, host):
    """Every peer's address on each of ``host``'s networks, from the plan."""
    if not isinstance(plan_hosts, Mapping):
        raise AnsibleFilterError(f"plan_peers: the input must be the plan (plan_hosts), got {plan_hosts!r}")
    try:
        return peers(plan_hosts, str(host))
    except KeyError as exc:
        raise AnsibleFilterError(f"plan_peers: {exc.args[0]}") from None


class FilterModule:
    def filters(self):
        return {"plan": plan, "plan_peers": plan_peers}
