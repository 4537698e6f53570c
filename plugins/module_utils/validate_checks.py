# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validate role's L1, L2 and network checks of one host, from two reads of it.

A Python module costs seconds per call on an emulated guest (measured: about 4.5 s
for ``command: true`` against 0.3 s for ``raw: true``), so the role reads each host
twice with plain sh and judges here, on the controller:

1. its state (``roles/validate/files/read-state.sh``): systemd, hostname and kernel,
   links, addresses and routes, as ``### <section>`` blocks;
2. its probes (``probe_script``): every ping of L2 and of the network mesh at once,
   each followed by ``ping-exit <rc>``, then the neighbour table they filled.

Checks are dicts: name, category, description, passed, message, figures, skip_reason.
"""

from __future__ import annotations

import re
import shlex

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import (
    IpJsonError,
    ip_json,
    link_local_addresses,
    network_checks,
)
from ansible_collections.aicluster.lab.plugins.module_utils.ping import split_ping_runs

_SECTION = re.compile(r"^### (.+)$", re.MULTILINE)
STATE_SECTIONS = ("system_state", "failed_units", "uname", "links", "addrs", "routes")
_JSON_SECTIONS = ("links", "addrs", "routes", "neigh")


class ValidateInputError(InputError):
    """Output that is not what the read or probe script prints."""


def split_sections(text):
    """``### <name>`` blocks as {name: body}, body without its trailing newline."""
    sections, matches = {}, list(_SECTION.finditer(text or ""))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        sections[match.group(1).strip()] = text[match.end():end].strip("\n")
    return sections


def _json_section(sections, name):
    try:
        return ip_json(sections.get(name, ""), f"section {name}")
    except IpJsonError as exc:
        raise ValidateInputError(str(exc)) from exc


def host_state(text):
    """The read script's output as {system_state, failed_units, hostname, kernel, links, addrs, routes, link_local}."""
    sections = split_sections(text)
    missing = [name for name in STATE_SECTIONS if name not in sections]
    if missing:
        raise ValidateInputError(f"the state read lacks section(s) {', '.join(missing)}: {(text or '')[:300]!r}")
    uname = sections["uname"].split()
    state = {
        "system_state": sections["system_state"].strip(),
        # "<unit> <load> <active> <sub> <description>" per failed unit: the name is enough.
        "failed_units": [line.split()[0] for line in sections["failed_units"].splitlines() if line.strip()],
        "hostname": uname[0] if uname else "",
        "kernel": uname[1] if len(uname) > 1 else "",
    }
    for name in ("links", "addrs", "routes"):
        state[name] = _json_section(sections, name)
    # The address a peer's L2 ping asks for: the first usable one (not a DAD failure).
    state["link_local"] = {name: usable[0] for name, (usable, _duplicate) in link_local_addresses(state["addrs"]).items()
                           if usable}
    return state


def l2_targets(host, interfaces, peers):
    """One target per interface and peer: whom the L2 ping asks, at which link-local address.

    ``peers`` maps each other host to {link_local, cluster_interface}; ``host``'s own
    entry is in it too. The peer's end of an interface has the same name, except the
    cluster interface, which is the peer's own: a host that tags the cluster network
    otherwise has another VLAN device, whose address is then pinged and must not answer.
    """
    own = peers.get(host, {})
    targets = []
    for interface in interfaces:
        for peer in sorted(set(peers) - {host}):
            other = peers[peer]
            peer_interface = interface
            if own.get("cluster_interface") and other.get("cluster_interface") and interface == own["cluster_interface"]:
                peer_interface = other["cluster_interface"]
            targets.append({"interface": interface, "peer": peer, "peer_interface": peer_interface,
                            "address": (other.get("link_local") or {}).get(peer_interface)})
    return targets


def probe_script(l2, net, count):
    """sh that runs every ping at once, each into a file of its own, then prints them in order.

    Blocks: ``### l2 <i>`` and ``### net <i>`` (the target's index), then ``### neigh``
    (read after the pings, which filled it). An L2 target without an address is not
    pinged: its check names the missing address. The mesh ping of a network is followed
    by one full-size packet that must not be fragmented (the MTU less 28 bytes of IPv4
    and ICMP headers).
    """
    count = int(count)
    quote = shlex.quote
    lines = ['d=$(mktemp -d) || exit 1']
    for index, target in enumerate(l2):
        if target.get("address"):
            where = quote(f"{target['address']}%{target['interface']}")
            lines.append(f'{{ ping -6 -n -q -c {count} -i 0.2 -W 2 {where}; echo "ping-exit $?"; }} '
                         f'>"$d/l2-{index}" 2>&1 &')
    for index, target in enumerate(net):
        dev, address = quote(target["interface"]), quote(target["address"])
        lines.append(f'{{ ping -n -q -c {count} -i 0.2 -W 2 -I {dev} {address}; echo "ping-exit $?"; '
                     f'ping -n -q -c 2 -i 0.2 -W 2 -M do -s {int(target["mtu"]) - 28} -I {dev} {address}; '
                     f'echo "ping-exit $?"; }} >"$d/net-{index}" 2>&1 &')
    lines.append("wait")
    for index, target in enumerate(l2):
        if target.get("address"):
            lines.append(f"echo '### l2 {index}'; cat \"$d/l2-{index}\"")
    for index in range(len(net)):
        lines.append(f"echo '### net {index}'; cat \"$d/net-{index}\"")
    lines.append('rm -rf "$d"')
    lines.append("echo '### neigh'; ip -j neigh show")
    return "\n".join(lines) + "\n"


def _last_lines(text, count):
    return "; ".join(line for line in (text or "").splitlines()[-count:] if line.strip())


def l1_checks(host, state, boot=None):
    """l1_systemd_running and l1_hostname. ``boot`` is vm_lab's record of the host ({how, ssh_s})."""
    boot = boot or {}
    running = state["system_state"] == "running" and not state["failed_units"]
    figures = {"time_to_ssh_s": boot["ssh_s"]} if boot.get("ssh_s") is not None else {}
    how = boot.get("how") or "not provisioned by vm_lab in this run"
    return [
        {"name": "l1_systemd_running", "category": "L1", "description": "systemd reached 'running' with no failed unit",
         "passed": running, "figures": figures,
         "message": (f"running ({how}), kernel {state['kernel']}" if running else
                     f"state {state['system_state']}; failed units: {', '.join(state['failed_units']) or 'none'}")},
        {"name": "l1_hostname", "category": "L1", "description": "the node's hostname is its inventory name",
         "passed": state["hostname"] == host, "figures": {},
         "message": (f"hostname {host}" if state["hostname"] == host
                     else f"hostname is {state['hostname']}, expected {host}")},
    ]


def l2_checks(state, targets, sections):
    """l2_<interface>_<peer>: the peer answers the L2 ping at its link-local address."""
    checks = []
    for index, target in enumerate(targets):
        runs = split_ping_runs(sections.get(f"l2 {index}", ""))
        run = runs[0] if runs else {"rc": None, "output": "", "figures": {}}
        if target["interface"] not in state["link_local"]:
            passed, message = False, f"no link-local address on {target['interface']}"
        elif not target.get("address"):
            passed, message = False, f"no link-local address on {target['peer']} {target['peer_interface']}"
        elif run["rc"] is None:
            passed, message = False, f"the probe printed no result for this ping: {sections.get(f'l2 {index}', '')!r}"
        else:
            passed = run["rc"] == 0
            message = run["output"].splitlines()[-1] if passed and run["output"] else _last_lines(run["output"], 2)
        checks.append({"name": f"l2_{target['interface']}_{target['peer']}", "category": "L2",
                       "description": f"{target['peer']} answers on {target['interface']} at layer 2 (IPv6 link-local)",
                       "passed": passed, "message": message, "figures": run["figures"]})
    return checks


def ping_checks(targets, sections):
    """net_ping_<network>_<peer> (the mesh ping) and net_path_mtu_<network>_<peer> (one full-size packet)."""
    checks = []
    for index, target in enumerate(targets):
        body = sections.get(f"net {index}", "")
        runs = split_ping_runs(body)
        mesh = runs[0] if runs else {"rc": None, "output": body, "figures": {}}
        full = runs[1] if len(runs) > 1 else {"rc": None, "output": body, "figures": {}}
        network, peer, mtu = target["network"], target["peer"], target["mtu"]
        checks.append({
            "name": f"net_ping_{network}_{peer}", "category": "network",
            "description": f"{peer} answers at {target['address']} on the {network} network ({target['interface']})",
            "passed": mesh["rc"] == 0, "figures": mesh["figures"],
            "message": (mesh["output"].splitlines()[-1] if mesh["rc"] == 0 and mesh["output"]
                        else _last_lines(mesh["output"], 2) or "the probe printed no result for this ping"),
        })
        checks.append({
            "name": f"net_path_mtu_{network}_{peer}", "category": "network",
            "description": (f"{peer} answers a {mtu}-byte packet that may not be fragmented on the {network} "
                            f"network ({target['interface']})"),
            "passed": full["rc"] == 0, "figures": dict(full["figures"], mtu=mtu),
            "skip_reason": ("" if mesh["rc"] == 0 else
                            f"{peer} does not answer on this network at all (net_ping_{network}_{peer})"),
            "message": (f"MTU {mtu} end to end: {full['output'].splitlines()[-1] if full['output'] else ''}"
                        if full["rc"] == 0 else
                        f"a {mtu}-byte packet with don't-fragment set did not get through, though smaller ones do: "
                        f"something on the path (a bridge, a switch port or the peer) has a smaller MTU than the "
                        f"profile's {mtu}: {_last_lines(full['output'], 100)}"),
        })
    return checks


def validate_checks(host, state, probe, probe_output, layers, model=None, boot=None):
    """Every check of one host, in the order of the layers.

    ``probe`` is {l2, net}: the targets probe_script was given; ``probe_output`` what it printed.
    """
    sections = split_sections(probe_output)
    checks = []
    if "L1" in layers:
        checks += l1_checks(host, state, boot)
    if "L2" in layers:
        checks += l2_checks(state, probe.get("l2") or [], sections)
    if "network" in layers and model:
        parsed = dict(state, neigh=_json_section(sections, "neigh"))
        for check in network_checks(model, parsed, probe.get("net") or []):
            checks.append({"name": check["name"], "category": "network",
                           "description": f"{check['phase']}: {check['description']}",
                           "passed": check["passed"], "message": check["message"], "figures": {}})
        checks += ping_checks(probe.get("net") or [], sections)
    return checks
