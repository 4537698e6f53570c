# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rdma role's verdicts on a real lab pair run, a real adapter's DCB, and each way a check fails."""

import pathlib
import re

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import rdma, rdma_verdict

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "rdma"
ENDPOINT = {"network": "storage", "interface": "bond0.100", "address": "192.168.100.11", "netdev": "bond0",
            "mtu": 1500, "device": "rxe0", "priority": 3, "trust": "dscp"}
CLIENT = {"host": "node1", "device": "rxe0", "gid_index": 3, "address": "192.168.100.11", "interface": "bond0.100",
          "network": "storage"}
SERVER = dict(CLIENT, host="node2", address="192.168.100.12")
BOUNDS = {"max_latency_us": 100000, "min_bandwidth_mbps": 1}


def read_of(name):
    state = rdma.host_state((FIXTURES / name).read_text())
    decision = rdma.rdma_decision(state, ENDPOINT)
    return {"state": state, "decision": decision, "gid": rdma.select_gid(state, decision["device"], ENDPOINT["address"])}


def pair_output():
    return (FIXTURES / "pair-node1-node2.txt").read_text()


def replace_section(text, name, body):
    return re.sub(rf"(### {name}\n).*?(?=\n### )", lambda m: m.group(1) + body, text, count=1, flags=re.S)


def by_name(records):
    return {record["name"]: record for record in records}


def test_soft_roce_device_with_its_gid_passes():
    check = rdma_verdict.device_check(read_of("state-node1-rxe.txt"), ENDPOINT)
    assert check["passed"] and check["category"] == "rdma" and check["figures"] == {"gid_index": 3}
    assert "GID 3 0000:0000:0000:0000:0000:ffff:c0a8:640b (RoCE v2, bond0.100) = 192.168.100.11" in check["message"]


def test_no_device_fails_naming_what_there_is():
    check = rdma_verdict.device_check(read_of("state-node2-none.txt"), ENDPOINT)
    assert not check["passed"] and check["message"] == "rxe0 has no port 1 (devices: none)"


def test_a_port_that_is_down_fails():
    read = read_of("state-node1-rxe.txt")
    read["state"]["devices"][0]["ports"][1].update(state="DOWN", physical_state="Disabled")
    check = rdma_verdict.device_check(read, ENDPOINT)
    assert not check["passed"] and check["message"] == "rxe0 port 1 is DOWN (Disabled), not ACTIVE"


def test_a_device_without_the_address_fails_listing_its_gids():
    read = read_of("state-node1-rxe.txt")
    endpoint = dict(ENDPOINT, address="192.168.100.99")
    read["gid"] = rdma.select_gid(read["state"], "rxe0", endpoint["address"])
    check = rdma_verdict.device_check(read, endpoint)
    assert not check["passed"]
    assert check["message"].startswith("rxe0 has no GID holding 192.168.100.99 (bond0.100); its GIDs: 0 fe80:")
    assert "3 0000:0000:0000:0000:0000:ffff:c0a8:640b bond0.100 RoCE v2" in check["message"]


def test_dcb_is_skipped_on_soft_roce_with_the_reason():
    check = rdma_verdict.dcb_check(read_of("state-node1-rxe.txt"), ENDPOINT)
    assert check["passed"] and check["skip_reason"].startswith("Soft-RoCE (rxe0) has no DCB")


def adapter_read():
    return {"decision": {"action": "adapter", "device": "mlx4_0", "netdev": "ens6", "vendor": "NVIDIA/Mellanox"},
            "state": {}, "gid": None}


def test_dcb_of_a_real_adapter_with_pfc_and_the_dscp_map():
    text = (FIXTURES / "hw" / "dcb-pfc-show_dcb-app-show_mlx4_cx3pro_ens6.txt").read_text()
    check = rdma_verdict.dcb_check(adapter_read(), ENDPOINT, text, text)
    assert check["passed"], check["message"]
    assert check["message"] == "PFC on priority 3 (on: [3]), DSCP AF31 to it"
    other = rdma_verdict.dcb_check(adapter_read(), dict(ENDPOINT, priority=4), text, text)
    assert not other["passed"] and other["message"] == "PFC is off on priority 4 (on: [3])"
    no_map = rdma_verdict.dcb_check(adapter_read(), ENDPOINT, text, "")
    assert not no_map["passed"] and no_map["message"].startswith("no DSCP is mapped to priority 3")
    pcp = rdma_verdict.dcb_check(adapter_read(), dict(ENDPOINT, trust="pcp"), text, "")
    assert pcp["passed"]


def test_dcb_that_the_nic_does_not_offer_is_skipped():
    # What iproute2's dcb printed in the lab guests for a virtio NIC.
    check = rdma_verdict.dcb_check(adapter_read(), ENDPOINT, "Attribute read: Operation not supported", "")
    assert check["passed"] and "does not support DCB" in check["skip_reason"]


def test_a_real_pair_run_passes_with_rdma_beside_tcp():
    records = by_name(rdma_verdict.pair_checks(pair_output(), CLIENT, SERVER, BOUNDS))
    assert list(records) == ["rdma_connect_node2", "rdma_latency_node2", "rdma_bandwidth_node2"]
    assert all(record["passed"] for record in records.values()), [r["message"] for r in records.values()]
    assert records["rdma_connect_node2"]["figures"]["iterations"] == 20
    bandwidth = records["rdma_bandwidth_node2"]["figures"]
    assert bandwidth["bw_avg_mbps"] > 0 and bandwidth["tcp_mbps"] > 0
    assert bandwidth["rdma_to_tcp"] == round(bandwidth["bw_avg_mbps"] / bandwidth["tcp_mbps"], 3)
    assert "GID 3 (192.168.100.11) to node2 rxe0 GID 3 (192.168.100.12)" in records["rdma_latency_node2"]["description"]


def test_bounds_fail_latency_and_bandwidth():
    records = by_name(rdma_verdict.pair_checks(pair_output(), CLIENT, SERVER,
                                               {"max_latency_us": 1, "min_bandwidth_mbps": 10 ** 6}))
    assert re.match(r"typical latency [\d.]+ us \(at most 1 us expected\)$", records["rdma_latency_node2"]["message"])
    assert re.match(r"average [\d.]+ Mbit/s \(at least 1e\+06 Mbit/s expected\); TCP [\d.]+ Mbit/s$",
                    records["rdma_bandwidth_node2"]["message"])
    assert records["rdma_connect_node2"]["passed"]


def test_a_missing_tool_fails_its_check_with_the_reason():
    text = replace_section(pair_output(), "lat", "sh: 1: ib_send_lat: not found")
    text = replace_section(text, "lat_rc", "127")
    text = replace_section(text, "lat_report", "")
    records = by_name(rdma_verdict.pair_checks(text, CLIENT, SERVER, BOUNDS))
    assert not records["rdma_latency_node2"]["passed"]
    assert records["rdma_latency_node2"]["message"] == "lat exited 127: 'sh: 1: ib_send_lat: not found'"
    assert records["rdma_bandwidth_node2"]["passed"]


def test_a_queue_pair_that_never_connects_fails():
    text = replace_section(pair_output(), "rc_pingpong", "Couldn't connect to 192.168.100.12:18515")
    text = replace_section(text, "rc_pingpong_rc", "1")
    check = by_name(rdma_verdict.pair_checks(text, CLIENT, SERVER, BOUNDS))["rdma_connect_node2"]
    assert not check["passed"] and check["message"] == "rc_pingpong exited 1: \"Couldn't connect to 192.168.100.12:18515\""


def test_tcp_that_cannot_be_measured_fails_the_bandwidth_check():
    text = replace_section(pair_output(), "iperf3", '{"start": {}, "intervals": [], "end": {}, '
                                                    '"error": "unable to connect to server: Connection refused"}')
    check = by_name(rdma_verdict.pair_checks(text, CLIENT, SERVER, BOUNDS))["rdma_bandwidth_node2"]
    assert not check["passed"]
    assert check["message"] == "iperf3 on the same addresses: unable to connect to server: Connection refused"
    assert "tcp_mbps" not in check["figures"]


def test_servers_that_did_not_start_fail_every_check_of_the_pair():
    output = "### server_error\nthe servers do not all listen after 60 s:"
    records = rdma_verdict.pair_checks(output, CLIENT, SERVER, BOUNDS)
    assert [r["passed"] for r in records] == [False, False, False]
    assert records[0]["message"] == "the servers on node2 did not start: 'the servers do not all listen after 60 s:'"


def test_a_host_without_a_gid_is_named_and_nothing_is_measured():
    records = rdma_verdict.pair_checks("### server_error\n", CLIENT, dict(SERVER, gid_index=None), BOUNDS)
    assert {r["message"] for r in records} == {"no GID for the RDMA address on node2 (see rdma_device): nothing measured"}


@pytest.mark.parametrize("cut", ["rc_pingpong", "bw"])
def test_a_run_cut_short_fails_what_did_not_run(cut):
    text = pair_output()
    text = text[:text.index(f"### {cut}\n")]
    records = by_name(rdma_verdict.pair_checks(text, CLIENT, SERVER, BOUNDS))
    name = {"rc_pingpong": "rdma_connect_node2", "bw": "rdma_bandwidth_node2"}[cut]
    assert not records[name]["passed"] and "did not run (no output section)" in records[name]["message"]
