"""EXO's setup on the nodes as a person would check it by hand: the user and its directories,
the unit and its hardening as systemd reads it, the role's nftables table, the node identity.

Only the exo scenario converges EXO; in the others these tests are skipped with that reason.
Without an artifact (AICLUSTER_EXO_ARTIFACT) EXO itself is not installed: its unit is in
place, loaded, and neither enabled nor started.
"""

import json
import os

import pytest

from profile_data import host_interface, profile_of

pytestmark = pytest.mark.skipif(os.environ.get("MOLECULE_SCENARIO_NAME") != "exo",
                                reason=f"scenario {os.environ.get('MOLECULE_SCENARIO_NAME')!r} does not converge EXO "
                                       "(only the exo scenario does)")

ARTIFACT = os.environ.get("AICLUSTER_EXO_ARTIFACT", "")


def name_of(host):
    return host.backend.get_hostname()


def cluster_interface(host):
    return host_interface(profile_of(host), name_of(host), "cluster")


def test_the_user_and_its_directories(host):
    user = host.user("exo")
    assert user.exists and user.home == "/var/lib/exo" and user.shell == "/usr/sbin/nologin"
    for path in ("/var/lib/exo", "/var/lib/exo/models"):
        directory = host.file(path)
        assert directory.is_directory, path
        assert (directory.user, directory.group, directory.mode) == ("exo", "exo", 0o750), path
    config = host.file("/etc/aicluster-lab/exo")
    assert (config.user, config.mode) == ("root", 0o755)


def test_systemd_runs_exo_hardened_in_the_foreground(host):
    keys = ["User", "NoNewPrivileges", "PrivateTmp", "ProtectSystem", "ProtectHome", "ReadWritePaths", "PrivateDevices",
            "CapabilityBoundingSet", "RestrictAddressFamilies", "ExecStart", "Environment", "Requires", "LoadState"]
    shown = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show exo.service " + " ".join(f"-p {key}" for key in keys)).splitlines())
    assert shown["LoadState"] == "loaded"
    assert shown["User"] == "exo"
    assert (shown["NoNewPrivileges"], shown["PrivateTmp"], shown["ProtectSystem"], shown["ProtectHome"]) == (
        "yes", "yes", "strict", "yes")
    assert shown["ReadWritePaths"].split() == ["/var/lib/exo", "/var/lib/exo/models"]
    assert shown["PrivateDevices"] == "yes"  # the lab has no GPU: mlx-cpu
    assert shown["CapabilityBoundingSet"] == ""
    assert set(shown["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert "--api-port 52415 --zenoh-port 52414 --discovery-port 52413" in shown["ExecStart"]
    assert "--offline" in shown["ExecStart"] and "--legacy-daemon" not in shown["ExecStart"]
    assert "EXO_HOME=/var/lib/exo" in shown["Environment"] and "EXO_OFFLINE=true" in shown["Environment"]
    assert "aicluster-exo-firewall.service" in shown["Requires"].split()


@pytest.mark.skipif(bool(ARTIFACT), reason="an artifact is given: EXO is installed and runs")
def test_without_an_artifact_exo_is_neither_enabled_nor_started(host):
    unit = host.service("exo.service")
    assert not unit.is_enabled and not unit.is_running


@pytest.mark.skipif(not ARTIFACT, reason="no artifact given (AICLUSTER_EXO_ARTIFACT): EXO is not installed here")
def test_with_an_artifact_exo_runs(host):
    unit = host.service("exo.service")
    assert unit.is_enabled and unit.is_running


def test_the_firewall_table_admits_exos_ports_on_the_cluster_interface_only(host):
    assert host.service("aicluster-exo-firewall.service").is_enabled
    assert host.service("aicluster-exo-firewall.service").is_running
    listing = json.loads(host.check_output("nft -j list table inet aicluster_exo"))["nftables"]
    rules = [item["rule"]["expr"] for item in listing if "rule" in item]
    accepting = [rule for rule in rules if {"accept": None} in rule]
    interface = cluster_interface(host)
    for rule in accepting:
        matches = {json.dumps(e["match"]["left"], sort_keys=True): e["match"]["right"] for e in rule if "match" in e}
        iif = matches.get('{"meta": {"key": "iifname"}}')
        assert iif in ("lo", interface), rule
    ports = {e["match"]["right"] for rule in accepting for e in rule
             if "match" in e and "payload" in e["match"]["left"] and e["match"]["left"]["payload"]["field"] == "dport"}
    assert ports == {52413, 52414, 52415}
    assert [e for e in rules[-1] if "reject" in e] == [{"reject": {"type": "tcp reset"}}]
    peers = {item["set"]["name"]: item["set"].get("elem", []) for item in listing if "set" in item}
    address = profile_of(host)["hosts"][name_of(host)]["addresses"]["cluster"]
    others = {values["addresses"]["cluster"] for name, values in profile_of(host)["hosts"].items()
              if name != name_of(host) and name in host.ansible.get_variables()["groups"]["lab_nodes"]}
    assert set(peers["peers_v4"]) == others and address not in peers["peers_v4"]
    assert peers["peers_v6"] and all(value.startswith("fe80:") for value in peers["peers_v6"])


def test_no_other_table_was_touched(host):
    tables = host.check_output("nft list tables").splitlines()
    assert tables == ["table inet aicluster_exo"]


def test_the_node_identity_is_this_nodes(host):
    identity = dict(line.split("=", 1) for line in host.file("/etc/aicluster-lab/exo/node-identity").content_string
                    .splitlines())
    assert identity["host"] == name_of(host)
    assert identity["machine_id"] == host.file("/etc/machine-id").content_string.strip()
    assert len(identity["id"]) == 36


# Each node's identity, kept as the test runs node by node: the second finds a copy of the first.
SEEN = {}


def test_no_two_nodes_share_an_identity(host):
    identity = host.file("/etc/aicluster-lab/exo/node-identity").content_string.splitlines()[0]
    others = {name: value for name, value in SEEN.items() if name != name_of(host)}
    assert identity not in others.values(), f"{name_of(host)} holds {identity}, as {others}"
    SEEN[name_of(host)] = identity
