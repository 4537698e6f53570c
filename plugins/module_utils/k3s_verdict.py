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
  local-path provisioner available; skipped with the reason while k3s does not run;
- ``probe_checks``: a probe workload the role applies and deletes (templates/probe.sh.j2):
  a claim on local-path bound and written, every node's pod reaching the next node's pod
  and resolving kubernetes.default, nothing left afterwards;
- ``gpu_checks``: where the host's GPU plan has a container runtime, its RuntimeClass, the
  device plugin's pod on the node and the node's allocatable GPUs (templates/gpu-read.sh.j2).

A skip is never a pass: a check that could not look says so in its skip_reason.
"""

from __future__ import annotations

import copy
import json
import re

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
    "k3s_volume_bound": "a claim on local-path is bound and a pod writes and reads it back",
    "k3s_probe_cleanup": "the probe workload leaves nothing behind: its namespace and volume deleted",
    "k3s_pod_to_pod": "the node's pod reaches the next node's pod over the cluster network, and is reached",
    "k3s_pod_dns": "a pod on the node resolves kubernetes.default to the API's service address",
    "k3s_gpu_runtime": "the GPU RuntimeClass exists, the device plugin runs on the node and the node advertises its GPUs",
}
# Checks recorded on the first server (the cluster's), and on every node (its own).
CLUSTER_LIVE = ("k3s_api_ready", "k3s_etcd", "k3s_coredns", "k3s_local_path")
NODE_LIVE = ("k3s_node_ready", "k3s_node_ip", "k3s_flannel")
# The probe workload's checks (templates/probe.sh.j2), and the GPU support's.
PROBE_CLUSTER = ("k3s_volume_bound", "k3s_probe_cleanup")
PROBE_NODE = ("k3s_pod_to_pod", "k3s_pod_dns")
GPU_NODE = ("k3s_gpu_runtime",)
PROBE_PORT = 8080
DEVICE_PLUGIN = "nvidia-device-plugin-daemonset"
GPU_RESOURCE = "nvidia.com/gpu"
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


# ---------------------------------------------------------------------------------------
# the cluster, with a probe workload (templates/probe.sh.j2 on the first server)


def _pod_state(pod):
    """(ready, words): whether a pod is Ready, and where it runs or why it does not, in the kubelet's words."""
    if not pod:
        return False, "not created"
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    where = f" on {node}" if node else ""
    if _condition(pod, "Ready").get("status") == "True":
        return True, f"Ready{where} ({status.get('podIP') or 'no IP'})"
    words = []
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting") is not None:
            waiting = state["waiting"]
            words.append(f"container {container.get('name')} waiting: {waiting.get('reason', 'no reason')}"
                         + (f" ({waiting['message']})" if waiting.get("message") else ""))
        elif state.get("terminated") is not None:
            ended = state["terminated"]
            words.append(f"container {container.get('name')} ended: {ended.get('reason', 'no reason')} "
                         f"(exit {ended.get('exitCode')})")
    scheduled = _condition(pod, "PodScheduled")
    if not words and scheduled.get("status") == "False":
        words.append(f"not scheduled: {scheduled.get('reason')} ({scheduled.get('message')})")
    return False, f"{status.get('phase', 'no phase')}{where}" + (f", {'; '.join(words)}" if words else "")


def _waited(found, name, what):
    """'' when the wait in section ``name`` ended well, else what was waited on and what kubectl said."""
    rc = _rc(found, name)
    if rc == 0:
        return ""
    if rc is None:
        return f"{what}: not waited on (the read stopped before)"
    said = " ".join((found.get(name) or "").split())
    return f"waited {(found.get('wait_s') or '?').strip()} s for {what}: {said[:300] or 'no answer'} (exit {rc})"


def _joined(*parts):
    return "; ".join(part for part in parts if part)


def _items(listing):
    return {(item.get("metadata") or {}).get("name"): item for item in (listing or {}).get("items") or []}


def probe_checks(text, host, first_server, nodes, skip_reason="", enabled=True):
    """The probe workload's checks of ``host`` from probe.sh's output on the first server.

    ``nodes`` are the probe's nodes in the manifest's order: pod probe-net-<i> runs on
    nodes[i] and fetches from the next one's. Skipped with ``skip_reason`` while k3s does
    not run, and with the reason when the probe is turned off.
    """
    names = (PROBE_CLUSTER if host == first_server else ()) + PROBE_NODE
    if skip_reason:
        return [_skipped(name, f"not live: {skip_reason}") for name in names]
    if not enabled:
        return [_skipped(name, "k3s_probe is false: no probe workload was run") for name in names]
    found = live_sections(text)
    applied = _rc(found, "apply")
    failed = "" if applied == 0 else (
        "the probe did not run (no output)" if applied is None else
        f"kubectl apply of the probe workload failed (exit {applied}): {' '.join((found.get('apply') or '').split())[:300]}")
    checks = []
    if host == first_server:
        checks.append(_check("k3s_volume_bound", False, failed) if failed else _volume_check(found))
        checks.append(_cleanup_check(found))
    if failed:
        return checks + [_check(name, False, failed) for name in PROBE_NODE]
    return checks + _net_checks(found, host, list(nodes))


def _volume_check(found):
    pvc, error = _json(found, "pvc")
    pod, pod_error = _json(found, "volume_pod")
    if error or pod_error:
        waited = _waited(found, "volume_bound", "the claim probe-volume to be Bound")
        return _check("k3s_volume_bound", False, _joined(waited, error, pod_error))
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    problems = []
    if status.get("phase") != "Bound":
        problems.append(_joined(f"claim probe-volume is {status.get('phase') or 'without a phase'}",
                                _waited(found, "volume_bound", "the claim probe-volume to be Bound")))
    phase = (pod.get("status") or {}).get("phase")
    log = (found.get("volume_log") or "").strip()
    if phase != "Succeeded":
        problems.append(_joined(f"pod probe-volume {_pod_state(pod)[1]}",
                                _waited(found, "volume_done", "pod probe-volume to write and read the volume")))
    elif log != node:
        problems.append(f"pod probe-volume on {node} read back {log[:200]!r}, not what it wrote ({node!r})")
    if problems:
        return _check("k3s_volume_bound", False, "; ".join(problems))
    return _check("k3s_volume_bound", True,
                  f"claim probe-volume Bound to {spec.get('volumeName')} ({(status.get('capacity') or {}).get('storage')}, "
                  f"storage class {spec.get('storageClassName')}); pod probe-volume on {node} wrote its node's name "
                  f"to it and read it back")


def _cleanup_check(found):
    namespace = (found.get("namespace") or "").strip()
    problems = []
    if _rc(found, "cleanup") != 0:
        said = " ".join((found.get("cleanup") or "").split())
        problems.append(f"namespace {namespace} not deleted: {said[:300] or 'no answer'} (exit {_rc(found, 'cleanup')})")
    volumes, error = _json(found, "volumes")
    if error:
        problems.append(error)
    else:
        left = sorted(name for name, volume in _items(volumes).items()
                      if ((volume.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace)
        if left:
            problems.append(_joined(f"volume {', '.join(left)} of the probe's claim still there",
                                    _waited(found, "volume_deleted", "local-path to delete it")))
    return _check("k3s_probe_cleanup", not problems, "; ".join(problems) if problems else
                  f"namespace {namespace} deleted with its pods and claim; no volume of its claim left")


def _net_checks(found, host, nodes):
    if host not in nodes:
        return [_skipped(name, f"{host} runs no probe pod (the probe's nodes: {', '.join(nodes)})") for name in PROBE_NODE]
    index = nodes.index(host)
    pods, error = _json(found, "pods")
    if error:
        return [_check(name, False, _joined(_waited(found, "net_ready", "the probe pods to be Ready"), error))
                for name in PROBE_NODE]
    by_name = _items(pods)

    def pod(at):
        return by_name.get(f"probe-net-{at}")

    ready, words = _pod_state(pod(index))
    where = (pod(index) or {}).get("spec", {}).get("nodeName")
    if not ready or where != host:
        text = (f"pod probe-net-{index} for {host}: {words}" if not ready else
                f"pod probe-net-{index} runs on {where}, not {host}")
        return [_check(name, False, _joined(text, _waited(found, "net_ready", "the probe pods to be Ready")))
                for name in PROBE_NODE]
    checks = []
    if len(nodes) < 2:
        checks.append(_skipped("k3s_pod_to_pod", f"one node in the cluster ({host}): no other node's pod to reach"))
    else:
        after, before = (index + 1) % len(nodes), (index - 1) % len(nodes)
        problems = [_fetch_problem(found, pod(index), pod(after), nodes[index], nodes[after], index),
                    _fetch_problem(found, pod(before), pod(index), nodes[before], nodes[index], before)]
        problems = [problem for problem in problems if problem]
        checks.append(_check("k3s_pod_to_pod", not problems, "; ".join(problems) if problems else
                             f"the pod on {host} ({_ip(pod(index))}) fetched {nodes[after]}'s name from its pod "
                             f"({_ip(pod(after))}:{PROBE_PORT}); the pod on {nodes[before]} ({_ip(pod(before))}) "
                             f"fetched {host}'s"))
    checks.append(_dns_check(found, index, host))
    return checks


def _ip(pod):
    return ((pod or {}).get("status") or {}).get("podIP") or "no IP"


def _fetch_problem(found, source, target, source_node, target_node, index):
    """Why the pod on ``source_node`` did not fetch the name of ``target_node`` from its pod, or ''."""
    for pod, node in ((source, source_node), (target, target_node)):
        ready, words = _pod_state(pod)
        if not ready:
            return f"the pod on {node} is not Ready: {words}"
    name = f"fetch_{index}"
    rc, body = _rc(found, name), (found.get(name) or "").strip()
    want = (target.get("spec") or {}).get("nodeName")
    if rc == 0 and body == want:
        return ""
    if rc is None:
        return f"the pod on {source_node} made no fetch from the pod on {target_node}"
    reach = (f"the pod on {source_node} ({_ip(source)}) fetching from the pod on {target_node} "
             f"({_ip(target)}:{PROBE_PORT})")
    if rc != 0:
        return f"{reach} failed: {' '.join(body.split())[:300] or 'no answer'} (exit {rc})"
    return f"{reach} got {body[:100]!r}, not {want!r}"


_NAME_LINE = re.compile(r"^Name:\s*(\S+)")
_ADDRESS_LINE = re.compile(r"^Address(?:\s+\d+)?:\s*(\S+)")


def dns_answer(text, name):
    """The addresses busybox's nslookup gives for ``name``: each 'Address' line after a 'Name:' line of it.

    busybox has no JSON output; its answer lines are 'Name:' then 'Address: <ip>' (1.28 and
    later) or 'Address 1: <ip> <name>' (before). The server's own 'Address' line comes first,
    before any 'Name:', and is not an answer.
    """
    addresses, inside = [], False
    for line in (text or "").splitlines():
        named = _NAME_LINE.match(line.strip())
        if named:
            inside = named.group(1).rstrip(".") == name.rstrip(".")
            continue
        address = _ADDRESS_LINE.match(line.strip())
        if address and inside:
            addresses.append(address.group(1))
    return addresses


def _dns_check(found, index, host):
    service, error = _json(found, "service")
    name = (found.get("dns_name") or "").strip()
    if error:
        return _check("k3s_pod_dns", False, error)
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    section = f"dns_{index}"
    rc, said = _rc(found, section), found.get(section) or ""
    answers = dns_answer(said, name)
    if cluster_ip and cluster_ip in answers:
        return _check("k3s_pod_dns", True, f"the pod on {host} resolved {name} to {', '.join(answers)}, the ClusterIP of "
                                           f"service kubernetes" + (f" (nslookup exit {rc})" if rc else ""))
    if answers:
        return _check("k3s_pod_dns", False, f"the pod on {host} resolved {name} to {', '.join(answers)}, not the "
                                            f"ClusterIP of service kubernetes ({cluster_ip})")
    if rc is None:
        return _check("k3s_pod_dns", False, f"the pod on {host} made no lookup of {name}")
    return _check("k3s_pod_dns", False, f"the pod on {host} found no address for {name}: "
                                        f"{' '.join(said.split())[:300] or 'no answer'} (exit {rc})")


# ---------------------------------------------------------------------------------------
# GPU support (templates/gpu-read.sh.j2 on the first server)


def gpu_checks(text, host, plan, facts, skip_reason=""):
    """k3s_gpu_runtime of ``host`` from gpu-read.sh's output, judged where its GPU plan has a container runtime.

    ``plan`` is what the gpu_plan filter returns for the host (the gpu role's decision),
    ``facts`` what gpu_facts read: the node must advertise as many nvidia.com/gpu as its PCI
    bus shows GPUs of the stack. Skipped with the reason where k3s does not run, the host has
    no GPU stack, or no container support (gpu_container_runtime) or runtime of its own.
    """
    name = GPU_NODE[0]
    if skip_reason:
        return [_skipped(name, f"not live: {skip_reason}")]
    if not plan:
        return [_skipped(name, f"no GPU plan for {host}: its GPUs were not read (k3s does not run on it)")]
    stack = plan.get("stack") or "cpu"
    container = plan.get("container")
    if stack == "cpu":
        return [_skipped(name, f"no GPU stack on this host (cpu): {plan.get('reason') or 'no GPU'}")]
    if not container:
        return [_skipped(name, f"no container support for the {stack} stack on this host: gpu_container_runtime is false")]
    runtime = container.get("runtime")
    if not runtime:
        return [_skipped(name, f"the {stack} stack has no container runtime of its own ({container.get('note')}); "
                               f"the role deploys no device plugin for it")]
    wanted = len([gpu for gpu in (facts or {}).get("gpus") or [] if gpu.get("compute_stack") == stack])
    found = live_sections(text)
    problems, pod_words, image = [], "", None
    classes, error = _json(found, "runtimeclasses")
    if error:
        problems.append(error)
    else:
        runtime_class = _items(classes).get(runtime)
        if runtime_class is None:
            problems.append(f"no RuntimeClass {runtime} (RuntimeClasses: {', '.join(sorted(filter(None, _items(classes)))) or 'none'})")
        elif runtime_class.get("handler") != runtime:
            problems.append(f"RuntimeClass {runtime} has handler {runtime_class.get('handler')!r}, not {runtime} (the "
                            f"containerd runtime k3s adds)")
    daemonset, error = _json(found, "daemonset")
    pods, pods_error = _json(found, "pods")
    if error or pods_error:
        problems.append(_joined(_waited(found, "rollout", f"daemonset {DEVICE_PLUGIN} to roll out"), error, pods_error))
    else:
        containers = ((((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}])
        image = containers[0].get("image")
        mine = [item for item in (pods.get("items") or []) if (item.get("spec") or {}).get("nodeName") == host]
        if not mine:
            problems.append(_joined(f"no pod of daemonset {DEVICE_PLUGIN} on {host}",
                                    _waited(found, "rollout", f"daemonset {DEVICE_PLUGIN} to roll out")))
        else:
            ready, words = _pod_state(mine[0])
            pod_words = f"device plugin pod {(mine[0].get('metadata') or {}).get('name')} {words}"
            if not ready:
                problems.append(_joined(pod_words, _waited(found, "rollout", f"daemonset {DEVICE_PLUGIN} to roll out")))
    nodes, error = _json(found, "nodes")
    count = 0
    if error:
        problems.append(error)
    else:
        node = _items(nodes).get(host)
        status = (node or {}).get("status") or {}
        allocatable = (status.get("allocatable") or {}).get(GPU_RESOURCE)
        capacity = (status.get("capacity") or {}).get(GPU_RESOURCE)
        count = int(allocatable) if str(allocatable or "").isdigit() else 0
        if node is None:
            problems.append(f"no node {host} registered")
        elif wanted == 0 or count != wanted:
            problems.append(f"{host} advertises {allocatable or 'no'} allocatable {GPU_RESOURCE} (capacity "
                            f"{capacity or 'none'}); its PCI bus shows {wanted} GPU(s) of the {stack} stack")
    if problems:
        return [_check(name, False, "; ".join(problems), {"gpus": count})]
    return [_check(name, True, f"RuntimeClass {runtime} (handler {runtime}); {pod_words} ({image}); allocatable "
                               f"{GPU_RESOURCE} {count}, the {wanted} GPU(s) of its PCI bus", {"gpus": count})]
