# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The figures of an iperf3 client run (iperf3 -J), and its error when it had none.

iperf3 -J exits 0 even when it could not connect: the error is in its JSON. One place
reads both, for every role that runs iperf3 (throughput, net_constraints).
"""

from __future__ import annotations

import json

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError


class Iperf3Error(InputError):
    """Input that is not the output of a finished iperf3 -J client run, or iperf3's own error."""


def _fail(msg):
    raise Iperf3Error(msg)


def _parse(data):
    # A registered command result: take its stdout.
    if isinstance(data, dict) and "stdout" in data and "start" not in data and "end" not in data:
        data = data["stdout"]
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "replace")
    if isinstance(data, str):
        if not data.strip():
            _fail("the input is empty, not the JSON output of iperf3 -J")
        try:
            data = json.loads(data)
        except ValueError as exc:
            _fail(f"the input is not the JSON output of iperf3 -J ({exc}); it starts with {data.strip()[:80]!r}")
    if not isinstance(data, dict):
        _fail(f"the input must be iperf3 -J output as a string or a dict, got {type(data).__name__}")
    return data


def _mbps(section):
    bps = section.get("bits_per_second")
    return None if bps is None else round(float(bps) / 1e6, 3)


def _round(value, digits=3):
    return None if value is None else round(float(value), digits)


def iperf3_figures(data):
    """Throughput and the test's settings from ``iperf3 -J`` output; iperf3's error raises."""
    result = _parse(data)
    if result.get("error"):
        _fail(f"iperf3 reported an error: {result['error']}")
    start = result.get("start") or {}
    end = result.get("end") or {}
    sent = end.get("sum_sent")
    received = end.get("sum_received")
    if not isinstance(sent, dict) or not isinstance(received, dict):
        # Older iperf3 UDP runs only have end.sum.
        if isinstance(end.get("sum"), dict):
            sent = received = end["sum"]
        else:
            _fail("the input has no end.sum_sent/end.sum_received: not the output of a finished iperf3 -J client run")
    test = start.get("test_start") or {}
    connected = start.get("connected") or [{}]
    protocol = test.get("protocol") or "TCP"
    figures = {
        "protocol": protocol,
        "streams": test.get("num_streams"),
        "reverse": bool(test.get("reverse", 0)),
        "local": connected[0].get("local_host"),
        "remote": connected[0].get("remote_host") or (start.get("connecting_to") or {}).get("host"),
        "duration_s": _round(sent.get("seconds")),
        "sent_mbps": _mbps(sent),
        "received_mbps": _mbps(received),
        "sent_bytes": sent.get("bytes"),
        "received_bytes": received.get("bytes"),
    }
    if protocol == "UDP":
        figures.update({
            "packets": sent.get("packets"),
            "lost_packets": received.get("lost_packets"),
            "lost_pct": _round(received.get("lost_percent")),
            "jitter_ms": _round(received.get("jitter_ms")),
        })
    else:
        figures["retransmits"] = sent.get("retransmits")
    cpu = end.get("cpu_utilization_percent") or {}
    figures["cpu_local_pct"] = _round(cpu.get("host_total"), 1)
    figures["cpu_remote_pct"] = _round(cpu.get("remote_total"), 1)
    return figures


def iperf3_run(stdout, stderr="", rc=0):
    """{error, figures} of one iperf3 -J run: error is '' and figures its numbers, or the reason it has none."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, (bytes, bytearray)) else (stdout or "")
    if not text.strip().startswith("{"):
        reason = (stderr or "").strip() or text.strip() or f"rc {rc}"
        return {"error": f"iperf3 gave no JSON: {reason}", "figures": {}}
    try:
        return {"error": "", "figures": iperf3_figures(text)}
    except Iperf3Error as exc:
        return {"error": str(exc).removeprefix("iperf3 reported an error: "), "figures": {}}
