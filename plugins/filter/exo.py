# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the exo role: read a host's EXO state, decide, write the firewall, judge
(module_utils/exo.py, exo_firewall.py, exo_api.py and exo_verdict.py hold the logic and its tests)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import exo, exo_api, exo_firewall, exo_verdict


def _wrap(name, func, *args):
    try:
        return func(*args)
    except (exo.ExoInputError, exo_firewall.FirewallInputError, exo_api.ExoApiError) as exc:
        raise AnsibleFilterError(f"{name}: {exc}") from exc


def _reads(hostvars, hosts, key="exo_read"):
    """{host: its state read} of the hosts the role read; a host of the play it skipped is left out."""
    states = {}
    for host in hosts:
        read = (hostvars[host] or {}).get(key)
        if isinstance(read, dict):
            states[host] = read
    return states


def exo_state(text):
    """The output of the role's read-state.sh as a dict (see exo.host_state)."""
    return _wrap("exo_state", exo.host_state, text)


def exo_backend(facts, requested="auto"):
    """{extra, backend, devices, reason}: the EXO extra for a host, from gpu_facts' result (see exo.backend)."""
    return _wrap("exo_backend", exo.backend, facts, requested)


def exo_artifact_problems(manifest, ref, extra=None, arch=None, prefix=None):
    """Why an artifact's MANIFEST.json does not fit the host and the pin; [] when it does (no host: the pin only)."""
    return _wrap("exo_artifact_problems", exo.manifest_problems, manifest, ref, extra, arch, prefix)


def exo_identity(hostvars, host, hosts):
    """This host's identity decision ({action, reason, id}), taken with every host of the play."""
    states = _reads(hostvars, hosts)
    if host not in states:
        raise AnsibleFilterError(f"exo_identity: host {host} has no exo_read: read it before deciding")
    return _wrap("exo_identity", exo.identities, states, [name for name in hosts if name in states])[host]


def exo_firewall_spec(plan_hosts, host, hostvars, hosts, ports):
    """The firewall's data for the host: cluster interface, peers' addresses, API sources."""
    return _wrap("exo_firewall_spec", exo.firewall_spec, plan_hosts, host, _reads(hostvars, hosts), list(hosts), ports)


def exo_ruleset(spec):
    """The nft file of the role's table for a firewall spec."""
    return _wrap("exo_ruleset", exo_firewall.ruleset, spec)


def exo_decision(state, wanted):
    """What the role changes on the host (see exo.decision)."""
    return _wrap("exo_decision", exo.decision, state, wanted)


def exo_file_set(files, paths):
    """The wanted files the decision found different, as the file_set module's entries (see exo.file_set_files)."""
    return _wrap("exo_file_set", exo.file_set_files, files, paths)


def exo_checks(state, ctx, hostvars=None, hosts=None):
    """The offline checks (category exo) of a host, after its changes; with hostvars and hosts, across hosts."""
    ctx = dict(ctx)
    if hostvars is not None and hosts:
        states = _reads(hostvars, hosts, "exo_read_after")
        ctx["identities"] = {host: (state.get("identity") or {}).get("id") for host, state in states.items()}
        ctx["machine_ids"] = {host: state.get("machine_id") for host, state in states.items()}
        ctx["shared_node_zids"] = exo.shared_node_zids(states, [name for name in hosts if name in states])
    return _wrap("exo_checks", exo_verdict.offline_checks, state, ctx)


def exo_live_skipped(reason):
    """The live checks, each skipped with the reason."""
    return exo_verdict.live_skipped(reason)


def exo_live_checks(hostvars, host, hosts, ctx):
    """exo_node_id, exo_cluster_state and exo_peer_links of ``host``, from every running host's probe (exo_probe)."""
    probes = {name: ((hostvars[name] or {}).get("exo_probe") or {}).get("stdout", "") for name in hosts}
    node_ids = {}
    for name, text in probes.items():
        node_ids[name] = exo_verdict.node_id_check(text)[1]
    node_record, _node = exo_verdict.node_id_check(probes[host])
    states = _reads(hostvars, hosts, "exo_read_after")
    peers = {}
    for name in hosts:
        if name == host:
            continue
        entry = ctx["plan_hosts"][name]["cluster"]
        peers[name] = {"address": entry.get("address"),
                       "link_local": exo.cluster_link_local(states[name], entry["interface"])[0]}
    links = {"interface": ctx["plan_hosts"][host]["cluster"]["interface"],
             "address": ctx["plan_hosts"][host]["cluster"]["address"], "port": int(ctx["zenoh_port"]), "peers": peers}
    network = (ctx["plan_hosts"][host].get("network") or {}).get("networks", {})
    subnet = network.get(ctx["plan_hosts"][host]["cluster"]["network"], {}).get("subnet")
    return [node_record, exo_verdict.cluster_state_check(probes[host], node_ids, subnet),
            _wrap("exo_live_checks", exo_verdict.peer_links_check, probes[host], links)]


def exo_chat_check(text, model):
    """The exo_chat check from the probe's chat run."""
    return exo_verdict.chat_check(text, model)


def exo_chaos_checks(text, fault, victim, old_id, expected_nodes, thresholds):
    """The dropped and rejoined checks of one chaos fault, from the observer's watch."""
    return exo_verdict.chaos_checks(text, fault, victim, old_id, int(expected_nodes), thresholds)


def exo_shared_node_zids(hostvars, hosts):
    """The hosts whose EXO node_zid file is the same as another host's (from their state reads)."""
    states = _reads(hostvars, hosts)
    return exo.shared_node_zids(states, [name for name in hosts if name in states])


def exo_running_hosts(hostvars, hosts, unit):
    """The hosts, in play order, whose EXO unit is active in their read after the changes."""
    states = _reads(hostvars, hosts, "exo_read_after")
    return [host for host in hosts if host in states
            and ((states[host].get("units") or {}).get(unit) or {}).get("active") == "active"]


def exo_node_id(text):
    """The node id a probe's /node_id section holds, or None."""
    return exo_verdict.node_id_check(text or "")[1]


class FilterModule:
    def filters(self):
        return {"exo_state": exo_state, "exo_backend": exo_backend, "exo_artifact_problems": exo_artifact_problems,
                "exo_identity": exo_identity, "exo_firewall_spec": exo_firewall_spec, "exo_ruleset": exo_ruleset,
                "exo_decision": exo_decision, "exo_file_set": exo_file_set, "exo_checks": exo_checks,
                "exo_live_skipped": exo_live_skipped, "exo_live_checks": exo_live_checks,
                "exo_chat_check": exo_chat_check, "exo_chaos_checks": exo_chaos_checks, "exo_node_id": exo_node_id,
                "exo_shared_node_zids": exo_shared_node_zids, "exo_running_hosts": exo_running_hosts}
