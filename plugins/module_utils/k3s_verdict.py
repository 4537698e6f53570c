# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of category k3s, judged on the controller.

Each function returns dicts for aicluster.lab.check: {name, category, description,
passed, message, figures, skip_reason}.

- ``config_checks``: the host's config.yaml as rendered from the plan (node-ip and
  flannel-iface from its cluster network) and the schema's guard, shown refusing a
  misspelt key, a wrong type and a flag of the other role on this very config;
- ``host_checks``: what the state read finds after the role - files and their modes,
  the token file, the prerequisites, the binary, the service - or, for a host with no
  binary, the binary and service skipped with the reason;
- ``live_checks``: the cluster through ``kubectl ... -o json`` on the first server
  (roles/k3s/templates/live-read.sh.j2): API ready, etcd, every node Ready with its
  InternalIP and flannel's address equal to its cluster address, CoreDNS and the
  local-path provisioner available; skipped with the reason while k3s does not run.

A skip is never a pass: a check that could not look says so in its skip_reason.
"""

from __future__ import annotations

import copy
import json

from ansible_collections.aicluster.lab.plugins.module_utils import k3s_config, k3s_flags, k3s_host

CATEGORY = "k3s"
DESCRIPTIONS = {
    "k3s_config": "config.yaml rendered from the plan and checked against the pinned k3s release's flags",
    "k3s_config_guard": "the flag check refuses a misspelt key, a wrong type and a flag of the other role",
    "k3s_files": "config, drop-ins, unit and token file on the host, as rendered, root-owned, 0600 where secret",
    "k3s_prerequisites": "kernel modules, sysctls and directories k3s needs",
    "k3s_binary": "the k3s binary installed, verified and of the pinned version",
    "k3s_service": "the k3s unit enabled and active",
    "k3s_api_ready": "the Kubernetes API answers /readyz",
    "k3s_etcd": "embedded etcd healthy, every server a member",
    "k3s_node_ready": "the node is registered and Ready",
    "k3s_node_ip": "the node's InternalIP is its cluster address from the plan",
    "k3s_flannel": "flannel runs on the cluster interface (its public-ip is the cluster address)",
    "k3s_coredns": "CoreDNS deployment available",
    "k3s_local_path": "local-path provisioner deployment available",
}
# Checks recorded on the first server (the cluster's), and on every node (its own).
CLUSTER_LIVE = ("k3s_api_ready", "k3s_etcd", "k3s_coredns", "k3s_local_path")
NODE_LIVE = ("k3s_node_ready", "k3s_node_ip", "k3s_flannel")
FLANNEL_PUBLIC_IP = "flannel.alpha.coreos.com/public-ip"
NODE_ARGS = "k3s.io/node-args"
ETCD_ROLE = "node-role.kubernetes.io/etcd"


def _check(name, passed, message, figures=None, skip_reason=""):
    return {"name": name, "category": CATEGORY, "description": DESCRIPTIONS[name], "passed": bool(passed),
            "message": message, "figures": figures or {}, "skip_reason": skip_reason}


def _skipped(name, reason):
    return _check(name, False, reason, skip_reason=reason)


# ---------------------------------------------------------------------------------------
# the config, on the controller


def _cluster_endpoint(plan_entry):
    cluster = (plan_entry or {}).get("cluster") or {}
    return cluster.get("address"), cluster.get("interface")


def config_checks(host, role, config, plan_entry):
    """k3s_config and k3s_config_guard for ``host``'s rendered ``config``."""
    address, interface = _cluster_endpoint(plan_entry)
    problems = []
    for key, value in config.items():
        try:
            k3s_config.check_value(host, role, key, value)
        except k3s_config.K3sConfigError as exc:
            problems.append(str(exc))
    if address and config.get("node-ip") != address:
        problems.append(f"node-ip {config.get('node-ip')!r} is not the plan's cluster address {address}")
    if config.get("flannel-iface") != interface:
        problems.append(f"flannel-iface {config.get('flannel-iface')!r} is not the plan's cluster interface {interface}")
    joins = "initialises embedded etcd" if config.get("cluster-init") else f"joins {config.get('server')}"
    rendered = _check(
        "k3s_config", not problems,
        "; ".join(problems) if problems else
        f"{len(config)} flags of the {role} checked against k3s {k3s_flags.K3S_VERSION}: node-ip "
        f"{config.get('node-ip', '(the interface address)')}, flannel-iface {interface} from the plan's cluster "
        f"network; {joins}; token from token-file {config.get('token-file')}",
        {"flags": len(config)})
    return [rendered, guard_check(host, role, config)]


def _mutations(role, config):
    """Three bad configs made from the good one, each with the words its refusal must hold."""
    other = "agent" if role == "server" else "server"
    foreign = "disable-apiserver-lb" if role == "server" else "tls-san"
    foreign_value = True if role == "server" else [config.get("node-ip") or "10.0.0.1"]
    misspelt = dict(config)
    value = misspelt.pop("flannel-iface", "eth1")
    misspelt["flanel-iface"] = value
    wrong_type = dict(config, debug="yes")
    return [
        ("misspelt key flanel-iface", misspelt, "flanel-iface", "not a flag of k3s"),
        ("debug: 'yes' (a string for a bool)", wrong_type, "debug", "is not true or false"),
        (f"{foreign} ({'an' if other == 'agent' else 'a'} {other}-only flag)", dict(config, **{foreign: foreign_value}), foreign,
         f"a k3s {other}-only flag"),
    ]


def guard_check(host, role, config):
    """The check that wrote the config refuses each of three mutations of it, naming the key."""
    refused, missed = [], []
    for label, bad, key, words in _mutations(role, copy.deepcopy(config)):
        try:
            for name, value in bad.items():
                k3s_config.check_value(host, role, name, value)
        except k3s_config.K3sConfigError as exc:
            text = str(exc)
            if f": {key}:" in text and words in text:
                refused.append(label)
            else:
                missed.append(f"{label} refused for another reason: {text}")
            continue
        missed.append(f"{label} was accepted")
    return _check("k3s_config_guard", not missed,
                  "; ".join(missed) if missed else f"refused before any host is touched: {', '.join(refused)}",
                  {"refused": len(refused)})


# ---------------------------------------------------------------------------------------
# the host, from its state read


def host_checks(state, decision, wanted, token_file):
    """k3s_files, k3s_prerequisites, k3s_binary and k3s_service from the state read after the role."""
    checks = []
    problems = []
    for want in wanted["files"]:
        why = k3s_host._file_differs(state["files"].get(want["path"]), want)  # pylint: disable=protected-access
        if why:
            problems.append(f"{want['path']}: {why}")
    token = state["token_files"].get(token_file)
    if token is None or token["size"] == 0:
        problems.append(f"{token_file}: missing or empty")
    elif token["mode"].lstrip("0") != "600" or token["owner"] != "root:root":
        problems.append(f"{token_file}: mode {token['mode']}, owner {token['owner']} (want 0600 root:root)")
    paths = [want["path"] for want in wanted["files"]]
    checks.append(_check("k3s_files", not problems, "; ".join(problems) if problems else
                         f"{len(paths) + 1} files as rendered: {', '.join(paths)}, and {token_file} (0600, root)",
                         {"files": len(paths) + 1}))

    problems = [f"module {name} not loaded" for name in wanted["modules"] if not state["modules"].get(name)]
    problems += [f"{key} is {state['sysctls'].get(key)!r}, want {value}" for key, value in
                 (wanted.get("sysctls") or {}).items() if state["sysctls"].get(key) != str(value)]
    problems += [f"directory {path} missing" for path in wanted["dirs"] if not state["dirs"].get(path)]
    problems += [f"user {name} missing" for name in wanted.get("users") or [] if not state["users"].get(name)]
    firewall, rules = state.get("firewall") or {"kind": "none"}, wanted.get("firewall") or {}
    if firewall["kind"] != "none":
        problems += [f"{port} not open in {firewall['kind']}" for port in rules.get("ports", [])
                     if port not in firewall["ports"]]
        problems += [f"{net} not trusted in {firewall['kind']}" for net in rules.get("sources", [])
                     if net not in firewall["sources"]]
    checks.append(_check("k3s_prerequisites", not problems, "; ".join(problems) if problems else
                         f"modules {', '.join(wanted['modules'])} loaded; "
                         + ", ".join(f"{key}={value}" for key, value in (wanted.get('sysctls') or {}).items())
                         + f"; {len(wanted['dirs'])} directories; host firewall: "
                         + ("none active" if firewall["kind"] == "none" else f"{firewall['kind']}, k3s's ports open")))

    if not decision["live"]:
        checks.append(_skipped("k3s_binary", decision["live_reason"]))
        checks.append(_skipped("k3s_service", decision["live_reason"]))
        return checks
    binary = state["binary"]
    artifact = wanted.get("artifact")
    if binary is None:
        checks.append(_check("k3s_binary", False, f"{k3s_host.BINARY} is missing"))
    else:
        problems = []
        if binary["version"] != wanted["version"]:
            problems.append(f"version {binary['version']} ({binary['version_output']!r}) is not {wanted['version']}, "
                            f"the release whose flags the config was checked against")
        if artifact and binary["sha256"] != artifact["binary"]["sha256"]:
            problems.append(f"sha256 {binary['sha256']} is not the artifact's {artifact['binary']['sha256']}")
        source = "the artifact directory (sha256 verified)" if artifact else "the release (sha256 verified at download)"
        checks.append(_check("k3s_binary", not problems, "; ".join(problems) if problems else
                             f"{k3s_host.BINARY} {binary['version']} from {source}"))
    service = state["units"].get(decision["unit"]) or {}
    ok = service.get("enabled") == "enabled" and service.get("active") == "active"
    checks.append(_check("k3s_service", ok, f"{decision['unit']}: enabled={service.get('enabled') or 'none'}, "
                                            f"active={service.get('active') or 'none'}"))
    return checks


# ---------------------------------------------------------------------------------------
# the cluster, live


def live_skipped(host, first_server, reason):
    """The live checks of ``host``, each skipped with ``reason``."""
    names = (CLUSTER_LIVE if host == first_server else ()) + NODE_LIVE
    return [_skipped(name, f"not live: {reason}") for name in names]


def live_sections(text):
    """{name: text} of live-read.sh's output."""
    return {name: "\n".join(lines) for name, lines in k3s_host.sections(text).items()}


def _json(found, name):
    try:
        return json.loads(found.get(name) or ""), None
    except ValueError as exc:
        return None, f"kubectl's {name} is not JSON ({exc}): {(found.get(name) or '').strip()[:200]!r}"


def _rc(found, name):
    try:
        return int((found.get(name + "_rc") or "").strip())
    except ValueError:
        return None


def _condition(node, kind):
    for item in (node.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return {}


def _addresses(node, kind):
    return [item.get("address") for item in (node.get("status") or {}).get("addresses") or []
            if item.get("type") == kind]


def nodes_ready(text, hosts):
    """Whether every one of ``hosts`` is a Ready node in live-read.sh's output: the read is retried until so."""
    found = live_sections(text)
    nodes, error = _json(found, "nodes")
    if error or not isinstance(nodes, dict):
        return False
    by_name = {(item.get("metadata") or {}).get("name"): item for item in nodes.get("items") or []}
    return all(host in by_name and _condition(by_name[host], "Ready").get("status") == "True" for host in hosts)


def _deployment_check(name, deployments, deployment):
    items = {(item.get("metadata") or {}).get("name"): item for item in (deployments or {}).get("items") or []}
    if deployment not in items:
        return _check(name, False, f"no deployment {deployment} in kube-system (deployments: "
                                   f"{', '.join(sorted(filter(None, items))) or 'none'})")
    status, spec = items[deployment].get("status") or {}, items[deployment].get("spec") or {}
    want = spec.get("replicas", 1)
    ready = status.get("availableReplicas") or 0
    return _check(name, want > 0 and ready >= want,
                  f"deployment {deployment}: {ready} of {want} replicas available",
                  {"available": ready, "replicas": want})


def _node_args(node):
    text = ((node.get("metadata") or {}).get("annotations") or {}).get(NODE_ARGS)
    try:
        args = json.loads(text) if text else []
    except ValueError:
        return []
    return args if isinstance(args, list) else []


def _arg(args, flag):
    for index, item in enumerate(args):
        if item == f"--{flag}" and index + 1 < len(args):
            return args[index + 1]
        if isinstance(item, str) and item.startswith(f"--{flag}="):
            return item.split("=", 1)[1]
    return None


def live_checks(text, host, first_server, servers, plan_entry):
    """The live checks of ``host`` from live-read.sh's output on the first server."""
    found = live_sections(text)
    checks = []
    if host == first_server:
        ready = (found.get("readyz") or "").strip()
        checks.append(_check("k3s_api_ready", _rc(found, "readyz") == 0 and ready == "ok",
                             f"/readyz: {ready[:200] or 'no answer'} (kubectl exit {_rc(found, 'readyz')})"))
        nodes, error = _json(found, "nodes")
        etcd = (found.get("etcd") or "").strip()
        if error:
            checks.append(_check("k3s_etcd", False, error))
        else:
            members = sorted((item.get("metadata") or {}).get("name") for item in nodes.get("items") or []
                             if ((item.get("metadata") or {}).get("labels") or {}).get(ETCD_ROLE) == "true")
            missing = [name for name in servers if name not in members]
            ok = _rc(found, "etcd") == 0 and etcd == "ok" and not missing
            checks.append(_check("k3s_etcd", ok,
                                 f"/readyz/etcd: {etcd[:200] or 'no answer'}; etcd members {', '.join(members) or 'none'}"
                                 + (f"; servers not members: {', '.join(missing)}" if missing else ""),
                                 {"members": len(members)}))
        deployments, error = _json(found, "deployments")
        for name, deployment in (("k3s_coredns", "coredns"), ("k3s_local_path", "local-path-provisioner")):
            checks.append(_check(name, False, error) if error else _deployment_check(name, deployments, deployment))
    checks += _node_checks(found, host, plan_entry)
    return checks


def _node_checks(found, host, plan_entry):
    nodes, error = _json(found, "nodes")
    if error:
        return [_check(name, False, error) for name in NODE_LIVE]
    by_name = {(item.get("metadata") or {}).get("name"): item for item in nodes.get("items") or []}
    node = by_name.get(host)
    if node is None:
        text = f"no node {host} registered (nodes: {', '.join(sorted(filter(None, by_name))) or 'none'})"
        return [_check(name, False, text) for name in NODE_LIVE]
    address, interface = _cluster_endpoint(plan_entry)
    ready = _condition(node, "Ready")
    checks = [_check("k3s_node_ready", ready.get("status") == "True",
                     f"Ready={ready.get('status', 'unknown')}"
                     + (f" ({ready.get('reason')}: {ready.get('message')})" if ready.get("status") != "True" else "")
                     + f"; kubelet {(node.get('status') or {}).get('nodeInfo', {}).get('kubeletVersion', '?')}")]
    internal = _addresses(node, "InternalIP")
    if address:
        checks.append(_check("k3s_node_ip", address in internal,
                             f"InternalIP {', '.join(internal) or 'none'}; the plan's cluster address {address}"))
    else:
        checks.append(_check("k3s_node_ip", bool(internal), f"InternalIP {', '.join(internal) or 'none'}; the plan "
                                                            f"has no fixed cluster address (DHCP) to compare"))
    public = ((node.get("metadata") or {}).get("annotations") or {}).get(FLANNEL_PUBLIC_IP)
    iface = _arg(_node_args(node), "flannel-iface")
    problems = []
    if address and public != address:
        problems.append(f"flannel's public-ip is {public or 'unset'}, not the cluster address {address}")
    if iface is not None and iface != interface:
        problems.append(f"k3s runs with --flannel-iface {iface}, not the cluster interface {interface}")
    checks.append(_check("k3s_flannel", not problems and bool(public), "; ".join(problems) if problems else
                         f"flannel on {interface}: public-ip {public or 'unset'}"))
    return checks
