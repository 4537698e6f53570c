# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's verdicts, as dicts for aicluster.lab.check (category ``exo``).

Offline, on every host, from the role's state read after its changes:
- ``exo_unit``: the unit file is the role's, systemd loaded it, it runs EXO in the
  foreground as the service user with the plan's ports and namespace;
- ``exo_hardening``: what systemd will enforce (``systemctl show``), directive by directive;
- ``exo_environment``: EXO_HOME, the model directories, offline mode, nothing EXO refuses;
- ``exo_firewall``: the running table (``nft -j``) against the one the plan asks for;
- ``exo_link_local``: an IPv6 link-local address on the cluster interface (discovery's
  path) and on no other interface of the plan;
- ``exo_identity``: the host's identity made for it, unique across the hosts, and no EXO
  node id file shared with another host;
- ``exo_install``: the artifact installed, or skipped with the reason.

Live, where EXO runs (skipped with the reason elsewhere):
- ``exo_node_id``, ``exo_cluster_state`` (every node's /state lists every EXO node, ready
  and live), ``exo_peer_links`` (zenoh's connections run over the cluster interface, from
  the kernel's socket table), ``exo_chat`` (one completion and its latency);
- chaos: ``exo_chaos_<fault>_<victim>_dropped`` and ``..._rejoined``, timed on the observer.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex

from ansible_collections.aicluster.lab.plugins.module_utils import exo, exo_api, exo_firewall
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import link_local_addresses
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections

CATEGORY = "exo"

# Hardening the unit asks for, as ``systemctl show`` prints it; lists compare as sets.
HARDENING = {
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "LimitNOFILE": "65535",
    "UMask": "0027",
}
SET_VALUED = {"RestrictAddressFamilies", "ReadWritePaths", "SystemCallArchitectures"}


def record(name, description, problems, message, figures=None, skip_reason=""):
    entry = {"name": name, "category": CATEGORY, "description": description, "passed": not problems and not skip_reason,
             "message": "; ".join(problems) if problems else message, "figures": figures or {}}
    if skip_reason:
        entry["passed"] = True
        entry["skip_reason"] = skip_reason
        entry["message"] = skip_reason
    return entry


def skipped(name, description, reason):
    return record(name, description, [], "", skip_reason=reason)


# ---------------------------------------------------------------- offline

def exec_argv(value):
    """The argv of ``systemctl show -p ExecStart``: '{ path=... ; argv[]=a b c ; ... }' -> [a, b, c]."""
    match = re.search(r"argv\[\]=(.*?) ;", value or "")
    return shlex.split(match.group(1)) if match else []


def environment(value):
    """``systemctl show -p Environment``: space-separated KEY=VALUE words (systemd quotes values with spaces)."""
    found = {}
    for word in shlex.split(value or ""):
        key, sep, val = word.partition("=")
        if sep:
            found[key] = val
    return found


def unit_check(state, ctx):
    problems = []
    show = state.get("unit_show") or {}
    wanted = next(item for item in ctx["files"] if item["path"].endswith("/" + ctx["unit"]))
    if state["files"].get(wanted["path"]) != exo.sha256(wanted["content"]):
        problems.append(f"{wanted['path']} is not the role's (changed by hand, or the role has not run)")
    if show.get("LoadState") != "loaded":
        problems.append(f"systemd has {ctx['unit']} {show.get('LoadState') or 'not'} loaded")
    for key in ("User", "Group", "WorkingDirectory"):
        if show.get(key) != ctx[key.lower()]:
            problems.append(f"{key} is {show.get(key)!r}, expected {ctx[key.lower()]!r}")
    argv = exec_argv(show.get("ExecStart"))
    if argv != ctx["exec_start"]:
        problems.append(f"ExecStart runs {' '.join(argv) or 'nothing'}, expected {' '.join(ctx['exec_start'])}")
    if "--legacy-daemon" in argv:
        problems.append("--legacy-daemon forks EXO away from systemd")
    requires = (show.get("Requires") or "").split()
    if ctx["firewall_unit"] not in requires:
        problems.append(f"{ctx['unit']} does not require {ctx['firewall_unit']} (EXO could start without its firewall)")
    return record("exo_unit", f"{ctx['unit']}: the role's unit, EXO {ctx['ref'][:12]} in the foreground as "
                              f"{ctx['user']}, behind {ctx['firewall_unit']}", problems,
                  f"{ctx['unit']} loaded: {' '.join(argv)}")


def hardening_check(state, ctx):
    show = state.get("unit_show") or {}
    wanted = dict(HARDENING, ReadWritePaths=" ".join(ctx["read_write_paths"]),
                  PrivateDevices="no" if ctx["devices"] else "yes")
    problems = []
    for key, value in sorted(wanted.items()):
        have = show.get(key)
        same = (set((have or "").split()) == set(value.split())) if key in SET_VALUED else have == value
        if not same:
            problems.append(f"{key}={have if have is not None else '(not shown)'}, expected {key}={value}")
    return record("exo_hardening", f"{ctx['unit']} as systemd enforces it: no new privileges, private /tmp, a read-only "
                                   "system with only EXO's directories writable, no capabilities",
                  problems, f"{len(wanted)} directives as asked, writable: {' '.join(ctx['read_write_paths'])}",
                  {"directives": len(wanted)})


def environment_check(state, ctx):
    have = environment((state.get("unit_show") or {}).get("Environment"))
    problems = [f"{key}={have.get(key)!r}, expected {value!r}" for key, value in sorted(ctx["environment"].items())
                if have.get(key) != value]
    problems += [f"{key} is set: {why}" for key, why in (
        ("EXO_LIBP2P_NAMESPACE", "EXO refuses to start with it (removed upstream; the namespace is --namespace)"),)
        if key in have]
    return record("exo_environment", "EXO's environment: its home, model directories and offline mode",
                  problems, " ".join(f"{key}={have[key]}" for key in sorted(ctx["environment"])))


def firewall_check(state, ctx):
    spec = ctx["firewall"]
    try:
        problems = exo_firewall.differences(exo_firewall.expected(spec), exo_firewall.live(state["nft"]))
    except exo_firewall.FirewallInputError as exc:
        problems = [str(exc)]
    if not (state.get("tools") or {}).get("nft"):
        problems = ["nft is not installed"] + problems
    message = (f"table inet {exo_firewall.TABLE}: UDP {spec['discovery_port']} and TCP {spec['zenoh_port']} from "
               f"{len(spec['peers_v4'])} peer(s) on {spec['interface']} only, TCP {spec['api_port']} from "
               f"{', '.join(spec['api_sources'])}")
    if spec.get("note"):
        message += f" ({spec['note']})"
    return record("exo_firewall", f"EXO's ports open only on the cluster network ({spec['interface']}), as the plan says",
                  problems, message, {"peers": len(spec["peers_v4"])})


def link_local_check(state, ctx):
    found = link_local_addresses(state.get("addrs") or [])
    cluster = ctx["cluster_interface"]
    usable, duplicate = found.get(cluster, ([], []))
    problems = []
    if duplicate and not usable:
        problems.append(f"{cluster}'s link-local {', '.join(duplicate)} failed duplicate address detection "
                        "(another host has it: a cloned MAC or machine-id)")
    elif not usable:
        problems.append(f"{cluster} has no IPv6 link-local address: EXO's discovery cannot run there")
    others = sorted(name for name, (addrs, dups) in found.items() if name not in (cluster, "lo") and (addrs or dups))
    planned = [name for name in others if name in ctx["plan_interfaces"]]
    if planned:
        problems.append(f"the plan's {', '.join(planned)} also carry IPv6 link-local addresses (only {cluster} should)")
    message = f"{cluster} {', '.join(usable)}"
    unplanned = [name for name in others if name not in planned]
    if unplanned:
        message += (f"; {', '.join(unplanned)} (not the plan's) carry link-local addresses too: EXO announces there, "
                    "the firewall drops it")
    return record("exo_link_local", f"IPv6 link-local on the cluster interface {cluster}, where EXO discovers its peers, "
                                    "and on no other interface of the plan", problems, message)


def identity_check(state, ctx):
    ident = state.get("identity") or {}
    problems = []
    if not exo.UUID.match(ident.get("id", "")):
        problems.append(f"{ctx['identity_file']} holds no identity ({ident or 'absent'})")
    elif ident.get("host") != ctx["host"] or ident.get("machine_id") != state.get("machine_id"):
        problems.append(f"the identity was made for {ident.get('host')} on machine {ident.get('machine_id')}, "
                        f"this is {ctx['host']} on {state.get('machine_id')}")
    same = sorted(host for host, other in (ctx.get("identities") or {}).items()
                  if host != ctx["host"] and other and other == ident.get("id"))
    if same:
        problems.append(f"{', '.join(same)} hold the same identity {ident.get('id')}")
    machines = sorted(host for host, other in (ctx.get("machine_ids") or {}).items()
                      if host != ctx["host"] and other == state.get("machine_id"))
    if machines:
        problems.append(f"{', '.join(machines)} share machine-id {state.get('machine_id')}")
    if ctx["host"] in (ctx.get("shared_node_zids") or []):
        problems.append("EXO's node_zid file is the same as another host's")
    return record("exo_identity", "a node identity made on this host for it, unique across the hosts (a cloned image "
                                  "shares none)", problems,
                  f"{ident.get('id')} for {ctx['host']}, machine {state.get('machine_id')}; "
                  f"unique among {len(ctx.get('identities') or {})} host(s)")


def install_check(state, ctx):
    artifact, installed = ctx.get("artifact"), state.get("artifact")
    if not artifact and not (installed and installed.get("sha256")):
        return skipped("exo_install", "EXO installed from a pre-built artifact", ctx["no_artifact_reason"])
    wanted = artifact or installed
    problems = []
    if not installed or installed.get("sha256") != wanted.get("sha256"):
        problems.append(f"{ctx['install_dir']} holds {(installed or {}).get('sha256', 'nothing')}, "
                        f"the artifact is {wanted.get('sha256')}")
    if installed and installed.get("extra") != ctx["extra"]:
        problems.append(f"the installed artifact holds {installed.get('extra')}, the host needs {ctx['extra']} "
                        f"({ctx['backend_reason']})")
    return record("exo_install", "EXO installed from a pre-built artifact", problems,
                  f"EXO {wanted.get('ref', '?')[:12]} {wanted.get('extra')} for {wanted.get('arch')} in "
                  f"{ctx['install_dir']} ({ctx['backend_reason']})")


def offline_checks(state, ctx):
    """Every offline check of one host, in report order."""
    return [unit_check(state, ctx), hardening_check(state, ctx), environment_check(state, ctx),
            firewall_check(state, ctx), link_local_check(state, ctx), identity_check(state, ctx),
            install_check(state, ctx)]


# ---------------------------------------------------------------- live

LIVE = {
    "exo_node_id": "the node answers GET /node_id with its id",
    "exo_cluster_state": "the node's /state lists every EXO node, ready (identity and memory) and live (in the topology)",
    "exo_peer_links": "zenoh's TCP connections to the peers run over the cluster interface (the kernel's socket table)",
    "exo_chat": "one chat completion on a staged model, its latency a figure",
}


def live_skipped(reason, names=("exo_node_id", "exo_cluster_state", "exo_peer_links", "exo_chat")):
    return [skipped(name, LIVE[name], reason) for name in names]


def node_id_check(probe):
    answer = exo_api.answer(sections(probe).get("node_id"))
    problems, node_id = [], None
    if answer["status"] != 200:
        problems.append(f"GET /node_id: {answer['error'] or 'status ' + str(answer['status'])}")
    else:
        try:
            node_id = exo_api.parse_node_id(answer["body"])
        except exo_api.ExoApiError as exc:
            problems.append(str(exc))
    return record("exo_node_id", LIVE["exo_node_id"], problems, f"node id {node_id}",
                  {"response_ms": round(answer["seconds"] * 1000, 1)} if answer["seconds"] is not None else {}), node_id


def cluster_state_check(probe, node_ids, cluster_subnet=None):
    """``node_ids``: {host: its current node id} for every host EXO runs on (None where /node_id failed).

    With ``cluster_subnet``, every socket edge of the topology (EXO's workers probe each
    peer's API on every address the peer reports, and record the ones that answer) must
    lead into the cluster subnet: an edge elsewhere means a path around the firewall.
    """
    answer = exo_api.answer(sections(probe).get("state"))
    if answer["status"] != 200:
        return record("exo_cluster_state", LIVE["exo_cluster_state"],
                      [f"GET /state: {answer['error'] or 'status ' + str(answer['status'])}"], "")
    try:
        state = exo_api.parse_state(answer["body"])
    except exo_api.ExoApiError as exc:
        return record("exo_cluster_state", LIVE["exo_cluster_state"], [str(exc)], "")
    problems = []
    unknown = sorted(host for host, node in node_ids.items() if not node)
    if unknown:
        problems.append(f"{', '.join(unknown)} gave no node id")
    current = {node: host for host, node in node_ids.items() if node}
    for kind in ("ready", "live"):
        lacking = sorted(host for node, host in current.items() if node not in state[kind])
        if lacking:
            problems.append(f"not {kind}: {', '.join(f'{host} ({current_id(node_ids, host)})' for host in lacking)}")
    ghosts = sorted(set(state["live"]) - set(current))
    if ghosts:
        problems.append(f"live nodes that no host is: {', '.join(ghosts)}")
    if cluster_subnet:
        subnet = ipaddress.ip_network(cluster_subnet, strict=False)
        outside = sorted({f"{edge['sink']} at {edge['address']}" for edge in state["edges"] if edge["kind"] == "socket"
                          and not _in(edge["address"], subnet)})
        if outside:
            problems.append(f"EXO reaches peers outside the cluster network {cluster_subnet}: {', '.join(outside)}")
    stale = sorted(set(state["identities"]) - set(state["live"]) - set(current))
    message = f"{len(current)} node(s) ready and live: " + ", ".join(f"{host} {node}" for node, host in sorted(
        current.items(), key=lambda item: item[1]))
    if stale:
        message += (f"; identities of {len(stale)} node(s) gone before (EXO keeps nodeIdentities after a "
                    f"timeout): {', '.join(stale)}")
    return record("exo_cluster_state", LIVE["exo_cluster_state"], problems, message,
                  {"ready_nodes": len(state["ready"]), "live_nodes": len(state["live"]),
                   "edges": len(state["edges"]), "wait_s": round(answer["seconds"] or 0, 1)})


def _in(address, subnet):
    try:
        return ipaddress.ip_address(address.split("%")[0]) in subnet
    except ValueError:
        return False


def current_id(node_ids, host):
    return node_ids.get(host) or "?"


def _on_cluster(sock, interface, address):
    ip = ipaddress.ip_address(sock["local"]) if sock["local"] != "*" else None
    if ip is not None and ip.version == 6 and ip.is_link_local:
        return sock["scope"] == interface
    return sock["local"] == address


def peer_links_check(probe, ctx):
    """``ctx``: interface, address (this host's cluster address), port (zenoh's), peers {host: {link_local: [..],
    address}} of the other hosts EXO runs on."""
    try:
        sockets = exo_api.parse_sockets(sections(probe).get("sockets", ""))
    except exo_api.ExoApiError as exc:
        return record("exo_peer_links", LIVE["exo_peer_links"], [str(exc)], "")
    port = ctx["port"]
    zenoh = [sock for sock in sockets if port in (sock["local_port"], sock["peer_port"])]
    elsewhere = [sock for sock in zenoh if not _on_cluster(sock, ctx["interface"], ctx["address"])]
    problems = [f"zenoh connection {sock['local']}{'%' + sock['scope'] if sock['scope'] else ''}:{sock['local_port']} "
                f"<-> {sock['peer']}:{sock['peer_port']} is not on {ctx['interface']}" for sock in elsewhere]
    by_peer = {}
    for host, peer in sorted(ctx["peers"].items()):
        addresses = set(peer.get("link_local") or []) | ({peer["address"]} if peer.get("address") else set())
        by_peer[host] = [sock for sock in zenoh if sock["peer"] in addresses and sock not in elsewhere]
    lonely = sorted(host for host, socks in by_peer.items() if not socks)
    if lonely:
        problems.append(f"no zenoh connection with {', '.join(lonely)} on {ctx['interface']}")
    rtts = [sock["rtt_ms"] for socks in by_peer.values() for sock in socks if sock["rtt_ms"] is not None]
    figures = {"connections": len(zenoh), "peers_connected": sum(1 for socks in by_peer.values() if socks)}
    if rtts:
        figures["rtt_ms_max"] = max(rtts)
    return record("exo_peer_links", LIVE["exo_peer_links"], problems,
                  f"{figures['peers_connected']} of {len(by_peer)} peer(s) connected on {ctx['interface']} over TCP "
                  f"{port}, {len(zenoh)} connection(s), none elsewhere", figures)


def chat_check(probe, model):
    parts = sections(probe)
    place, wait, chat = (exo_api.answer(parts.get(name)) for name in ("place", "await", "chat"))
    problems, figures = [], {}
    if place["status"] not in (200, 201):
        problems.append(f"POST /place_instance: {place['error'] or 'status ' + str(place['status'])} {place['body'][:200]}")
    else:
        try:
            ready = exo_api.parse_await(wait["body"]) if wait["status"] == 200 else None
        except exo_api.ExoApiError as exc:
            ready, problems = None, problems + [str(exc)]
        if wait["seconds"] is not None:
            figures["await_s"] = round(wait["seconds"], 2)
        if ready is None and not problems:
            problems.append(f"GET /instance/await: {wait['error'] or 'status ' + str(wait['status'])}")
        elif ready is not None and not ready["ready"]:
            problems.append(f"no instance of {model}: {ready['message']}")
    if not problems:
        if chat["status"] != 200:
            problems.append(f"POST /v1/chat/completions: {chat['error'] or 'status ' + str(chat['status'])} "
                            f"{chat['body'][:200]}")
        else:
            try:
                answer = exo_api.parse_chat(chat["body"])
                if not answer["content"]:
                    problems.append(f"the completion has no text (finish_reason {answer['finish_reason']})")
                figures["latency_s"] = round(chat["seconds"], 3)
                if answer["completion_tokens"] is not None:
                    figures["completion_tokens"] = answer["completion_tokens"]
            except exo_api.ExoApiError as exc:
                problems.append(str(exc))
    return record("exo_chat", LIVE["exo_chat"], problems,
                  f"{model} answered in {figures.get('latency_s')} s" if not problems else "", figures)


# ---------------------------------------------------------------- chaos

def chaos_events(text):
    events = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def chaos_checks(text, fault, victim, old_id, expected_nodes, thresholds):
    """The dropped and rejoined checks of one fault from the observer's watch events.

    ``old_id``: the victim's node id before the fault; ``expected_nodes``: how many nodes are
    live when all are back; ``thresholds``: max_drop_s, max_rejoin_s.
    """
    name = f"exo_chaos_{fault}_{victim}"
    what = {"stop": f"EXO stopped on {victim}", "partition": f"{victim}'s cluster link cut"}[fault]
    events = chaos_events(text)
    drop_problems, rejoin_problems, drop_fig, rejoin_fig = [], [], {}, {}
    downs = [e for e in events if e["event"] == "victim_down"]
    ups = [e for e in events if e["event"] == "victim_up"]
    if not events or events[0]["event"] != "start":
        drop_problems.append(f"the watch printed no events: {(text or '').strip()[:200]!r}")
    elif not ups or (downs and downs[0]["t"] < ups[0]["t"]):
        drop_problems.append("the victim was already down when the watch started: nothing to time")
    elif not downs:
        drop_problems.append(f"the victim never went down within the watch ({events[-1]['t']} s)")
    if drop_problems:
        rejoin_problems = ["not measured: " + drop_problems[0]]
    else:
        t_down = downs[0]["t"]
        states = [e for e in events if e["event"] == "state"]
        dropped = next((e for e in states if e["t"] >= t_down and old_id not in e["live"]), None)
        back = next((e for e in ups if e["t"] > t_down), None)
        if back:
            drop_fig["down_s"] = round(back["t"] - t_down, 1)
        # A victim that keeps its id (a partition) must be dropped while it is away; a restarted
        # one comes back with a new id, and its old one may go later.
        if dropped is not None and back and back.get("node_id") == old_id and dropped["t"] > back["t"]:
            dropped = None
        if dropped is None:
            drop_problems.append(f"the observer's /state still listed {victim} ({old_id}) "
                                 f"{'when it came back' if back else 'at the end of the watch'}")
        else:
            drop_fig["detect_s"] = round(dropped["t"] - t_down, 1)
            if drop_fig["detect_s"] > thresholds["max_drop_s"]:
                drop_problems.append(f"dropped after {drop_fig['detect_s']} s, more than {thresholds['max_drop_s']} s")
        if back is None:
            rejoin_problems.append(f"{victim}'s API did not answer again within the watch ({events[-1]['t']} s)")
        else:
            new_id = back.get("node_id")
            rejoined = next((e for e in states if e["t"] >= back["t"] and new_id in e["live"]
                             and len(e["live"]) >= expected_nodes), None)
            if rejoined is None:
                rejoin_problems.append(f"{victim} ({new_id}) was not live again in the observer's /state with "
                                       f"{expected_nodes} node(s) by the end of the watch ({events[-1]['t']} s)")
            else:
                rejoin_fig["rejoin_s"] = round(rejoined["t"] - back["t"], 1)
                rejoin_fig["new_node_id"] = int(new_id != old_id)
                if rejoin_fig["rejoin_s"] > thresholds["max_rejoin_s"]:
                    rejoin_problems.append(f"rejoined after {rejoin_fig['rejoin_s']} s, more than "
                                           f"{thresholds['max_rejoin_s']} s")
    return [
        record(f"{name}_dropped", f"{what}: the others' /state drops it (time from its API going silent)",
               drop_problems, f"dropped {drop_fig.get('detect_s')} s after {victim} went silent", drop_fig),
        record(f"{name}_rejoined", f"{what}, then back: live again in the others' /state (time from its API answering)",
               rejoin_problems, f"live again {rejoin_fig.get('rejoin_s')} s after {victim} answered", rejoin_fig),
    ]
