"""ping_figures on output captured from ping (iputils) in the lab's guests."""

import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.ping import parse_ping_summary

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "ping"


def figures(name):
    return parse_ping_summary((FIXTURES / name).read_text())


def test_replies_give_counts_and_rtts():
    assert figures("iputils-ipv4-ok.txt") == {
        "sent": 5, "received": 5, "loss_pct": 0.0,
        "rtt_min_ms": 2.431, "rtt_avg_ms": 14.874, "rtt_max_ms": 51.152, "rtt_mdev_ms": 18.279,
    }


def test_per_packet_lines_do_not_confuse_the_summary():
    result = figures("iputils-ipv4-verbose.txt")
    assert (result["sent"], result["received"], result["rtt_avg_ms"]) == (4, 4, 4.136)


@pytest.mark.parametrize("name", ["iputils-ipv6-all-lost.txt", "iputils-ipv4-unreachable.txt"])
def test_all_lost_has_no_rtt(name):
    assert figures(name) == {"sent": 3, "received": 0, "loss_pct": 100.0}


def test_no_summary_gives_no_figures():
    assert figures("iputils-unknown-host.txt") == {}
    assert parse_ping_summary("") == {} and parse_ping_summary(None) == {}


def test_busybox_summary():
    text = "3 packets transmitted, 2 packets received, 33% packet loss\nround-trip min/avg/max = 0.1/0.2/0.3 ms\n"
    assert parse_ping_summary(text) == {"sent": 3, "received": 2, "loss_pct": 33.0,
                                        "rtt_min_ms": 0.1, "rtt_avg_ms": 0.2, "rtt_max_ms": 0.3}


def test_duplicates_and_icmp_errors_are_counted_when_ping_counts_them():
    from ansible_collections.aicluster.lab.plugins.module_utils.ping import parse_ping_summary

    # iputils' summary line, as bond_failover_probe's ping prints it after a failover.
    text = "--- 192.168.200.12 ping statistics ---\n1000 packets transmitted, 990 received, +2 duplicates, +3 errors, 1% packet loss, time 10003ms\n"
    assert parse_ping_summary(text) == {"sent": 1000, "received": 990, "loss_pct": 1.0, "duplicates": 2, "errors": 3}
    assert "errors" not in parse_ping_summary("5 packets transmitted, 5 received, 0% packet loss, time 4005ms\n")
