# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The throughput verdicts on a real run's iperf3 figures, and on each way they can fail.

The fixture holds node1's six runs to node2 on the bonding-vlans lab (cluster, storage and
management, both directions: tests/unit/fixtures/throughput/bonding-vlans-node1.json).
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.throughput import FilterModule, throughput_checks
from ansible_collections.aicluster.lab.plugins.module_utils.throughput_verdict import comparison_check, path_check

RESULTS = json.loads((pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "throughput" / "bonding-vlans-node1.json")
                     .read_text())["results"]


def results():
    return copy.deepcopy(RESULTS)


def named(checks):
    return {check["name"]: check for check in checks}


def test_the_real_run_passes_every_check():
    checks = named(throughput_checks(results(), 50, 3))
    assert sorted(checks) == [
        "throughput_bond_vs_single_link",
        "throughput_cluster_node2_receive", "throughput_cluster_node2_send",
        "throughput_management_node2_receive", "throughput_management_node2_send",
        "throughput_storage_node2_receive", "throughput_storage_node2_send",
    ]
    assert all(check["passed"] for check in checks.values())
    storage = checks["throughput_storage_node2_receive"]
    assert storage["description"] == "TCP from node2 at 192.168.100.12 over bond0.100 (storage), 3 s of iperf3"
    assert storage["message"] == "827 Mbit/s received, 0 retransmits"
    assert storage["figures"] == {"received_mbps": 826.738, "retransmits": 0, "sent_mbps": 826.857}


def test_the_comparison_with_the_single_link():
    check = comparison_check(results())
    assert check["skip_reason"] == ""
    assert check["figures"] == {"cluster_mbps": 766.646, "management_mbps": 865.672, "storage_mbps": 826.738}
    assert check["message"] == ("cluster 767 Mbit/s = 0.89 x the single link; storage 827 Mbit/s = 0.96 x the single link; "
                                "management (single link) 866 Mbit/s")


@pytest.mark.parametrize("change, message", [
    ({"figures": {"received_mbps": 12.5, "sent_mbps": 13.0, "retransmits": 40}}, "12.5 Mbit/s (at least 50 Mbit/s expected)"),
    ({"error": "unable to connect to server: Connection refused", "figures": {}},
     "unable to connect to server: Connection refused (at least 50 Mbit/s expected)"),
    ({"error": "iperf3 gave no JSON: sh: 1: iperf3: not found", "figures": {}},
     "iperf3 gave no JSON: sh: 1: iperf3: not found (at least 50 Mbit/s expected)"),
    ({"figures": {"sent_mbps": 700.0}}, "iperf3 gave no received throughput (at least 50 Mbit/s expected)"),
])
def test_each_way_a_path_fails(change, message):
    result = dict(results()[0], **change)
    check = path_check(result, 50.0, 3)
    assert not check["passed"]
    assert check["message"] == message


def test_the_comparison_is_skipped_without_the_single_link_or_a_network():
    without_management = [result for result in results() if result["path"]["network"] != "management"]
    assert comparison_check(without_management)["skip_reason"] == "needs the management link and at least one network measured"
    only_management = [result for result in results() if result["path"]["network"] == "management"]
    assert comparison_check(only_management)["skip_reason"] == "needs the management link and at least one network measured"
    # A failed receive run is left out of the comparison, not counted as 0.
    failed = results()
    for result in failed:
        if result["path"]["network"] == "management":
            result.update(error="unable to connect to server: No route to host", figures={})
    assert comparison_check(failed)["skip_reason"]


def test_the_filter_checks_its_input():
    assert FilterModule().filters() == {"throughput_checks": throughput_checks}
    with pytest.raises(AnsibleFilterError, match="the input must be a list of iperf3 results"):
        throughput_checks({}, 50, 3)
    with pytest.raises(AnsibleFilterError, match=r"result 0 must hold path \(network, peer, address, interface\)"):
        throughput_checks([{"direction": "send"}], 50, 3)
    with pytest.raises(AnsibleFilterError, match="result 0: direction 'up' is not send or receive"):
        throughput_checks([dict(results()[0], direction="up")], 50, 3)
    with pytest.raises(AnsibleFilterError, match="min_mbps 'fast' is not a number"):
        throughput_checks(results(), "fast", 3)
