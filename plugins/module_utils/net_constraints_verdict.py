# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The net_constraints role's verdicts: a constraint profile measured as configured, then gone.

The role measures three phases across the degraded interface, each one ping run
(ping.parse_ping_summary: received, loss_pct, rtt_avg_ms, rtt_mdev_ms) and one iperf3
run (mbps, and iperf_error when there is no figure): ``baseline`` before any profile,
``during`` with the profile applied and ``after`` it was removed. Two checks follow per
profile, as dicts for aicluster.lab.check (name, category, description, passed,
message, figures):

- ``constraint_<name>``: the RTT rose by the delay, jitter shows in mdev, the loss is
  the configured rate within the binomial spread, the rate limit holds;
- ``constraint_<name>_removed``: RTT, loss and throughput are back at the baseline.
  Throughput on an emulated guest follows the host's load: a busy host can halve it
  between the baseline and the end, so throughput is back when it reaches a fraction of
  the baseline or a multiple of what the profile let through, whichever is lower. A
  profile left in place fails both.

A failed check names every condition that failed and the figures behind it.
"""

from __future__ import annotations

import math

# What the role's defaults hold; a caller may give any subset.
TOLERANCES = {
    "rtt_tolerance_ms": 5.0,  # the RTT rise is the delay within +/- (ms + pct of the delay)
    "rtt_tolerance_pct": 15.0,
    "loss_sigmas": 4.0,  # the loss is within this many binomial standard deviations, plus 1 point
    "ping_count": 300,
    "rate_tolerance_pct": 25.0,  # TCP reaches the rate within -pct/+10 % when nothing else limits it
    "baseline_rtt_tolerance_ms": 5.0,  # after removal: RTT within ms of the baseline,
    "baseline_fraction": 0.3,  # throughput at least this fraction of it,
    "recovery_factor": 3.0,  # or this many times what it was under the profile
}


def _num(value):
    return None if value is None else float(value)


def _show(value, digits=3):
    return "?" if value is None else f"{round(value, digits):g}"


def _record(name, description, problems, measured, figures):
    """A check for aicluster.lab.check: the measured figures, after every problem when there is one."""
    return {"name": name, "category": "performance", "description": description, "passed": not problems,
            "message": "; ".join(problems) + " -- " + measured if problems else measured, "figures": figures}


def _settings(profile):
    return {
        "delay": float(profile.get("delay_ms") or 0),
        "jitter": float(profile.get("jitter_ms") or 0),
        "loss": float(profile.get("loss_percent") or 0),
        "rate": float(profile.get("rate_mbit") or 0),
    }


def loss_tolerance(loss_pct, count, sigmas):
    """Points of loss allowed around the configured rate: the binomial spread of ``count`` requests, plus 1."""
    share = loss_pct / 100
    return sigmas * 100 * math.sqrt(share * (1 - share) / count) + 1


def _where(path):
    path = path or {}
    return (f" on {path.get('interface', '?')} ({path.get('network', '?')}), measured to {path.get('peer', '?')}"
            if path else "")


def constraint_check(profile, base, during, tolerances=None, path=None):
    """The check that the profile's delay, jitter, loss and rate were measured as configured.

    ``path`` ({interface, network, peer}) only goes into the description.
    """
    tol = dict(TOLERANCES, **(tolerances or {}))
    want = _settings(profile)
    rtt_tol = tol["rtt_tolerance_ms"] + tol["rtt_tolerance_pct"] / 100 * want["delay"]
    loss_tol = loss_tolerance(want["loss"], tol["ping_count"], tol["loss_sigmas"])
    base_rtt, base_mdev = _num(base.get("rtt_avg_ms")), _num(base.get("rtt_mdev_ms")) or 0.0
    rtt, mdev = _num(during.get("rtt_avg_ms")), _num(during.get("rtt_mdev_ms"))
    loss, mbps, base_mbps = _num(during.get("loss_pct")), _num(during.get("mbps")), _num(base.get("mbps"))
    rise = None if rtt is None or base_rtt is None else rtt - base_rtt

    problems = []
    if not during.get("received"):
        problems.append("no echo reply while the profile was applied")
    if base_rtt is None:
        problems.append("the baseline has no RTT")
    if mbps is None:
        problems.append(f"no throughput figure ({during.get('iperf_error') or 'iperf3 gave none'})")
    if rise is not None and abs(rise - want["delay"]) > rtt_tol:
        problems.append(f"RTT rose {rise:.2f} ms, expected {want['delay']:g} +/- {rtt_tol:.1f}")
    if want["jitter"] and mdev is not None:
        low, high = 0.3 * want["jitter"], want["jitter"] + base_mdev + tol["rtt_tolerance_ms"]
        if not low <= mdev <= high:
            problems.append(f"mdev {mdev:g} ms is outside {low:.1f}-{high:.1f} for {want['jitter']:g} ms of jitter")
    if loss is not None and abs(loss - want["loss"]) > loss_tol:
        problems.append(f"loss {loss:g} %, expected {want['loss']:g} +/- {loss_tol:.1f}")
    if want["rate"] and mbps is not None:
        if mbps > want["rate"] * 1.1:
            problems.append(f"{mbps:.0f} Mbit/s is over the {want['rate']:g} Mbit/s limit (+10 %)")
        # Delay or loss hold TCP below the rate by themselves: only a pure limit must be reached.
        floor = want["rate"] * (1 - tol["rate_tolerance_pct"] / 100)
        if not want["delay"] and not want["loss"] and mbps < floor:
            problems.append(f"{mbps:.0f} Mbit/s is under {floor:.0f}, the rate limit less {tol['rate_tolerance_pct']:g} %")

    measured = (f"RTT {_show(base_rtt)} -> {_show(rtt)} ms (+{want['delay']:g} +/- {rtt_tol:.1f} expected), "
                f"mdev {_show(mdev)} ms, loss {_show(loss)} % ({want['loss']:g} +/- {loss_tol:.1f}), "
                f"{_show(base_mbps, 0)} -> {_show(mbps, 0)} Mbit/s" + (f" (limit {want['rate']:g})" if want["rate"] else ""))
    return _record(f"constraint_{profile['name']}", f"{profile.get('description') or profile['name']}{_where(path)}",
                   problems, measured, {
                       "rtt_base_ms": base_rtt, "rtt_base_mdev_ms": _num(base.get("rtt_mdev_ms")), "rtt_ms": rtt,
                       "rtt_rise_ms": None if rise is None else round(rise, 2), "mdev_ms": mdev,
                       "loss_pct": loss, "received": during.get("received"), "mbps_base": base_mbps, "mbps": mbps,
                       "delay_ms": want["delay"], "jitter_ms": want["jitter"], "loss_set_pct": want["loss"],
                       "rate_mbit": want["rate"],
                   })


def removed_check(profile, base, after, tolerances=None, during=None):
    """The check that RTT, loss and throughput are back at the baseline once the profile is removed.

    ``during`` (the figures under the profile) lets throughput count as back at
    recovery_factor times what the profile let through.
    """
    tol = dict(TOLERANCES, **(tolerances or {}))
    under = _num((during or {}).get("mbps"))
    base_rtt, base_loss, base_mbps = _num(base.get("rtt_avg_ms")), _num(base.get("loss_pct")) or 0.0, _num(base.get("mbps"))
    rtt, loss, mbps = _num(after.get("rtt_avg_ms")), _num(after.get("loss_pct")), _num(after.get("mbps"))
    problems = []
    if not after.get("received"):
        problems.append("no echo reply after the profile was removed")
    if rtt is not None and base_rtt is not None and rtt > base_rtt + tol["baseline_rtt_tolerance_ms"]:
        problems.append(f"RTT {rtt:g} ms is over the baseline {base_rtt:g} + {tol['baseline_rtt_tolerance_ms']:g}")
    if loss is not None and loss > base_loss + 1:
        problems.append(f"loss {loss:g} % is over the baseline {base_loss:g} + 1")
    if mbps is None:
        problems.append(f"no throughput figure ({after.get('iperf_error') or 'iperf3 gave none'})")
    else:
        floors = [floor for floor in (None if base_mbps is None else base_mbps * tol["baseline_fraction"],
                                      None if not under else under * tol["recovery_factor"]) if floor is not None]
        if not floors or mbps < min(floors):
            problems.append(f"{mbps:.0f} Mbit/s is under {tol['baseline_fraction']:g} x the baseline {_show(base_mbps, 0)}"
                            + (f" and under {tol['recovery_factor']:g} x the {under:g} Mbit/s under the profile" if under else ""))
    measured = (f"RTT {_show(rtt)} ms (baseline {_show(base_rtt)}), loss {_show(loss)} %, "
                f"{_show(mbps, 0)} Mbit/s (baseline {_show(base_mbps, 0)})")
    return _record(f"constraint_{profile['name']}_removed",
                   f"after removing {profile['name']}, RTT, loss and throughput are back at the baseline",
                   problems, measured, {"rtt_ms": rtt, "loss_pct": loss, "received": after.get("received"), "mbps": mbps})


def constraint_checks(profile, measured, tolerances=None, path=None):
    """Both checks of one profile from the role's measured phases {baseline, during, after}."""
    base = measured.get("baseline") or {}
    during = measured.get("during") or {}
    return [constraint_check(profile, base, during, tolerances, path),
            removed_check(profile, base, measured.get("after") or {}, tolerances, during)]
