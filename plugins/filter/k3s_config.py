# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter k3s_config: every k3s host's config.yaml from the plan, built and checked at once."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.filter.plan import inventory_vars
from ansible_collections.aicluster.lab.plugins.module_utils.k3s_config import (
    API_PORT, HOST_KEYS, TOKEN_FILE, K3sConfigError, build_configs)


def k3s_config(plan_hosts, servers, agents=None, hostvars=None, extra=None, tls_san=None, token_file=TOKEN_FILE,
               api_port=API_PORT):
    """{host: config.yaml as a dict} for the servers (the first initialises the cluster) and the agents."""
    if not isinstance(plan_hosts, Mapping):
        raise AnsibleFilterError(f"k3s_config: the input must be the plan (plan_hosts), got {plan_hosts!r}")
    # A malformed group is build_configs' to report; only real lists name hosts to read.
    hosts = [str(host) for group in (servers, agents) if isinstance(group, (list, tuple)) for host in group]
    try:
        host_vars = {host: inventory_vars(hostvars, host, HOST_KEYS) for host in hosts}
        return build_configs(plan_hosts, servers, agents, host_vars, extra, tls_san, token_file, api_port)
    except K3sConfigError as exc:
        # Same text as build_configs': it already names the host, the key and the value.
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"k3s_config": k3s_config}
