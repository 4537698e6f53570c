# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter network_models: every host's network model, built and validated at once."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import NetworkModelError, build_models

# The only per-host inventory variables the model reads. Reading just these keeps the
# cost per host low: every other variable of a host in HostVars is templated on access.
_HOST_KEYS = ("network_addresses", "network_link_names")


def _inventory_vars(hostvars, host):
    if hostvars is None or host not in hostvars:
        return {}
    host_vars = hostvars[host]
    if not isinstance(host_vars, Mapping):  # an undefined marker for a host Ansible does not know
        return {}
    return {key: host_vars.get(key) for key in _HOST_KEYS}


def network_models(hosts, hostvars, profile, profile_name="inline"):
    """{host: model} for ``hosts``; ``hostvars`` may be Ansible's HostVars or a plain dict."""
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"network_models: the input must be a list of host names, got {hosts!r}")
    try:
        host_vars = {str(host): _inventory_vars(hostvars, host) for host in hosts}
        return build_models(profile, [str(host) for host in hosts], host_vars, str(profile_name))
    except NetworkModelError as exc:
        # Same text as the model's error: it already names the profile, host, field and value.
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"network_models": network_models}
