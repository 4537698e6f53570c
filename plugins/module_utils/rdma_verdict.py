# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rdma role's verdicts, as dicts for aicluster.lab.check (category ``rdma``).

Per host:
- ``rdma_device``: the device serving the plan's RDMA network (an adapter, or the
  Soft-RoCE device the role made), its port ACTIVE, and the GID holding the host's
  address on that network (the index every tool is given);
- ``rdma_dcb``: PFC on the profile's priority and the trust mode, read back with
  iproute2's dcb on an adapter; skipped with the reason on Soft-RoCE.

Per pair of hosts (recorded on the client, one run of tools from it to the server):
- ``rdma_connect_<server>``: an RC queue pair connected and exchanged messages
  (ibv_rc_pingpong over the chosen GIDs);
- ``rdma_latency_<server>``: ib_send_lat's typical latency within the bound;
- ``rdma_bandwidth_<server>``: ib_write_bw's average within the bound, with iperf3's
  TCP figure over the same addresses beside it.
A tool that is missing, fails or prints no result is a failed check with its reason.
"""

from __future__ import annotations

import re

from ansible_collections.aicluster.lab.plugins.module_utils.iperf3 import iperf3_run
from ansible_collections.aicluster.lab.plugins.module_utils.perftest import PerftestError, perftest_figures
from ansible_collections.aicluster.lab.plugins.module_utils.rdma import port_of
from ansible_collections.aicluster.lab.plugins.module_utils.script_output import sections

_PINGPONG = re.compile(r"(\d+) iters in ([\d.]+) seconds = ([\d.]+) usec/iter")
_PINGPONG_RATE = re.compile(r"bytes in [\d.]+ seconds = ([\d.]+) Mbit/sec")


def _record(name, description, problem, message, figures, skip_reason=""):
    record = {"name": name, "category": "rdma", "description": description, "passed": not problem,
              "message": problem or message, "figures": figures}
    if skip_reason:
        record["skip_reason"] = skip_reason
    return record


def device_check(read, endpoint):
    """``read``: the rdma_state filter's result after the role's changes (decision, state, gid)."""
    decision, gid = read["decision"], read.get("gid")
    device = decision["device"]
    port = port_of(read["state"], device) or {}
    kind = "Soft-RoCE" if decision["action"] == "soft_roce" else f"{decision['vendor']} adapter"
    # Report figures are numbers; the names (device, GID, its netdev) are in the message.
    figures = {"gid_index": gid["index"]} if gid else {}
    if not port:
        problem = f"{device} has no port 1 (devices: {', '.join(d['name'] for d in read['state']['devices']) or 'none'})"
    elif port.get("state") != "ACTIVE":
        problem = f"{device} port 1 is {port.get('state')} ({port.get('physical_state')}), not ACTIVE"
    elif port.get("link_layer") == "Ethernet" and not gid:
        problem = (f"{device} has no GID holding {endpoint['address']} ({endpoint['interface']}); "
                   f"its GIDs: {_gid_list(port)}")
    else:
        problem = ""
    where = f"GID {gid['index']} {gid['gid']} ({gid.get('type')}, {gid.get('ndev')})" if gid else "no GID needed"
    return _record(
        "rdma_device",
        f"{kind} {device} on {decision['netdev']} serves network {endpoint['network']} "
        f"({endpoint['interface']}, {endpoint['address']}): port ACTIVE, the address's GID",
        problem, f"{device} port 1 ACTIVE, {port.get('link_layer')}, {where} = {endpoint['address']}", figures)


def _gid_list(port):
    gids = port.get("gids") or []
    return "; ".join(f"{g['index']} {g['gid']} {g.get('ndev') or '-'} {g.get('type') or '?'}" for g in gids) or "none"


def _pfc_priorities(text):
    match = re.search(r"prio-pfc\s+((?:\d:(?:on|off)\s*)+)", text or "")
    if not match:
        return None
    return {int(p): state == "on" for p, state in (item.split(":") for item in match.group(1).split())}


def _dscp_priorities(text):
    """{priority: [DSCP names or values]} from ``dcb app show`` (e.g. 'dscp-prio AF31:3')."""
    found = {}
    match = re.search(r"dscp-prio\s+((?:\S+:\d\s*)+)", text or "")
    for item in (match.group(1).split() if match else []):
        dscp, _sep, prio = item.rpartition(":")
        found.setdefault(int(prio), []).append(dscp)
    return found


def dcb_check(read, endpoint, pfc_output="", app_output=""):
    """PFC on ``endpoint.priority`` (and DSCP mapped to it with trust dscp), read back with dcb."""
    decision = read["decision"]
    priority, trust = endpoint["priority"], endpoint["trust"]
    description = (f"PFC on priority {priority}, trust {trust}, on {decision['netdev']} (lossless RoCE on "
                   "adapters with DCB)")
    figures = {"priority": priority}
    if decision["action"] == "soft_roce":
        return _record("rdma_dcb", description, "", "", figures,
                       skip_reason=f"Soft-RoCE ({decision['device']}) has no DCB; PFC and trust apply to RDMA adapters")
    if "not supported" in (pfc_output or "").lower():
        return _record("rdma_dcb", description, "", "", figures,
                       skip_reason=f"{decision['netdev']} does not support DCB through dcbnl: {pfc_output.strip()[:120]}")
    pfc = _pfc_priorities(pfc_output)
    if pfc is None:
        return _record("rdma_dcb", description, f"dcb pfc show printed no prio-pfc line: {(pfc_output or '').strip()[:160]!r}",
                       "", figures)
    pfc_on, dscp = sorted(p for p, on in pfc.items() if on), []
    figures["pfc_priorities_on"] = len(pfc_on)
    problem = "" if pfc.get(priority) else f"PFC is off on priority {priority} (on: {pfc_on or 'none'})"
    if not problem and trust == "dscp":
        dscp = _dscp_priorities(app_output).get(priority) or []
        if not dscp:
            problem = f"no DSCP is mapped to priority {priority} (dcb app show: {(app_output or '').strip()[:120]!r})"
    message = f"PFC on priority {priority} (on: {pfc_on})" + (f", DSCP {', '.join(dscp)} to it" if trust == "dscp" else "")
    return _record("rdma_dcb", description, problem, message, figures)


def _tool_problem(name, found, tools_rc):
    if name not in found:
        return f"{name} did not run (no output section)"
    return "" if tools_rc.get(name) == 0 else f"{name} exited {tools_rc.get(name)}: {_last_line(found[name])}"


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return repr(lines[-1][:160]) if lines else "no output"


def _perftest_run(kind, tool, found, rcs):
    """(figures, problem) of one perftest run in the pair script's output (kind: lat or bw)."""
    problem = _tool_problem(kind, found, rcs)
    if problem:
        return {}, problem
    try:
        return perftest_figures(kind, found.get(kind), found.get(f"{kind}_report")), ""
    except PerftestError as exc:
        return {}, f"{tool}: {exc}"


def pair_checks(output, client, server, thresholds):
    """The checks of one client -> server run of the pair script (roles/rdma/templates/pair-client.sh.j2).

    ``client`` and ``server``: {host, device, gid_index, address, interface, network}.
    ``thresholds``: {max_latency_us, min_bandwidth_mbps}.
    """
    found = sections(output)
    rcs = {}
    for name in ("rc_pingpong", "lat", "bw", "iperf3"):
        value = (found.get(f"{name}_rc") or "").strip()
        rcs[name] = int(value) if value.lstrip("-").isdigit() else None
    no_gid = [end["host"] for end in (client, server) if end.get("gid_index") is None]
    path = (f"{client['device']} GID {client['gid_index']} ({client['address']}) to {server['host']} "
            f"{server['device']} GID {server['gid_index']} ({server['address']}) on {client['network']}")
    peer = server["host"]
    records = []
    if no_gid:
        setup = f"no GID for the RDMA address on {' and '.join(no_gid)} (see rdma_device): nothing measured"
    elif "server_error" in found:
        setup = f"the servers on {peer} did not start: {_last_line(found['server_error'])}"
    else:
        setup = ""
    if setup:
        for name, what in (("connect", "an RC queue pair"), ("latency", "RDMA send latency"),
                           ("bandwidth", "RDMA write bandwidth")):
            records.append(_record(f"rdma_{name}_{peer}", f"{what} from {path}", setup, "", {}))
        return records

    problem = _tool_problem("rc_pingpong", found, rcs)
    figures = {}
    match = _PINGPONG.search(found.get("rc_pingpong") or "")
    if match:
        figures = {"iterations": int(match.group(1)), "usec_per_iter": float(match.group(3))}
        rate = _PINGPONG_RATE.search(found["rc_pingpong"])
        if rate:
            figures["mbps"] = float(rate.group(1))
    elif not problem:
        problem = f"ibv_rc_pingpong printed no 'iters in' line: {_last_line(found.get('rc_pingpong'))}"
    records.append(_record(f"rdma_connect_{peer}", f"an RC queue pair from {path} (ibv_rc_pingpong)", problem,
                           f"{figures.get('iterations')} exchanges, {figures.get('usec_per_iter')} us each", figures))

    max_us = thresholds["max_latency_us"]
    figures, problem = _perftest_run("lat", "ib_send_lat", found, rcs)
    if not problem and figures.get("t_typical_us", 0) > max_us:
        problem = f"typical latency {figures['t_typical_us']:g} us (at most {max_us:g} us expected)"
    records.append(_record(
        f"rdma_latency_{peer}", f"RDMA send latency from {path} (ib_send_lat, {figures.get('msg_bytes', 2)} B)",
        problem, f"typical {figures.get('t_typical_us')} us, avg {figures.get('t_avg_us')} us, "
                 f"p99 {figures.get('p99_us')} us (at most {max_us:g} us)", figures))

    min_mbps = thresholds["min_bandwidth_mbps"]
    figures, problem = _perftest_run("bw", "ib_write_bw", found, rcs)
    if not problem and figures.get("bw_avg_mbps", 0) < min_mbps:
        problem = f"average {figures['bw_avg_mbps']:g} Mbit/s (at least {min_mbps:g} Mbit/s expected)"
    tcp = iperf3_run(found.get("iperf3") or "", "", rcs.get("iperf3"))
    tcp_mbps = tcp["figures"].get("received_mbps")
    if tcp_mbps is not None:
        figures["tcp_mbps"] = tcp_mbps
    if tcp_mbps and figures.get("bw_avg_mbps") is not None:
        figures["rdma_to_tcp"] = round(figures["bw_avg_mbps"] / tcp_mbps, 3)
    tcp_text = f"TCP {tcp_mbps:g} Mbit/s" if tcp_mbps is not None else f"TCP not measured: {tcp['error']}"
    if not problem and tcp_mbps is None:
        problem = f"iperf3 on the same addresses: {tcp['error']}"
    records.append(_record(
        f"rdma_bandwidth_{peer}", f"RDMA write bandwidth from {path} (ib_write_bw), beside iperf3 TCP on the same addresses",
        problem + (f"; {tcp_text}" if problem and tcp_mbps is not None else ""),
        f"RDMA {figures.get('bw_avg_mbps')} Mbit/s, {tcp_text} (at least {min_mbps:g} Mbit/s)", figures))
    return records
