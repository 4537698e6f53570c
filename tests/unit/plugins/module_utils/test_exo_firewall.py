# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's firewall: the file nft loads, the kernel's own listing read back, and what differs.

The listings are nft 1.0.6's (Debian 12, the lab's), captured in network namespaces by
fixtures/exo/capture-netns.sh; where root and nft are at hand, the ruleset is also loaded
into namespaces here and proven to admit and refuse what it should.
"""

import copy
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import exo_firewall

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "exo"
NODE2_LL = "fe80::b407:53ff:fe3b:c693"
SPEC = {"interface": "bond0.200", "discovery_port": 52413, "zenoh_port": 52414, "api_port": 52415,
        "peers_v6": [NODE2_LL], "peers_v4": ["192.168.200.12"], "api_sources": ["192.168.200.0/24"]}


def listing(name):
    return (FIXTURES / name).read_text()


def test_the_ruleset_is_the_file_loaded_for_the_capture():
    assert exo_firewall.ruleset(SPEC) == listing("netns-node1.nft")


def test_the_running_table_matches_the_plan():
    have = exo_firewall.live(listing("netns-nft-list-node1.json"))
    assert have == exo_firewall.expected(SPEC)
    assert exo_firewall.differences(exo_firewall.expected(SPEC), have) == []
    assert have["rules"]["input"][-1] == ["tcp dport == { 52414, 52415 }", "counter", "reject tcp reset"]


def test_any_link_local_when_a_peer_was_not_read():
    spec = dict(SPEC, peers_v6=["fe80::/10"], peers_v4=[])
    assert exo_firewall.ruleset(spec) == listing("netns-node1-any-link-local.nft")
    have = exo_firewall.live(listing("netns-nft-list-any-link-local.json"))
    assert have["sets"]["peers_v6"] == {"type": "ipv6_addr", "elements": ["fe80::/10"]}
    assert exo_firewall.differences(exo_firewall.expected(spec), have) == []


def test_an_absent_table_is_none_and_says_so():
    assert exo_firewall.live(listing("netns-nft-list-absent.txt")) is None
    assert exo_firewall.live("") is None
    assert exo_firewall.differences(exo_firewall.expected(SPEC), None) == ["table inet aicluster_exo is not loaded"]


def test_another_peer_an_extra_rule_and_a_missing_one_are_named():
    doc = json.loads(listing("netns-nft-list-node1.json"))
    changed = copy.deepcopy(doc)
    for item in changed["nftables"]:
        if "set" in item and item["set"]["name"] == "peers_v4":
            item["set"]["elem"] = ["192.168.155.12"]
    rules = [item for item in changed["nftables"] if "rule" in item]
    accept_lo = copy.deepcopy(rules[0])
    accept_lo["rule"]["expr"][0]["match"]["right"] = "eth0"
    changed["nftables"].remove(rules[4])  # the API from the cluster subnet
    changed["nftables"].append(accept_lo)
    problems = exo_firewall.differences(exo_firewall.expected(SPEC), exo_firewall.live(json.dumps(changed)))
    assert problems[0] == "set peers_v4 is ipv4_addr {192.168.155.12}, expected ipv4_addr {192.168.200.12}"
    assert "lacks meta iifname == bond0.200 tcp dport == 52415 ip saddr == 192.168.200.0/24 accept" in problems[1]
    assert "has meta iifname == eth0 accept beyond the plan" in problems[1]


def test_rules_in_another_order_differ():
    doc = json.loads(listing("netns-nft-list-node1.json"))
    rules = [index for index, item in enumerate(doc["nftables"]) if "rule" in item]
    doc["nftables"][rules[0]], doc["nftables"][rules[-1]] = doc["nftables"][rules[-1]], doc["nftables"][rules[0]]
    assert exo_firewall.differences(exo_firewall.expected(SPEC), exo_firewall.live(json.dumps(doc))) == [
        "chain input holds the rules in another order"]


def test_a_chain_added_by_hand_is_not_the_roles():
    doc = json.loads(listing("netns-nft-list-node1.json"))
    doc["nftables"].append({"chain": {"family": "inet", "table": "aicluster_exo", "name": "chaos_in", "handle": 9,
                                      "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}})
    assert exo_firewall.differences(exo_firewall.expected(SPEC), exo_firewall.live(json.dumps(doc))) == [
        "chain chaos_in is not the role's"]


@pytest.mark.parametrize("text, message", [
    ("Permission denied", "not JSON"),
    ('{"tables": []}', "without an 'nftables' list"),
])
def test_output_that_is_not_a_listing_is_refused(text, message):
    with pytest.raises(exo_firewall.FirewallInputError, match=message):
        exo_firewall.live(text)


@pytest.mark.parametrize("change, message", [
    ({"peers_v6": ["192.168.200.12"]}, "peers_v6: '192.168.200.12' is not IPv6"),
    ({"peers_v4": ["bond0"]}, "peers_v4: 'bond0' is not an address or prefix"),
    ({"interface": 'bond0"; flush ruleset; "'}, "is not an interface name"),
])
def test_a_spec_the_role_cannot_write_is_refused(change, message):
    with pytest.raises(exo_firewall.FirewallInputError, match=message):
        exo_firewall.ruleset(dict(SPEC, **change))


def test_a_single_peer_without_link_local_and_several_api_sources():
    text = exo_firewall.ruleset(dict(SPEC, peers_v6=[], peers_v4=[], api_sources=["10.1.0.0/16", "192.168.200.0/24"]))
    assert "\tset peers_v6 {\n\t\ttype ipv6_addr\n\t}" in text
    assert 'tcp dport 52415 ip saddr { 10.1.0.0/16, 192.168.200.0/24 } accept' in text


# ---------------------------------------------------------------- the table in a kernel

def _can_use_netns():
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["ip", "netns", "add", "aiclexo-probe"], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", "aiclexo-probe"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """node1 and node2 in namespaces, joined on bond0.200 (the cluster) and eth0 (management)."""
    if not _can_use_netns():
        pytest.skip("needs root, nft and network namespaces")
    a, b = "aiclexo-fw-a", "aiclexo-fw-b"

    def run(*argv):
        subprocess.run(argv, check=True, capture_output=True)

    for ns in (a, b):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", "bond0.200", "netns", a, "type", "veth", "peer", "name", "bond0.200", "netns", b)
        run("ip", "link", "add", "eth0", "netns", a, "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, last in ((a, 11), (b, 12)):
            for link in ("lo", "bond0.200", "eth0"):
                run("ip", "-n", ns, "link", "set", link, "up")
            run("ip", "-n", ns, "addr", "add", f"192.168.200.{last}/24", "dev", "bond0.200")
            run("ip", "-n", ns, "addr", "add", f"192.168.155.{last}/24", "dev", "eth0")
        deadline = time.monotonic() + 10
        lls = {}
        while time.monotonic() < deadline and len(lls) < 2:
            for ns in (a, b):
                out = subprocess.run(["ip", "-n", ns, "-j", "-6", "addr", "show", "dev", "bond0.200", "scope", "link"],
                                     capture_output=True, text=True, check=True).stdout
                infos = [i for entry in json.loads(out) for i in entry["addr_info"] if "tentative" not in i]
                if infos:
                    lls[ns] = infos[0]["local"]
            time.sleep(0.2)
        spec = dict(SPEC, peers_v6=[lls[b]])
        path = tmp_path_factory.mktemp("exo") / "firewall.nft"
        path.write_text(exo_firewall.ruleset(spec))
        run("ip", "netns", "exec", a, "nft", "-f", str(path))
        yield {"a": a, "b": b, "ll": lls}
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _connect(two, target, port, scope=None):
    """From node2: 'open', 'reset' or 'timeout' for a TCP connect to node1 (a listener runs there)."""
    server = subprocess.Popen(["ip", "netns", "exec", two["a"], "python3", "-c", (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('::', {port})); s.listen(4); s.settimeout(5)\n"
        "try:\n  s.accept()\nexcept OSError:\n  pass\n")])
    try:
        time.sleep(0.5)
        address = f"{target}%{scope}" if scope else target
        client = subprocess.run(["ip", "netns", "exec", two["b"], "python3", "-c", (
            "import socket,sys\n"
            f"info=socket.getaddrinfo({address!r}, {port}, 0, socket.SOCK_STREAM)[0]\n"
            "c=socket.socket(info[0], socket.SOCK_STREAM); c.settimeout(2)\n"
            "try:\n  c.connect(info[4]); print('open')\n"
            "except ConnectionRefusedError:\n  print('reset')\n"
            "except OSError:\n  print('timeout')\n")], capture_output=True, text=True, check=True)
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait()


def test_zenoh_is_admitted_from_the_peer_on_the_cluster_interface_only(two_nodes):
    assert _connect(two_nodes, two_nodes["ll"][two_nodes["a"]], 52414, "bond0.200") == "open"
    assert _connect(two_nodes, "192.168.200.11", 52414) == "open"
    assert _connect(two_nodes, "192.168.155.11", 52414) == "reset"


def test_the_api_is_admitted_from_the_cluster_network_only(two_nodes):
    assert _connect(two_nodes, "192.168.200.11", 52415) == "open"
    assert _connect(two_nodes, "192.168.155.11", 52415) == "reset"


def test_discovery_from_elsewhere_is_dropped_and_counted(two_nodes):
    def dropped():
        out = subprocess.run(["ip", "netns", "exec", two_nodes["a"], "nft", "-j", "list", "table", "inet",
                              "aicluster_exo"], capture_output=True, text=True, check=True).stdout
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if rule and any("drop" in expr for expr in rule["expr"]):
                return next(expr["counter"]["packets"] for expr in rule["expr"] if "counter" in expr)
        raise AssertionError("no drop rule")

    before = dropped()
    subprocess.run(["ip", "netns", "exec", two_nodes["b"], "python3", "-c", (
        "import socket\n"
        "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'EXO', ('192.168.155.11', 52413))\n")],
        check=True)
    time.sleep(0.3)
    assert dropped() == before + 1
