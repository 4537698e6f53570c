# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EXO's API answers and the kernel's socket table, read as the exo role's checks need them.

Shapes are those of EXO's own models at the pinned ref (docs/exo.md):

- ``GET /node_id``: the node's id as a JSON string. At the pinned ref a node draws a new
  random id at every start (router.get_node_zid: persistence is disabled upstream), a hex
  string of at most 32 characters that does not start with 0 (zenoh's id rule).
- ``GET /state``: the State model with camelCase keys. A node is *ready* when it is in
  both ``nodeIdentities`` and ``nodeMemory`` (EXO's own test framework waits for N of
  each). A node is *live* while it is in ``topology.nodes`` and ``nodeMemory``: when the
  master times a node out (30 s without news, checked every 10 s) it removes it from the
  topology, ``lastSeen``, ``nodeMemory`` and the other per-node maps, but not from
  ``nodeIdentities`` or ``nodeBackends``, which keep a stopped node's entry.
- ``POST /place_instance``, ``GET /instance/await`` (server-sent events),
  ``POST /v1/chat/completions`` (OpenAI's shape, non-streaming).
- ``ss -Htnpi state established`` for the zenoh port: who talks to whom, on which interface.
"""

from __future__ import annotations

import ipaddress
import json
import re

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError

_NODE_ID = re.compile(r"^[1-9a-f][0-9a-f]{0,31}$")
_SS_ADDR = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[0-9.]+)|(?P<star>\*))(?:%(?P<scope>[^:\s]+))?:(?P<port>\d+|\*)$")


class ExoApiError(InputError):
    """An answer that is not what EXO's models define."""


def _json(body, what):
    if isinstance(body, (dict, list)):
        return body
    try:
        return json.loads(body)
    except (TypeError, ValueError) as exc:
        raise ExoApiError(f"{what}: not JSON ({exc}): {str(body)[:160]!r}") from exc


def parse_node_id(body):
    """``GET /node_id``'s body (a JSON string) as the id; raises ExoApiError when it is not one."""
    value = _json(body, "/node_id")
    if not isinstance(value, str) or not _NODE_ID.match(value):
        raise ExoApiError(f"/node_id: {value!r} is not an EXO node id (hex, at most 32 digits, no leading 0)")
    return value


def _memory(value):
    if isinstance(value, dict) and isinstance(value.get("inBytes"), int):
        return value["inBytes"]
    raise ExoApiError(f"/state: a memory figure is not {{inBytes: <int>}}: {value!r}")


def _edge(source, sink, edge):
    if "sinkMultiaddr" in edge:
        addr = edge["sinkMultiaddr"]
        address = addr.get("address", "") if isinstance(addr, dict) else str(addr)
        match = re.match(r"^/ip[46]/([^/]+)/tcp/(\d+)", address)
        return {"source": source, "sink": sink, "kind": "socket", "address": match.group(1) if match else address,
                "port": int(match.group(2)) if match else None}
    if "sourceRdmaIface" in edge:
        return {"source": source, "sink": sink, "kind": "rdma", "address": edge.get("sinkRdmaIface"), "port": None,
                "source_iface": edge.get("sourceRdmaIface")}
    raise ExoApiError(f"/state: topology edge {source} -> {sink} is neither a socket nor an RDMA connection: {edge!r}")


def parse_state(body):
    """``GET /state``'s body as {nodes, ready, live, identities, memory, edges, last_seen, backends, network, instances}."""
    state = _json(body, "/state")
    if not isinstance(state, dict):
        raise ExoApiError(f"/state: not an object: {str(state)[:160]!r}")
    missing = [key for key in ("nodeIdentities", "nodeMemory", "topology", "lastSeen") if key not in state]
    if missing:
        raise ExoApiError(f"/state lacks {', '.join(missing)} (keys: {', '.join(sorted(state))[:200]})")
    topology = state["topology"]
    if not isinstance(topology, dict) or "nodes" not in topology or "connections" not in topology:
        raise ExoApiError(f"/state: topology is not {{nodes, connections}}: {str(topology)[:160]!r}")
    memory = {node: {"ram_total": _memory(m.get("ramTotal")), "ram_available": _memory(m.get("ramAvailable")),
                     "swap_total": _memory(m.get("swapTotal")), "swap_available": _memory(m.get("swapAvailable"))}
              for node, m in state["nodeMemory"].items()}
    identities = {node: {"friendly_name": i.get("friendlyName"), "model_id": i.get("modelId"),
                         "chip_id": i.get("chipId"), "os_version": i.get("osVersion")}
                  for node, i in state["nodeIdentities"].items()}
    edges = []
    for source, sinks in (topology["connections"] or {}).items():
        for sink, items in (sinks or {}).items():
            edges.extend(_edge(source, sink, edge) for edge in items or [])
    topo_nodes = sorted(topology["nodes"] or [])
    network = {node: [{"name": i.get("name"), "ip": i.get("ipAddress"), "type": i.get("interfaceType")}
                      for i in (info or {}).get("interfaces") or []]
               for node, info in (state.get("nodeNetwork") or {}).items()}
    return {
        "nodes": sorted(set(identities) | set(memory) | set(topo_nodes) | set(state["lastSeen"])),
        "ready": sorted(set(identities) & set(memory)),
        "live": sorted(set(topo_nodes) & set(memory)),
        "identities": identities,
        "memory": memory,
        "topology_nodes": topo_nodes,
        "edges": edges,
        "last_seen": dict(state["lastSeen"]),
        "backends": dict(state.get("nodeBackends") or {}),
        "network": network,
        "instances": sorted(state.get("instances") or {}),
    }


def parse_place(body):
    """``POST /place_instance``'s answer (CreateInstanceResponse): {message, command_id, model_id}."""
    answer = _json(body, "/place_instance")
    if not isinstance(answer, dict) or "command_id" not in answer:
        raise ExoApiError(f"/place_instance: no command_id in {str(answer)[:160]!r}")
    # The response is a plain model (snake_case); the card inside it is one of EXO's camelCase models.
    card = answer.get("model_card") or {}
    return {"message": answer.get("message"), "command_id": answer["command_id"],
            "model_id": card.get("modelId", card.get("model_id"))}


def parse_await(text):
    """``GET /instance/await``'s event stream: {ready, message, instance_id}. Keepalive comments are skipped."""
    for line in (text or "").splitlines():
        if not line.startswith("data:"):
            continue
        event = _json(line[5:].strip(), "/instance/await")
        if event.get("type") == "ready":
            instance = event.get("instance") or {}
            # An Instance is a tagged model, {"MlxRingInstance": {...}}; the stream dumps it without
            # aliases (model_dump_json), so its fields are snake_case there, camelCase in /state.
            inner = next(iter(instance.values()), {}) if len(instance) == 1 else instance
            return {"ready": True, "message": "ready",
                    "instance_id": inner.get("instance_id", inner.get("instanceId"))}
        if event.get("type") == "timeout":
            return {"ready": False, "message": event.get("message", "timeout"), "instance_id": None}
    raise ExoApiError(f"/instance/await: no ready or timeout event in {str(text)[:160]!r}")


def parse_chat(body):
    """A non-streaming ``POST /v1/chat/completions`` answer: {model, content, finish_reason, completion_tokens}."""
    answer = _json(body, "/v1/chat/completions")
    if not isinstance(answer, dict) or answer.get("object") != "chat.completion":
        raise ExoApiError(f"/v1/chat/completions: not a chat.completion: {str(answer)[:200]!r}")
    choices = answer.get("choices") or []
    if not choices or "message" not in choices[0]:
        raise ExoApiError(f"/v1/chat/completions: no choice with a message: {str(answer)[:200]!r}")
    content = choices[0]["message"].get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    usage = answer.get("usage") or {}
    return {"model": answer.get("model"), "content": content if isinstance(content, str) else None,
            "finish_reason": choices[0].get("finish_reason"), "completion_tokens": usage.get("completion_tokens")}


def _address(text):
    match = _SS_ADDR.match(text)
    if not match:
        raise ExoApiError(f"ss: cannot read the address {text!r}")
    raw = match.group("v6") or match.group("v4") or "*"
    address = raw
    if raw != "*":
        ip = ipaddress.ip_address(raw)
        # A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d.
        address = str(ip.ipv4_mapped) if ip.version == 6 and ip.ipv4_mapped else str(ip)
    port = match.group("port")
    return address, match.group("scope"), int(port) if port.isdigit() else None


def parse_sockets(text):
    """``ss -Htnpi state established ...``: [{local, local_port, peer, peer_port, scope, process, rtt_ms}].

    ``scope`` is the interface ss names on a link-local address (``%bond0.200``); the
    ``-i`` line under each socket gives its RTT.
    """
    sockets = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if sockets:
                rtt = re.search(r"\brtt:([\d.]+)/", line)
                if rtt:
                    sockets[-1]["rtt_ms"] = float(rtt.group(1))
            continue
        words = line.split()
        # With a state filter ss drops the State column: Recv-Q Send-Q Local Peer [Process].
        if len(words) < 4 or not words[0].isdigit():
            raise ExoApiError(f"ss: cannot read the socket line {line!r}")
        local, local_scope, local_port = _address(words[2])
        peer, peer_scope, peer_port = _address(words[3])
        process = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
        sockets.append({"local": local, "local_port": local_port, "peer": peer, "peer_port": peer_port,
                        "scope": local_scope or peer_scope, "process": process.group(1) if process else None,
                        "pid": int(process.group(2)) if process else None, "rtt_ms": None})
    return sockets


def answer(section):
    """A probe section as {status, body, error, seconds}: 'status 200' / 'error <why>' / 'seconds 1.23', then the body."""
    status, error, seconds, body = None, None, None, []
    for line in (section or "").splitlines():
        if status is None and error is None and line.startswith("status "):
            status = int(line.split()[1])
        elif status is None and error is None and line.startswith("error "):
            error = line[6:]
        elif seconds is None and line.startswith("seconds ") and not body:
            seconds = float(line.split()[1])
        else:
            body.append(line)
    if status is None and error is None:
        error = "no answer"
    return {"status": status, "error": error, "seconds": seconds, "body": "\n".join(body)}
