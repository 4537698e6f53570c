# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the network role: a host's network model as systemd-networkd files or netplan YAML."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.network_render import DEFAULT_PREFIX
from ansible_collections.aicluster.lab.plugins.module_utils.network_render import NetworkRenderError
from ansible_collections.aicluster.lab.plugins.module_utils.network_render import render_netplan
from ansible_collections.aicluster.lab.plugins.module_utils.network_render import render_networkd
from ansible_collections.aicluster.lab.plugins.module_utils.network_render import render_summary


def network_networkd_files(model, prefix=DEFAULT_PREFIX):
    """{file name: content} of the host's systemd-networkd files."""
    try:
        return render_networkd(model, prefix)
    except (NetworkRenderError, KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"network_networkd_files: {exc}")


def network_netplan(model):
    """The host's netplan YAML."""
    try:
        return render_netplan(model)
    except (NetworkRenderError, KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"network_netplan: {exc}")


def network_summary(model):
    """One line about the host's network, for progress output."""
    try:
        return render_summary(model)
    except (NetworkRenderError, KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"network_summary: {exc}")


class FilterModule:
    def filters(self):
        return {"network_networkd_files": network_networkd_files, "network_netplan": network_netplan,
                "network_summary": network_summary}
