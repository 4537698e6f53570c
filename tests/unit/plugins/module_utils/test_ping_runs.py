"""split_ping_runs on the output of roles/validate's mesh and full-size pings, captured in the lab's guests.

ping-mesh-full-size-ok.txt: node1 to node2, both pings
answered (captured on the vlan-negative lab's storage VLAN, eth1.100, with roles/validate's
command); ping-mesh-full-size-too-long.txt: the same with a 1500-byte payload, 28 bytes
above what an MTU of 1500 carries: with -q, ping reports only the loss.
"""

import pathlib

from ansible_collections.aicluster.lab.plugins.module_utils.ping import split_ping_runs

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "ping"


def test_each_run_has_its_exit_code_output_and_figures():
    mesh, full_size = split_ping_runs((FIXTURES / "ping-mesh-full-size-ok.txt").read_text())
    assert (mesh["rc"], mesh["figures"]["sent"], mesh["figures"]["received"]) == (0, 5, 5)
    assert (full_size["rc"], full_size["figures"]["sent"], full_size["figures"]["received"]) == (0, 2, 2)
    assert full_size["output"].splitlines()[-1].startswith("rtt min/avg/max/mdev = ")
    assert "ping-exit" not in mesh["output"] + full_size["output"]


def test_a_packet_above_the_path_mtu_is_lost_and_the_run_fails():
    mesh, full_size = split_ping_runs((FIXTURES / "ping-mesh-full-size-too-long.txt").read_text())
    assert mesh["rc"] == 0 and full_size["rc"] == 1
    assert "1500(1528) bytes of data" in full_size["output"]
    assert full_size["figures"] == {"sent": 2, "received": 0, "loss_pct": 100.0}


def test_output_without_exit_lines_has_no_runs():
    assert split_ping_runs("") == [] and split_ping_runs(None) == []
    assert split_ping_runs("PING 10.0.0.1 ...\n") == []
