# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figures from the summary that ping (iputils or busybox) prints at its end."""

from __future__ import annotations

import re

_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received(?:, \+(\d+) duplicates)?(?:, \+(\d+) errors)?")
_LOSS = re.compile(r"([\d.]+)% packet loss")
_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)(?:/([\d.]+))? ms")


def parse_ping_summary(text):
    """Return sent, received, loss_pct and, when any reply came, the RTTs in ms.

    ``duplicates`` and ``errors`` (ICMP errors such as host unreachable) are there when
    ping counted any.

    Returns an empty dict when the text holds no summary (ping could not start),
    so a caller can tell 'no figures' from 'all lost'.
    """
    counts = _COUNTS.search(text or "")
    if not counts:
        return {}
    sent, received = int(counts.group(1)), int(counts.group(2))
    loss = _LOSS.search(text)
    figures = {
        "sent": sent,
        "received": received,
        "loss_pct": float(loss.group(1)) if loss else (100.0 * (sent - received) / sent if sent else 0.0),
    }
    if counts.group(3):
        figures["duplicates"] = int(counts.group(3))
    if counts.group(4):
        figures["errors"] = int(counts.group(4))
    rtt = _RTT.search(text)
    if rtt:
        figures["rtt_min_ms"] = float(rtt.group(1))
        figures["rtt_avg_ms"] = float(rtt.group(2))
        figures["rtt_max_ms"] = float(rtt.group(3))
        if rtt.group(4) is not None:
            figures["rtt_mdev_ms"] = float(rtt.group(4))
    return figures


# What roles/validate prints after each ping of a command that runs several: "ping-exit <rc>".
_EXIT = re.compile(r"^ping-exit (\d+)$", re.MULTILINE)


def split_ping_runs(text):
    """Split the output of several pings, each followed by a ``ping-exit <rc>`` line.

    Returns [{rc, output, figures}] in order, output being that ping's own lines (its
    summary, or its error such as "message too long"), figures as parse_ping_summary.
    """
    runs, start = [], 0
    for match in _EXIT.finditer(text or ""):
        output = text[start:match.start()].strip("\n")
        runs.append({"rc": int(match.group(1)), "output": output, "figures": parse_ping_summary(output)})
        start = match.end()
    return runs
