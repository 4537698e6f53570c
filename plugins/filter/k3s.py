# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the k3s role: members, artifacts, the files of a host, the decision, the checks
(module_utils/k3s_host.py and k3s_verdict.py hold the logic and its tests)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import k3s_config, k3s_host, k3s_verdict

_ERRORS = (k3s_host.K3sHostError, k3s_config.K3sConfigError)


def _plain(value):
    """Ansible's lazy containers as plain dicts and lists, for the logic in module_utils."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    # ansible-core 2.19 hands over tagged str/int/float subclasses, which yaml's safe
    # dumper refuses to write ("cannot represent an object").
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def k3s_members(groups, servers_group="k3s_servers", agents_group="k3s_agents", lab_group="lab_nodes"):
    """{servers, agents, source} from the inventory's k3s groups, or the lab's group."""
    try:
        return k3s_host.members(_plain(groups), servers_group, agents_group, lab_group)
    except _ERRORS as exc:
        raise AnsibleFilterError(str(exc)) from None


def k3s_artifacts(directory, arches, images=True):
    """{arch: {binary, images}} of an air-gap directory, every file used checked against the release's sums."""
    try:
        return k3s_host.artifacts(directory, _plain(arches), bool(images))
    except _ERRORS as exc:
        raise AnsibleFilterError(str(exc)) from None
    except OSError as exc:
        raise AnsibleFilterError(f"k3s artifacts: {exc}") from None


def k3s_release_names(arch):
    """{binary, sums, images} as k3s's release names its files for one architecture."""
    try:
        return k3s_host.release_names(arch)
    except _ERRORS as exc:
        raise AnsibleFilterError(str(exc)) from None


def k3s_host_files(config, host, role, dropins=None, unit_text="", modules=None, sysctls=None):
    """[{path, content, mode, restart}] the role writes on a host."""
    if not isinstance(config, Mapping):
        raise AnsibleFilterError(f"k3s_host_files: the input must be the host's config (k3s_config), got {config!r}")
    try:
        return k3s_host.host_files(str(host), str(role), _plain(config), _plain(dropins), str(unit_text),
                                   _plain(modules) or [], _plain(sysctls) or {})
    except _ERRORS as exc:
        raise AnsibleFilterError(str(exc)) from None


def k3s_firewall_rules(role, first_config):
    """{ports, sources} k3s's documentation says a node of ``role`` must accept."""
    if not isinstance(first_config, Mapping):
        raise AnsibleFilterError(f"k3s_firewall_rules: the first server's config must be a mapping, got {first_config!r}")
    return k3s_host.firewall_rules(str(role), _plain(first_config))


def k3s_decide(text, wanted):
    """{state, decision, token} from read-state.sh's output and what the host should have."""
    wanted = _plain(wanted)
    try:
        state = k3s_host.host_state(text)
        arch = k3s_host.arch_of(state["machine"]) if state["machine"] in k3s_host.ARCHES else None
        wanted["artifact"] = (wanted.get("artifacts") or {}).get(arch) if wanted.get("source") == "artifact" else None
        decision = k3s_host.decide(state, wanted)
        token = k3s_host.token_source(bool(wanted.get("token_given")), state, wanted["token_file"],
                                      bool(wanted.get("first_server")))
    except _ERRORS as exc:
        raise AnsibleFilterError(str(exc)) from None
    except KeyError as exc:
        raise AnsibleFilterError(f"k3s_decide: wanted lacks {exc}") from None
    # The token steps are the role's too; check mode cannot show them otherwise.
    if token["from"] == "generate":
        decision["pending"].append(f"generate the cluster token in {token['path']}")
    elif state["token_files"].get(wanted["token_file"]) is None:
        decision["pending"].append(f"write {wanted['token_file']} (0600, the cluster token)")
    return {"state": state, "decision": decision, "token": token, "artifact": wanted["artifact"]}


def k3s_checks(text, read, wanted, config, plan_entry, host):
    """The offline checks of a host: its config (k3s_config, k3s_config_guard), then its state after the role."""
    wanted, read = _plain(wanted), _plain(read)
    try:
        state = k3s_host.host_state(text)
        wanted["artifact"] = read.get("artifact")
        return (k3s_verdict.config_checks(str(host), wanted["role"], _plain(config), _plain(plan_entry))
                + k3s_verdict.host_checks(state, read["decision"], wanted, wanted["token_file"]))
    except _ERRORS as exc:
        raise AnsibleFilterError(str(exc)) from None


def k3s_live_checks(text, host, first_server, servers, plan_entry, skip_reason=""):
    """The live checks of a host from live-read.sh's output, or each skipped with ``skip_reason``."""
    if skip_reason:
        return k3s_verdict.live_skipped(str(host), str(first_server), str(skip_reason))
    return k3s_verdict.live_checks(text, str(host), str(first_server), _plain(servers), _plain(plan_entry))


def k3s_probe_checks(text, host, first_server, nodes, skip_reason="", enabled=True):
    """The probe workload's checks of a host from probe.sh's output, or each skipped with the reason."""
    if isinstance(nodes, str) or not isinstance(nodes, (list, tuple)):
        raise AnsibleFilterError(f"k3s_probe_checks: nodes must be the list of the probe's nodes, got {nodes!r}")
    return k3s_verdict.probe_checks(str(text or ""), str(host), str(first_server), _plain(nodes), str(skip_reason or ""),
                                    bool(enabled))


def k3s_gpu_checks(text, host, plan=None, facts=None, skip_reason=""):
    """k3s_gpu_runtime of a host from gpu-read.sh's output and its GPU plan, or skipped with the reason."""
    for name, value, source in (("plan", plan, "the gpu_plan filter"), ("facts", facts, "gpu_facts")):
        if value is not None and not isinstance(value, Mapping):
            raise AnsibleFilterError(f"k3s_gpu_checks: {name} must be what {source} returned, got {value!r}")
    return k3s_verdict.gpu_checks(str(text or ""), str(host), _plain(plan), _plain(facts), str(skip_reason or ""))


def k3s_nodes_ready(text, hosts):
    """Whether every host is a Ready node in live-read.sh's output."""
    return k3s_verdict.nodes_ready(text, _plain(hosts))


class FilterModule:
    def filters(self):
        return {"k3s_members": k3s_members, "k3s_artifacts": k3s_artifacts,
                "k3s_release_names": k3s_release_names, "k3s_host_files": k3s_host_files,
                "k3s_firewall_rules": k3s_firewall_rules, "k3s_decide": k3s_decide, "k3s_checks": k3s_checks,
                "k3s_live_checks": k3s_live_checks, "k3s_nodes_ready": k3s_nodes_ready,
                "k3s_probe_checks": k3s_probe_checks, "k3s_gpu_checks": k3s_gpu_checks}
