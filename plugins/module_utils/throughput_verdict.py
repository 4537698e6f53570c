# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The throughput role's verdicts: each path and direction, and the bond against one link.

The role runs iperf3 to one peer over each path (every network the plan gives the host
towards that peer, and the management link), in both directions, and hands over one
result per run: {path: {network, peer, address, interface}, direction: send|receive,
error, figures} (iperf3.iperf3_run). The checks, as dicts for aicluster.lab.check:

- ``throughput_<network>_<peer>_<direction>``: iperf3 finished and received at least
  the minimum;
- ``throughput_bond_vs_single_link``: each network's received throughput as a multiple
  of the single management link's; figures only, skipped with the reason without both.
"""

from __future__ import annotations


def _mbps(value):
    return "?" if value is None else f"{value:.0f}"


def path_check(result, min_mbps, duration_s):
    path, direction, figures = result["path"], result["direction"], result.get("figures") or {}
    received = figures.get("received_mbps")
    error = result.get("error") or ""
    if error:
        problem = error
    elif received is None:
        problem = "iperf3 gave no received throughput"
    elif received < min_mbps:
        problem = f"{received:g} Mbit/s"
    else:
        problem = ""
    return {
        "name": f"throughput_{path['network']}_{path['peer']}_{direction}",
        "category": "performance",
        "description": (f"TCP {'to' if direction == 'send' else 'from'} {path['peer']} at {path['address']} "
                        f"over {path['interface']} ({path['network']}), {duration_s} s of iperf3"),
        "passed": not problem,
        "message": (f"{problem} (at least {min_mbps:g} Mbit/s expected)" if problem
                    else f"{_mbps(received)} Mbit/s received, {figures.get('retransmits', '?')} retransmits"),
        "figures": {key: figures[key] for key in ("sent_mbps", "received_mbps", "retransmits") if key in figures},
    }


def comparison_check(results):
    """Each network's received Mbit/s against the management link's (the single-link reference)."""
    received = {result["path"]["network"]: result["figures"]["received_mbps"] for result in results
                if result["direction"] == "receive" and not result.get("error")
                and (result.get("figures") or {}).get("received_mbps") is not None}
    single = received.get("management")
    others = {net: mbps for net, mbps in received.items() if net != "management"}
    check = {
        "name": "throughput_bond_vs_single_link",
        "category": "performance",
        "description": "each network's received throughput against the single management link's",
        "passed": True,
        "figures": {f"{net}_mbps": mbps for net, mbps in received.items()},
        "message": "",
        "skip_reason": "",
    }
    if not single or not others:
        check["skip_reason"] = "needs the management link and at least one network measured"
        return check
    check["message"] = "; ".join(f"{net} {mbps:.0f} Mbit/s = {mbps / single:.2f} x the single link" for net, mbps in others.items()) \
        + f"; management (single link) {single:.0f} Mbit/s"
    return check


def throughput_checks(results, min_mbps, duration_s):
    """A check per run, then the comparison."""
    return [path_check(result, float(min_mbps), duration_s) for result in results] + [comparison_check(results)]
