# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of category k3s: the config and its guard, the host after the role, the live cluster.

The live reads are hand-built in kubectl's JSON schema (fixtures/k3s/live/README.md): no
cluster can run here. Each failure is one field changed in the good read.
"""

from __future__ import annotations

import json
import pathlib

import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import k3s_config, k3s_host, k3s_verdict
from ansible_collections.aicluster.lab.plugins.module_utils.plan import HOST_KEYS, build_plan

from test_k3s_host import TOKEN_FILE, read_output, simple_configs, wanted_for

ROOT = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "k3s"
SERVERS = ["ctl-a", "ctl-b", "ctl-c"]
AGENTS = ["gpu-a", "gpu-b"]
ADDRESSES = {"ctl-a": "192.168.200.31", "ctl-b": "192.168.200.32", "ctl-c": "192.168.200.33",
             "gpu-a": "192.168.200.21", "gpu-b": "192.168.200.22"}


def by_name(checks):
    return {check["name"]: check for check in checks}


# ----------------------------------------------------------------------------------------- config


def test_the_config_checks_pass_and_name_the_model_values():
    plan, configs = simple_configs()
    server = by_name(k3s_verdict.config_checks("node1", "server", configs["node1"], plan["node1"]))
    assert server["k3s_config"]["passed"] and server["k3s_config"]["category"] == "k3s"
    assert server["k3s_config"]["message"] == (
        "9 flags of the server checked against k3s v1.31.0+k3s1: node-ip 192.168.1.11, flannel-iface eth1 from the "
        "plan's cluster network; initialises embedded etcd; token from token-file /etc/rancher/k3s/cluster-token")
    assert server["k3s_config_guard"]["passed"] and server["k3s_config_guard"]["figures"] == {"refused": 3}
    assert server["k3s_config_guard"]["message"] == (
        "refused before any host is touched: misspelt key flanel-iface, debug: 'yes' (a string for a bool), "
        "disable-apiserver-lb (an agent-only flag)")
    agent = by_name(k3s_verdict.config_checks("node2", "agent", configs["node2"], plan["node2"]))
    assert agent["k3s_config"]["passed"] and "joins https://192.168.1.11:6443" in agent["k3s_config"]["message"]
    assert agent["k3s_config_guard"]["message"].endswith("tls-san (a server-only flag)")


def test_the_config_check_fails_when_the_config_is_not_the_models():
    plan, configs = simple_configs()
    bad = dict(configs["node2"], **{"node-ip": "192.168.1.99", "flannel-iface": "eth0"})
    check = by_name(k3s_verdict.config_checks("node2", "agent", bad, plan["node2"]))["k3s_config"]
    assert not check["passed"]
    assert check["message"] == ("node-ip '192.168.1.99' is not the plan's cluster address 192.168.1.12; "
                                "flannel-iface 'eth0' is not the plan's cluster interface eth1")


def test_the_guard_check_fails_when_the_flag_check_lets_a_bad_key_through(monkeypatch):
    plan, configs = simple_configs()
    real = k3s_config.check_value

    def lax(host, role, key, value):
        if key != "flanel-iface":
            real(host, role, key, value)

    monkeypatch.setattr(k3s_config, "check_value", lax)
    check = k3s_verdict.guard_check("node1", "server", configs["node1"])
    assert not check["passed"] and check["message"] == "misspelt key flanel-iface was accepted"


# ------------------------------------------------------------------------------------------- host


def test_host_checks_on_a_converged_offline_node():
    wanted = wanted_for()
    state = k3s_host.host_state(read_output(wanted))
    decision = k3s_host.decide(state, wanted)
    checks = by_name(k3s_verdict.host_checks(state, decision, wanted, TOKEN_FILE))
    assert checks["k3s_files"]["passed"] and checks["k3s_files"]["figures"] == {"files": 5}
    assert checks["k3s_files"]["message"].endswith("and /etc/rancher/k3s/cluster-token (0600, root)")
    assert checks["k3s_prerequisites"]["passed"]
    assert checks["k3s_prerequisites"]["message"] == (
        "modules br_netfilter, overlay loaded; net.ipv4.ip_forward=1, net.bridge.bridge-nf-call-iptables=1, "
        "net.bridge.bridge-nf-call-ip6tables=1; 3 directories; host firewall: none active")
    for name in ("k3s_binary", "k3s_service"):
        assert checks[name]["skip_reason"].startswith("no k3s binary to install: k3s_artifact_dir is empty")
        assert not checks[name]["passed"]  # a skip is never a pass


def test_host_checks_name_what_differs():
    wanted = wanted_for()
    text = read_output(wanted, changed={"/etc/rancher/k3s/config.yaml": "x\n"}).replace(
        f"{TOKEN_FILE}|600|root:root|64", f"{TOKEN_FILE}|644|root:root|64").replace(
        "br_netfilter|loaded", "br_netfilter|missing").replace("net.ipv4.ip_forward|1", "net.ipv4.ip_forward|0")
    state = k3s_host.host_state(text)
    checks = by_name(k3s_verdict.host_checks(state, k3s_host.decide(state, wanted), wanted, TOKEN_FILE))
    assert checks["k3s_files"]["message"] == ("/etc/rancher/k3s/config.yaml: content; /etc/rancher/k3s/cluster-token: "
                                              "mode 644, owner root:root (want 0600 root:root)")
    assert checks["k3s_prerequisites"]["message"] == ("module br_netfilter not loaded; net.ipv4.ip_forward is '0', "
                                                      "want 1")


def test_host_checks_name_a_port_the_host_firewall_still_closes():
    _plan, configs = simple_configs()
    wanted = wanted_for(firewall=k3s_host.firewall_rules("server", configs["node1"]))
    text = read_output(wanted).replace("### images", "### firewall\nkind firewalld\nports 6443/tcp 2379-2380/tcp "
                                       "10250/tcp\nsources 10.42.0.0/16 10.43.0.0/16\n### images")
    state = k3s_host.host_state(text)
    check = by_name(k3s_verdict.host_checks(state, k3s_host.decide(state, wanted), wanted, TOKEN_FILE))
    assert not check["k3s_prerequisites"]["passed"]
    assert check["k3s_prerequisites"]["message"] == "8472/udp not open in firewalld"


def test_host_checks_with_a_binary_running():
    artifact = {"binary": {"name": "k3s", "path": "/srv/k3s", "sha256": "c" * 64}, "images": None}
    wanted = dict(wanted_for(), artifact_dir="/srv", artifact=artifact)
    good = read_output(wanted, binary={"sha256": "c" * 64, "version": "v1.31.0+k3s1"},
                       units={"k3s.service": ("enabled", "active")})
    state = k3s_host.host_state(good)
    checks = by_name(k3s_verdict.host_checks(state, k3s_host.decide(state, wanted), wanted, TOKEN_FILE))
    assert checks["k3s_binary"]["passed"], checks["k3s_binary"]
    assert checks["k3s_binary"]["message"] == ("/usr/local/bin/k3s v1.31.0+k3s1 from the artifact directory "
                                               "(sha256 verified)")
    assert checks["k3s_service"]["passed"]
    other = read_output(wanted, binary={"sha256": "c" * 64, "version": "v1.32.0+k3s1"},
                        units={"k3s.service": ("enabled", "failed")})
    state = k3s_host.host_state(other)
    checks = by_name(k3s_verdict.host_checks(state, k3s_host.decide(state, wanted), wanted, TOKEN_FILE))
    assert not checks["k3s_binary"]["passed"]
    assert "is not v1.31.0+k3s1, the release whose flags the config was checked against" in checks["k3s_binary"]["message"]
    assert checks["k3s_service"]["message"] == "k3s.service: enabled=enabled, active=failed"


# ------------------------------------------------------------------------------------------- live


def physical_plan():
    inventory = yaml.safe_load((FIXTURES / "physical.yml").read_text())
    top = inventory["all"]
    host_vars = {}
    for group in top["children"]["lab_nodes"]["children"].values():
        for host, own in group["hosts"].items():
            host_vars[host] = {**top["vars"], **(group.get("vars") or {}), **(own or {})}
    profile = yaml.safe_load((ROOT / "profiles" / "bonding-vlans.yml").read_text())
    hosts = SERVERS + AGENTS
    return build_plan(hosts, {h: {k: host_vars[h].get(k) for k in HOST_KEYS} for h in hosts}, profile,
                      "bonding-vlans")


PLAN = physical_plan()
GOOD = (FIXTURES / "live" / "cluster-ready.txt").read_text()


def live(host, text=GOOD):
    return by_name(k3s_verdict.live_checks(text, host, "ctl-a", SERVERS, PLAN[host]))


def edited(change):
    """The good read with one change made to its parsed nodes or deployments."""
    found = k3s_verdict.live_sections(GOOD)
    nodes, deployments = json.loads(found["nodes"]), json.loads(found["deployments"])
    change({item["metadata"]["name"]: item for item in nodes["items"]},
           {item["metadata"]["name"]: item for item in deployments["items"]})
    out = []
    for name in ("readyz", "readyz_rc", "etcd", "etcd_rc"):
        out += [f"### {name}", found[name]]
    out += ["### nodes", json.dumps(nodes), "### deployments", json.dumps(deployments)]
    return "\n".join(out) + "\n"


def test_the_plan_of_the_fixture_cluster_is_the_fixtures():
    assert {host: PLAN[host]["cluster"]["address"] for host in ADDRESSES} == ADDRESSES
    assert {PLAN[host]["cluster"]["interface"] for host in ADDRESSES} == {"bond0.200"}


def test_a_ready_cluster_passes_every_live_check():
    first = live("ctl-a")
    assert list(first) == ["k3s_api_ready", "k3s_etcd", "k3s_coredns", "k3s_local_path", "k3s_node_ready",
                           "k3s_node_ip", "k3s_flannel"]
    assert all(check["passed"] for check in first.values()), first
    assert first["k3s_etcd"]["message"] == "/readyz/etcd: ok; etcd members ctl-a, ctl-b, ctl-c"
    assert first["k3s_etcd"]["figures"] == {"members": 3}
    assert first["k3s_coredns"]["message"] == "deployment coredns: 1 of 1 replicas available"
    assert first["k3s_node_ip"]["message"] == "InternalIP 192.168.200.31; the plan's cluster address 192.168.200.31"
    assert first["k3s_flannel"]["message"] == "flannel on bond0.200: public-ip 192.168.200.31"
    agent = live("gpu-b")
    assert list(agent) == ["k3s_node_ready", "k3s_node_ip", "k3s_flannel"]
    assert all(check["passed"] for check in agent.values()), agent
    assert agent["k3s_node_ready"]["message"] == "Ready=True; kubelet v1.31.0+k3s1"
    assert k3s_verdict.nodes_ready(GOOD, SERVERS + AGENTS)


def test_a_node_not_ready_fails_with_its_reason_and_holds_the_wait():
    def change(nodes, _deployments):
        ready = nodes["gpu-a"]["status"]["conditions"][-1]
        ready.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")

    text = edited(change)
    check = live("gpu-a", text)["k3s_node_ready"]
    assert not check["passed"]
    assert check["message"] == ("Ready=Unknown (NodeStatusUnknown: Kubelet stopped posting node status.); "
                                "kubelet v1.31.0+k3s1")
    assert not k3s_verdict.nodes_ready(text, SERVERS + AGENTS) and k3s_verdict.nodes_ready(text, SERVERS)


def test_an_internal_ip_other_than_the_cluster_address_fails():
    def change(nodes, _deployments):
        nodes["ctl-b"]["status"]["addresses"][0]["address"] = "10.20.0.12"

    check = live("ctl-b", edited(change))["k3s_node_ip"]
    assert not check["passed"]
    assert check["message"] == "InternalIP 10.20.0.12; the plan's cluster address 192.168.200.32"


def test_flannel_on_another_address_or_interface_fails():
    def change(nodes, _deployments):
        nodes["gpu-b"]["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"] = "10.20.0.22"
        args = json.loads(nodes["gpu-b"]["metadata"]["annotations"]["k3s.io/node-args"])
        args[args.index("--flannel-iface") + 1] = "eno1"
        nodes["gpu-b"]["metadata"]["annotations"]["k3s.io/node-args"] = json.dumps(args)

    check = live("gpu-b", edited(change))["k3s_flannel"]
    assert not check["passed"]
    assert check["message"] == ("flannel's public-ip is 10.20.0.22, not the cluster address 192.168.200.22; "
                                "k3s runs with --flannel-iface eno1, not the cluster interface bond0.200")


def test_coredns_unavailable_and_local_path_missing_fail():
    def change(_nodes, deployments):
        deployments["coredns"]["status"]["availableReplicas"] = 0
        deployments["local-path-provisioner"]["metadata"]["name"] = "something-else"

    checks = live("ctl-a", edited(change))
    assert checks["k3s_coredns"]["message"] == "deployment coredns: 0 of 1 replicas available"
    assert not checks["k3s_coredns"]["passed"]
    assert not checks["k3s_local_path"]["passed"]
    assert checks["k3s_local_path"]["message"].startswith("no deployment local-path-provisioner in kube-system")


def test_a_server_missing_from_etcd_fails():
    def change(nodes, _deployments):
        del nodes["ctl-c"]["metadata"]["labels"]["node-role.kubernetes.io/etcd"]

    check = live("ctl-a", edited(change))["k3s_etcd"]
    assert not check["passed"]
    assert check["message"] == "/readyz/etcd: ok; etcd members ctl-a, ctl-b; servers not members: ctl-c"


def test_a_node_never_registered_fails_every_node_check():
    found = k3s_verdict.live_sections(GOOD)
    parsed = json.loads(found["nodes"])
    parsed["items"] = [item for item in parsed["items"] if item["metadata"]["name"] != "gpu-b"]
    text = GOOD.replace(found["nodes"], json.dumps(parsed))
    checks = live("gpu-b", text)
    assert all(not check["passed"] for check in checks.values())
    assert checks["k3s_node_ready"]["message"] == "no node gpu-b registered (nodes: ctl-a, ctl-b, ctl-c, gpu-a)"


def test_an_api_that_is_down_fails_every_check_with_kubectls_words():
    text = (FIXTURES / "live" / "api-down.txt").read_text()
    checks = live("ctl-a", text)
    assert all(not check["passed"] for check in checks.values())
    assert checks["k3s_api_ready"]["message"].startswith("/readyz: The connection to the server 127.0.0.1:6443 was "
                                                         "refused")
    assert checks["k3s_node_ready"]["message"].startswith("kubectl's nodes is not JSON")
    assert not k3s_verdict.nodes_ready(text, ["ctl-a"])


def test_live_checks_skipped_with_the_reason_on_every_host():
    first = k3s_verdict.live_skipped("ctl-a", "ctl-a", "no k3s binary to install: ...")
    assert [check["name"] for check in first] == list(k3s_verdict.CLUSTER_LIVE + k3s_verdict.NODE_LIVE)
    assert all(check["skip_reason"] == "not live: no k3s binary to install: ..." and not check["passed"]
               for check in first)
    assert [check["name"] for check in k3s_verdict.live_skipped("gpu-a", "ctl-a", "x")] == list(k3s_verdict.NODE_LIVE)


def test_every_check_has_a_description():
    assert set(k3s_verdict.DESCRIPTIONS) >= set(k3s_verdict.CLUSTER_LIVE + k3s_verdict.NODE_LIVE)
