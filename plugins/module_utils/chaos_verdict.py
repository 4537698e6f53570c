# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chaos role's verdicts on one fault: each victim lost and back, the others kept.

Everything is timed on the controller's clock: the reachability watch
(reachability_watch) probes every node from there, and the role notes there when it hit
and healed each victim. The role hands over one record per fault:

- ``victims``, ``nodes``, ``observer`` (the node that pinged the survivors);
- ``hit_at`` and ``heal_at``: {victim: epoch seconds}, ``ssh_at``: when SSH answered;
- ``watch``: the watch's targets, {node: {transitions: [{state: lost|back, time,
  first_failed_at}], lost_s_total}};
- ``ssh``: {victim: wait_for's result}, ``net_back``: {victim: rc of the observer's
  ping on the cluster network}, ``survivor_pings``: {survivor: rc} during the fault;
- ``lost_after``, ``interval_ms`` and ``recover_timeout_s``: the watch's settings.

Checks, as dicts for aicluster.lab.check: ``chaos_<fault>_<victim>_lost`` (the watch
declared it lost), ``chaos_<fault>_others_kept`` (no survivor was lost and the observer
reached the others on the cluster network) and ``chaos_<fault>_<victim>_recovered``
(SSH and the cluster network answer again, with the times).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone


def _clock(epoch):
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S")


def _first(transitions, state, since):
    return next((t for t in transitions if t.get("state") == state and float(t.get("time", 0)) >= since), None)


def lost_check(fault, victim, record):
    watched = record["watch"].get(victim) or {}
    hit = float(record["hit_at"][victim])
    lost = _first(watched.get("transitions") or [], "lost", hit)
    first_failed = lost.get("first_failed_at") if lost else None
    return {
        "name": f"chaos_{fault}_{victim}_lost",
        "category": "chaos",
        "description": (f"{fault}: the watch declares {victim} lost ({record['lost_after']} failed probes in a row, "
                        f"every {record['interval_ms']} ms)"),
        "passed": lost is not None,
        "message": (f"{victim} lost at {_clock(lost['time'])} UTC, {lost['time'] - hit:.2f} s after the {fault}" if lost
                    else f"{victim} was never declared lost after the {fault}: "
                         f"{json.dumps(watched.get('transitions') or [])}"),
        "figures": {"detect_s": round(lost["time"] - hit, 2) if lost else None,
                    "first_failed_s": round(first_failed - hit, 2) if first_failed is not None else None},
    }


def others_check(fault, record):
    survivors = [node for node in record["nodes"] if node not in record["victims"]]
    lost_others = [node for node in survivors if (record["watch"].get(node) or {}).get("lost_s_total", 0) > 0]
    pings = record.get("survivor_pings") or {}
    unreachable = [node for node, rc in pings.items() if rc != 0]
    reached = (f", {record['observer']} reached {', '.join(pings)} on the cluster network" if pings else "")
    return {
        "name": f"chaos_{fault}_others_kept",
        "category": "chaos",
        "description": (f"{fault}: no other node was lost, and {record['observer']} still reached the other survivors "
                        "on the cluster network during the fault"),
        "passed": not lost_others and not unreachable,
        "message": (f"{', '.join(survivors)} stayed reachable{reached}" if not lost_others and not unreachable
                    else f"lost during the {fault}: {', '.join(lost_others) or 'none'}; "
                         f"unreachable on the cluster network: {', '.join(unreachable) or 'none'}"),
        "figures": {"survivors": len(survivors), "pinged": len(pings)},
    }


def recovered_check(fault, victim, record):
    watched = record["watch"].get(victim) or {}
    heal, hit, ssh_at = float(record["heal_at"][victim]), float(record["hit_at"][victim]), float(record["ssh_at"])
    back = _first(watched.get("transitions") or [], "back", heal)
    ssh = (record.get("ssh") or {}).get(victim) or {}
    ssh_ok = not ssh.get("failed") and ssh.get("state") == "started"
    net_ok = (record.get("net_back") or {}).get(victim) == 0
    passed = back is not None and ssh_ok and net_ok
    if passed:
        message = (f"{victim} back at {_clock(back['time'])} UTC, {back['time'] - heal:.2f} s after it was "
                   f"{'booted' if fault != 'partition' else 'plugged back'}, SSH after {ssh_at - heal:.2f} s; "
                   "it answers on the cluster network")
    else:
        message = (f"{victim} {'answers the watch' if back else 'did not answer the watch'}, "
                   f"{'SSH answered' if ssh_ok else 'SSH did not answer'}"
                   f"{'' if net_ok else ' and not on the cluster network'} within {record['recover_timeout_s']} s")
    return {
        "name": f"chaos_{fault}_{victim}_recovered",
        "category": "chaos",
        "description": f"{fault}: {victim} answers on SSH and on the cluster network after it was healed",
        "passed": passed,
        "message": message,
        "figures": {"recover_s": round(back["time"] - heal, 2) if back else None,
                    "down_s": round(back["time"] - hit, 2) if back else None,
                    "ssh_s": round(ssh_at - heal, 2)},
    }


def chaos_checks(fault, record):
    """Every check of one fault, in the order the role records them."""
    victims = record["victims"]
    return ([lost_check(fault, victim, record) for victim in victims]
            + [others_check(fault, record)]
            + [recovered_check(fault, victim, record) for victim in victims])
