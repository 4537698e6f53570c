# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""perftest's figures: its --out_json report (not valid JSON in perftest 4.5) and its result table."""

import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.perftest import (
    MIB_MBIT, PerftestError, parse_report, parse_table, perftest_figures)
from ansible_collections.aicluster.lab.plugins.module_utils.rdma import sections

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "rdma"


def lab():
    return sections((FIXTURES / "pair-node1-node2.txt").read_text())


def hw(name):
    return (FIXTURES / "hw" / name).read_text()


def test_perftest_45_report_is_read_though_it_is_not_json():
    report = parse_report(lab()["lat_report"])
    assert report["test_info"]["Device"] == "rxe0"
    assert report["test_info"]["Link_type"] == "Ethernet"
    assert isinstance(report["results"]["t_typical"], float)
    assert report["results"]["n_iterations"] == 200


def test_lab_latency_from_the_report_and_from_the_table_agree():
    found = lab()
    from_report = perftest_figures("lat", found["lat"], found["lat_report"])
    from_table = perftest_figures("lat", found["lat"])
    assert from_report == from_table
    assert from_report["msg_bytes"] == 2 and from_report["iterations"] == 200
    assert 0 < from_report["t_min_us"] <= from_report["t_typical_us"] <= from_report["t_max_us"]
    assert set(from_report) == {"msg_bytes", "iterations", "t_min_us", "t_max_us", "t_typical_us", "t_avg_us",
                                "t_stdev_us", "p99_us", "p99_9_us"}


def test_lab_bandwidth_is_in_mbit_per_second():
    found = lab()
    report = parse_report(found["bw_report"])["results"]
    figures = perftest_figures("bw", found["bw"], found["bw_report"])
    assert figures["bw_avg_mbps"] == round(report["BW_average"] * MIB_MBIT, 3)
    assert figures["msg_bytes"] == 65536 and figures["iterations"] > 0
    assert perftest_figures("bw", found["bw"])["bw_avg_mbps"] == figures["bw_avg_mbps"]


def test_connectx_latency_table_of_every_size_gives_the_last_row():
    rows = parse_table(hw("ib_send_lat_mlx5_roce_dc_client.txt"))
    assert [row["#bytes"] for row in rows][:3] == [2, 4, 8]
    assert rows[0]["t_typical[usec]"] == 6.28 and rows[0]["99.9% percentile[usec]"] == 7.58
    figures = perftest_figures("lat", hw("ib_send_lat_mlx5_roce_dc_client.txt"))
    assert figures["msg_bytes"] == rows[-1]["#bytes"] and figures["iterations"] == 1000000


def test_infiniband_bandwidth_table_in_mib():
    figures = perftest_figures("bw", hw("ib_send_bw_mlx5_cx6_ib_client.txt"))
    assert figures["msg_bytes"] == 8388608
    assert figures["bw_avg_mbps"] == round(23396.08 * MIB_MBIT, 3)
    assert figures["msg_rate_mpps"] == 0.002925


def test_report_gbits_table_in_gbit():
    figures = perftest_figures("bw", hw("ib_write_bw_mlx5_roce_gke_cuda_dmabuf.txt"))
    rows = parse_table(hw("ib_write_bw_mlx5_roce_gke_cuda_dmabuf.txt"))
    assert figures["bw_avg_mbps"] == round(rows[-1]["BW average[Gb/sec]"] * 1000, 3)


def test_a_run_that_broke_is_not_a_result():
    with pytest.raises(PerftestError, match="the run failed: .*Completion with error"):
        perftest_figures("bw", hw("ib_write_bw_mlx5_roce_gke_gbits_error.txt"))


def test_a_real_json_report_is_read_too():
    text = hw("perftest_ib_write_bw_out_json_mlx5_11_roce.txt")
    assert parse_report(text)["results"]["BW_average"] == 2229.27
    assert perftest_figures("bw", "", text)["bw_avg_mbps"] == round(2229.27 * MIB_MBIT, 3)


@pytest.mark.parametrize("stdout, message", [
    ("", "no result table in the output .last line: 'nothing'"),
    ("sh: 1: ib_send_lat: not found", "no result table .*not found"),
    (" Couldn't connect to 192.168.100.12:18516\nUnable to open file descriptor for socket connection",
     "the run failed: .Couldn't connect"),
])
def test_no_result_is_an_error_with_the_reason(stdout, message):
    with pytest.raises(PerftestError, match=message):
        perftest_figures("lat", stdout)


def test_kind_must_be_lat_or_bw():
    with pytest.raises(PerftestError, match="kind must be lat or bw"):
        perftest_figures("rate", "")
