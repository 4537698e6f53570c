# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iperf3_figures on output captured from iperf3 3.12 -J between the lab's guests (bond0.200).

tcp.json: node1 ``iperf3 -c 192.168.200.12 -t 3 -J``; tcp-reverse.json: the same with ``-R``;
udp.json: ``-u -b 200M -t 2``; error-refused.json: no server listening; error-no-route.json:
``-c 192.168.200.99`` (no such host on the subnet).
"""

from __future__ import annotations

import json
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.iperf3 import FilterModule, iperf3_figures, iperf3_run

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "iperf3"


def text(name):
    return (FIXTURES / name).read_text()


def test_tcp_client_sends():
    assert iperf3_figures(text("tcp.json")) == {
        "protocol": "TCP", "streams": 1, "reverse": False,
        "local": "192.168.200.11", "remote": "192.168.200.12",
        "duration_s": 3.019, "sent_mbps": 1675.464, "received_mbps": 1674.859,
        "sent_bytes": 632291328, "received_bytes": 632291328, "retransmits": 1,
        "cpu_local_pct": 73.0, "cpu_remote_pct": 71.5,
    }


def test_tcp_reverse_server_sends():
    result = iperf3_figures(text("tcp-reverse.json"))
    assert result["reverse"] is True
    assert (result["local"], result["remote"]) == ("192.168.200.11", "192.168.200.12")
    assert (result["sent_mbps"], result["received_mbps"]) == (1691.724, 1683.691)
    assert result["retransmits"] == 2
    assert result["duration_s"] == 3.012


def test_udp_has_loss_and_jitter_instead_of_retransmits():
    result = iperf3_figures(text("udp.json"))
    assert result["protocol"] == "UDP"
    assert "retransmits" not in result
    assert (result["sent_mbps"], result["received_mbps"]) == (33.803, 32.607)
    assert (result["packets"], result["lost_packets"], result["lost_pct"], result["jitter_ms"]) == (5839, 31, 0.531, 0.479)


def test_parsed_dict_and_registered_result_give_the_same_figures():
    raw = text("tcp.json")
    expected = iperf3_figures(raw)
    assert iperf3_figures(json.loads(raw)) == expected
    assert iperf3_figures({"stdout": raw, "rc": 0}) == expected
    assert iperf3_figures(raw.encode()) == expected


@pytest.mark.parametrize("name, error", [
    ("error-refused.json", "unable to connect to server: Connection refused"),
    ("error-no-route.json", "unable to connect to server: No route to host"),
])
def test_iperf3_error_raises_with_its_text(name, error):
    with pytest.raises(AnsibleFilterError, match="iperf3 reported an error: %s$" % error):
        iperf3_figures(text(name))
    with pytest.raises(AnsibleFilterError, match=error):
        iperf3_figures(json.loads(text(name)))


def test_error_after_a_partial_run_still_raises():
    data = json.loads(text("tcp.json"))
    data["error"] = "control socket has closed unexpectedly"
    with pytest.raises(AnsibleFilterError, match="control socket has closed unexpectedly"):
        iperf3_figures(data)


@pytest.mark.parametrize("value, message", [
    ("", "the input is empty"),
    ("   \n", "the input is empty"),
    ("iperf3: command not found\n", r"not the JSON output of iperf3 -J \(.*'iperf3: command not found'"),
    (text("tcp.json")[:200], "not the JSON output of iperf3 -J"),
    (None, "got NoneType"),
    ([1, 2], "got list"),
    ({"start": {}, "end": {}}, "no end.sum_sent"),
])
def test_not_iperf3_output_raises(value, message):
    with pytest.raises(AnsibleFilterError, match="^iperf3_figures: .*" + message):
        iperf3_figures(value)


def test_udp_of_old_iperf3_with_only_end_sum():
    data = json.loads(text("udp.json"))
    del data["end"]["sum_sent"], data["end"]["sum_received"]
    result = iperf3_figures(data)
    assert result["sent_mbps"] == result["received_mbps"] == 33.803
    assert result["lost_packets"] == 31


def test_registered_under_its_name():
    assert FilterModule().filters() == {"iperf3_figures": iperf3_figures, "iperf3_run": iperf3_run}


def test_a_run_gives_its_figures_or_its_error():
    assert iperf3_run({"stdout": text("tcp.json"), "stderr": "", "rc": 0}) == {"error": "", "figures": iperf3_figures(text("tcp.json"))}
    # iperf3 -J exits 0 when it could not connect: the JSON's error is the run's.
    assert iperf3_run({"stdout": text("error-refused.json"), "rc": 0}) == {
        "error": "unable to connect to server: Connection refused", "figures": {}}
    # No JSON at all: stderr, else stdout, else the exit code says why.
    assert iperf3_run({"stdout": "", "stderr": "sh: 1: iperf3: not found\n", "rc": 127}) == {
        "error": "iperf3 gave no JSON: sh: 1: iperf3: not found", "figures": {}}
    assert iperf3_run({"stdout": "", "stderr": "", "rc": 1}) == {"error": "iperf3 gave no JSON: rc 1", "figures": {}}
    with pytest.raises(AnsibleFilterError, match="iperf3_run: the input must be a registered result with stdout, got str"):
        iperf3_run("{}")
