# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of category k3s: the config and its guard, the host after the role, the live cluster.

The live reads are hand-built in kubectl's JSON schema (fixtures/k3s/live/README.md): no
cluster can run here. Each failure is one field changed in the good read.
"""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import gpu_stack, k3s_config, k3s_host, k3s_verdict
from ansible_collections.aicluster.lab.plugins.module_utils.plan import HOST_KEYS, build_plan

from gpu_sysfs import build_sysfs, gather

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


# ------------------------------------------------------------------------------ probe workload

PROBE = (FIXTURES / "live" / "probe-passed.txt").read_text()
NODES = tuple(SERVERS + AGENTS)  # the probe's nodes, in the role's order (k3s_hosts): probe-net-<i> on NODES[i]


def probe(host, text=PROBE, nodes=NODES, **options):
    return by_name(k3s_verdict.probe_checks(text, host, "ctl-a", list(nodes), **options))


def changed(change, text=PROBE):
    """The probe read with ``change(found, parsed)`` made to its sections and parsed JSON sections."""
    found = k3s_verdict.live_sections(text)
    parsed = {name: json.loads(found[name]) for name in ("pvc", "volume_pod", "pods", "service", "volumes")}
    change(found, parsed)
    found.update({name: json.dumps(value) for name, value in parsed.items()})
    return "".join(f"### {name}\n{value}\n" for name, value in found.items())


def net_pod(parsed, index):
    return parsed["pods"]["items"][index]


def test_a_probe_that_passed_passes_every_check():
    first = probe("ctl-a")
    assert list(first) == ["k3s_volume_bound", "k3s_probe_cleanup", "k3s_pod_to_pod", "k3s_pod_dns"]
    assert all(check["passed"] and check["category"] == "k3s" for check in first.values()), first
    assert first["k3s_volume_bound"]["message"] == (
        "claim probe-volume Bound to pvc-6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11 (16Mi, storage class local-path); pod "
        "probe-volume on ctl-b wrote its node's name to it and read it back")
    assert first["k3s_probe_cleanup"]["message"] == ("namespace aicluster-probe deleted with its pods and claim; no volume "
                                                     "of its claim left")
    assert first["k3s_pod_to_pod"]["message"] == (
        "the pod on ctl-a (10.42.1.7) fetched ctl-b's name from its pod (10.42.2.6:8080); the pod on gpu-b (10.42.5.4) "
        "fetched ctl-a's")
    assert first["k3s_pod_dns"]["message"] == ("the pod on ctl-a resolved kubernetes.default.svc.cluster.local to "
                                               "10.43.0.1, the ClusterIP of service kubernetes")
    agent = probe("gpu-a")
    assert list(agent) == ["k3s_pod_to_pod", "k3s_pod_dns"] and all(check["passed"] for check in agent.values())
    assert agent["k3s_pod_to_pod"]["message"].startswith("the pod on gpu-a (10.42.4.4) fetched gpu-b's name")


def test_a_claim_never_bound_fails_naming_the_wait_and_the_scheduler():
    def change(found, parsed):
        found["volume_bound_rc"] = found["volume_done_rc"] = "1"
        found["volume_bound"] = "error: timed out waiting for the condition on persistentvolumeclaims/probe-volume"
        found["volume_done"] = "error: timed out waiting for the condition on pods/probe-volume"
        parsed["pvc"]["status"] = {"phase": "Pending"}
        del parsed["pvc"]["spec"]["volumeName"]
        pod = parsed["volume_pod"]
        del pod["spec"]["nodeName"]
        pod["status"] = {"conditions": [{"lastProbeTime": None, "lastTransitionTime": "2026-12-01T20:20:02Z",
                                         "message": "running PreBind plugin \"VolumeBinding\": binding volumes: "
                                                    "provisioning failed for PVC \"probe-volume\"",
                                         "reason": "SchedulerError", "status": "False", "type": "PodScheduled"}],
                         "phase": "Pending", "qosClass": "Burstable"}

    check = probe("ctl-a", changed(change))["k3s_volume_bound"]
    assert not check["passed"]
    assert check["message"] == (
        "claim probe-volume is Pending; waited 300 s for the claim probe-volume to be Bound: error: timed out waiting "
        "for the condition on persistentvolumeclaims/probe-volume (exit 1); pod probe-volume Pending, not scheduled: "
        "SchedulerError (running PreBind plugin \"VolumeBinding\": binding volumes: provisioning failed for PVC "
        "\"probe-volume\"); waited 300 s for pod probe-volume to write and read the volume: error: timed out waiting "
        "for the condition on pods/probe-volume (exit 1)")


def test_a_volume_that_gives_back_something_else_fails():
    def change(found, _parsed):
        found["volume_log"] = "cat: can't open '/data/probe': No such file or directory"

    check = probe("ctl-a", changed(change))["k3s_volume_bound"]
    assert not check["passed"]
    assert check["message"] == ("pod probe-volume on ctl-b read back \"cat: can't open '/data/probe': No such file or "
                                "directory\", not what it wrote ('ctl-b')")


def test_a_pod_whose_image_cannot_be_pulled_fails_its_node_and_its_neighbours():
    def change(found, parsed):
        pod = net_pod(parsed, 3)  # gpu-a
        pod["status"]["phase"] = "Pending"
        pod["status"].pop("podIP")
        pod["status"].pop("podIPs")
        pod["status"]["conditions"] = [item for item in pod["status"]["conditions"] if item["type"] != "Ready"] + [
            {"lastProbeTime": None, "lastTransitionTime": "2026-12-01T20:20:03Z", "message": "containers with unready "
             "status: [probe]", "reason": "ContainersNotReady", "status": "False", "type": "Ready"}]
        pod["status"]["containerStatuses"][0].update(ready=False, started=False, state={"waiting": {
            "message": "Back-off pulling image \"docker.io/rancher/mirrored-library-busybox:1.36.1\"",
            "reason": "ImagePullBackOff"}})
        found["net_ready_rc"] = "1"
        found["net_ready"] = "\n".join(f"pod/probe-net-{i} condition met" for i in (0, 1, 2, 4)) + (
            "\nerror: timed out waiting for the condition on pods/probe-net-3")
        found["fetch_2_rc"] = found["fetch_3_rc"] = "1"
        found["fetch_2"] = "wget: bad address 'http://:8080/'\ncommand terminated with exit code 1"
        found["fetch_3"] = found["dns_3"] = 'error: unable to upgrade connection: container not found ("probe")'
        found["dns_3_rc"] = "1"

    text = changed(change)
    mine = probe("gpu-a", text)
    message = ("pod probe-net-3 for gpu-a: Pending on gpu-a, container probe waiting: ImagePullBackOff (Back-off "
               "pulling image \"docker.io/rancher/mirrored-library-busybox:1.36.1\"); waited 300 s for the probe pods to "
               "be Ready: pod/probe-net-0 condition met pod/probe-net-1 condition met pod/probe-net-2 condition met "
               "pod/probe-net-4 condition met error: timed out waiting for the condition on pods/probe-net-3 (exit 1)")
    assert [(check["passed"], check["message"]) for check in mine.values()] == [(False, message)] * 2
    before, after = probe("ctl-c", text), probe("gpu-b", text)
    assert not before["k3s_pod_to_pod"]["passed"] and before["k3s_pod_dns"]["passed"]
    assert before["k3s_pod_to_pod"]["message"] == ("the pod on gpu-a is not Ready: Pending on gpu-a, container probe "
                                                   "waiting: ImagePullBackOff (Back-off pulling image "
                                                   "\"docker.io/rancher/mirrored-library-busybox:1.36.1\")")
    assert not after["k3s_pod_to_pod"]["passed"] and after["k3s_pod_dns"]["passed"]
    assert probe("ctl-a", text)["k3s_pod_to_pod"]["passed"]  # ctl-a's neighbours are ctl-b and gpu-b


def test_traffic_that_does_not_cross_fails_with_wgets_words():
    def change(found, _parsed):
        found["fetch_1_rc"] = "1"
        found["fetch_1"] = "wget: download timed out\ncommand terminated with exit code 1"

    text = changed(change)
    check = probe("ctl-b", text)["k3s_pod_to_pod"]
    assert not check["passed"]
    assert check["message"] == ("the pod on ctl-b (10.42.2.6) fetching from the pod on ctl-c (10.42.3.5:8080) failed: "
                                "wget: download timed out command terminated with exit code 1 (exit 1)")
    assert not probe("ctl-c", text)["k3s_pod_to_pod"]["passed"]  # reached by ctl-b: the same fetch
    assert probe("ctl-a", text)["k3s_pod_to_pod"]["passed"]


def test_an_answer_from_another_node_fails():
    def change(found, _parsed):
        found["fetch_0"] = "ctl-c"

    check = probe("ctl-a", changed(change))["k3s_pod_to_pod"]
    assert not check["passed"]
    assert check["message"] == ("the pod on ctl-a (10.42.1.7) fetching from the pod on ctl-b (10.42.2.6:8080) got "
                                "'ctl-c', not 'ctl-b'")


def test_a_lookup_that_fails_or_answers_wrong_fails():
    def change(found, _parsed):
        found["dns_2_rc"] = "1"
        found["dns_2"] = ("Server:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\n** server can't find "
                          "kubernetes.default.svc.cluster.local: NXDOMAIN\n\ncommand terminated with exit code 1")
        found["dns_4"] = found["dns_4"].replace("Address: 10.43.0.1", "Address: 10.43.0.99")

    text = changed(change)
    nxdomain = probe("ctl-c", text)["k3s_pod_dns"]
    assert not nxdomain["passed"]
    assert nxdomain["message"] == (
        "the pod on ctl-c found no address for kubernetes.default.svc.cluster.local: Server: 10.43.0.10 Address: "
        "10.43.0.10:53 ** server can't find kubernetes.default.svc.cluster.local: NXDOMAIN command terminated with exit "
        "code 1 (exit 1)")
    wrong = probe("gpu-b", text)["k3s_pod_dns"]
    assert not wrong["passed"]
    assert wrong["message"] == ("the pod on gpu-b resolved kubernetes.default.svc.cluster.local to 10.43.0.99, not the "
                                "ClusterIP of service kubernetes (10.43.0.1)")


@pytest.mark.parametrize("text, name, addresses", [
    # busybox 1.28 and later (1.36.1 is the probe's image)
    ("Server:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.43.0.1\n",
     "kubernetes.default.svc.cluster.local", ["10.43.0.1"]),
    # busybox before 1.28
    ("Server:    10.43.0.10\nAddress 1: 10.43.0.10 kube-dns.kube-system.svc.cluster.local\n\n"
     "Name:      kubernetes.default.svc.cluster.local\nAddress 1: 10.43.0.1 kubernetes.default.svc.cluster.local\n",
     "kubernetes.default.svc.cluster.local", ["10.43.0.1"]),
    # an answer for another name is not this one's
    ("Server:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\nName:\tother.example\nAddress: 192.0.2.1\n",
     "kubernetes.default.svc.cluster.local", []),
    ("", "kubernetes.default.svc.cluster.local", []),
])
def test_the_dns_answer_is_the_address_lines_after_the_name(text, name, addresses):
    assert k3s_verdict.dns_answer(text, name) == addresses


def test_a_probe_that_leaves_something_behind_fails_cleanup():
    def change(found, parsed):
        found["cleanup_rc"] = "1"
        found["cleanup"] = ('namespace "aicluster-probe" deleted\nerror: timed out waiting for the condition on '
                            'namespaces/aicluster-probe')
        found["volume_deleted_rc"] = "1"
        found["volume_deleted"] = ("error: timed out waiting for the condition on "
                                   "persistentvolumes/pvc-6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11")
        parsed["volumes"]["items"] = [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {
            "name": "pvc-6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11"}, "spec": {"claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": "probe-volume", "namespace": "aicluster-probe",
                "uid": "6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11"}, "storageClassName": "local-path"},
            "status": {"phase": "Released"}}]

    check = probe("ctl-a", changed(change))["k3s_probe_cleanup"]
    assert not check["passed"]
    assert check["message"] == (
        "namespace aicluster-probe not deleted: namespace \"aicluster-probe\" deleted error: timed out waiting for the "
        "condition on namespaces/aicluster-probe (exit 1); volume pvc-6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11 of the "
        "probe's claim still there; waited 300 s for local-path to delete it: error: timed out waiting for the "
        "condition on persistentvolumes/pvc-6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11 (exit 1)")


def test_a_refused_apply_fails_every_check_with_kubectls_words_and_cleanup_is_still_judged():
    refused = ('Error from server (Forbidden): error when creating "STDIN": pods "probe-net-0" is forbidden: '
               'exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10')

    def change(found, _parsed):
        found["apply_rc"] = "1"
        found["apply"] = refused

    checks = probe("ctl-a", changed(change))
    message = f"kubectl apply of the probe workload failed (exit 1): {refused}"
    assert [(name, check["passed"], check["message"]) for name, check in checks.items() if name != "k3s_probe_cleanup"] == [
        ("k3s_volume_bound", False, message), ("k3s_pod_to_pod", False, message), ("k3s_pod_dns", False, message)]
    assert checks["k3s_probe_cleanup"]["passed"]
    nothing = probe("gpu-a", "")
    assert all(check["message"] == "the probe did not run (no output)" and not check["passed"] for check in nothing.values())


def test_one_node_has_no_pod_to_reach_and_that_is_a_skip():
    found = k3s_verdict.live_sections(PROBE)
    pods = json.loads(found["pods"])
    pods["items"] = pods["items"][:1]
    found["pods"] = json.dumps(pods)
    text = "".join(f"### {name}\n{value}\n" for name, value in found.items() if not name.startswith("fetch_"))
    checks = probe("ctl-a", text, nodes=["ctl-a"])
    assert checks["k3s_pod_to_pod"]["skip_reason"] == "one node in the cluster (ctl-a): no other node's pod to reach"
    assert not checks["k3s_pod_to_pod"]["passed"]  # a skip is never a pass
    assert checks["k3s_pod_dns"]["passed"] and checks["k3s_volume_bound"]["passed"]


def test_probe_checks_skipped_with_the_live_reason_or_when_turned_off():
    first = k3s_verdict.probe_checks("", "ctl-a", "ctl-a", NODES, "no k3s binary to install: ...")
    assert [check["name"] for check in first] == list(k3s_verdict.PROBE_CLUSTER + k3s_verdict.PROBE_NODE)
    assert all(check["skip_reason"] == "not live: no k3s binary to install: ..." and not check["passed"] for check in first)
    off = k3s_verdict.probe_checks("", "gpu-a", "ctl-a", NODES, enabled=False)
    assert [(check["name"], check["skip_reason"]) for check in off] == [
        ("k3s_pod_to_pod", "k3s_probe is false: no probe workload was run"),
        ("k3s_pod_dns", "k3s_probe is false: no probe workload was run")]


# ------------------------------------------------------------------------------------ GPU support

GPU_READ = (FIXTURES / "live" / "gpu-ready.txt").read_text()


@pytest.fixture(name="t4_facts")
def fixture_t4_facts(tmp_path):
    """What gpu_facts reads (sysfs only) on the AWS Tesla T4 host of fixtures/gpu, on Debian."""
    facts = gather(build_sysfs("tesla-t4-aws", tmp_path / "sys"), "", tmp_path / "dev")
    facts["distribution"] = {"id": "debian", "version_id": "12", "family": "Debian"}
    return facts


def gpu_check(text, host, plan, facts, skip_reason=""):
    checks = k3s_verdict.gpu_checks(text, host, plan, facts, skip_reason)
    assert [check["name"] for check in checks] == ["k3s_gpu_runtime"]
    return checks[0]


def gpu_edited(change):
    """The GPU read with ``change(found, parsed)`` made to its sections and parsed JSON sections."""
    found = k3s_verdict.live_sections(GPU_READ)
    parsed = {name: json.loads(found[name]) for name in ("runtimeclasses", "daemonset", "pods", "nodes")}
    change(found, parsed)
    found.update({name: json.dumps(value) for name, value in parsed.items()})
    return "".join(f"### {name}\n{value}\n" for name, value in found.items())


def item(listing, name):
    return next(entry for entry in listing["items"] if entry["metadata"]["name"] == name)


def test_a_gpu_node_with_its_runtime_plugin_and_gpus_passes(t4_facts):
    plan = gpu_stack.host_plan(t4_facts, container_runtime=True)
    assert (plan["stack"], plan["container"]["runtime"]) == ("cuda", "nvidia")
    check = gpu_check(GPU_READ, "gpu-a", plan, t4_facts)
    assert check["passed"], check
    assert check["message"] == ("RuntimeClass nvidia (handler nvidia); device plugin pod nvidia-device-plugin-daemonset-"
                                "7x2kq Ready on gpu-a (10.42.4.3) (nvcr.io/nvidia/k8s-device-plugin:v0.17.1); allocatable "
                                "nvidia.com/gpu 1, the 1 GPU(s) of its PCI bus")
    assert check["figures"] == {"gpus": 1}


def test_a_node_that_advertises_no_gpu_fails_naming_both_counts(t4_facts):
    def change(_found, parsed):
        for key in ("allocatable", "capacity"):
            del item(parsed["nodes"], "gpu-a")["status"][key]["nvidia.com/gpu"]

    check = gpu_check(gpu_edited(change), "gpu-a", gpu_stack.host_plan(t4_facts, container_runtime=True), t4_facts)
    assert not check["passed"] and check["figures"] == {"gpus": 0}
    assert check["message"] == ("gpu-a advertises no allocatable nvidia.com/gpu (capacity none); its PCI bus shows 1 "
                                "GPU(s) of the cuda stack")


def test_a_crashing_plugin_and_a_missing_runtime_class_fail(t4_facts):
    def change(found, parsed):
        parsed["runtimeclasses"]["items"].remove(item(parsed["runtimeclasses"], "nvidia"))
        pod = item(parsed["pods"], "nvidia-device-plugin-daemonset-7x2kq")
        pod["status"]["conditions"] = [entry for entry in pod["status"]["conditions"] if entry["type"] != "Ready"]
        pod["status"]["containerStatuses"][0].update(ready=False, restartCount=4, started=False, state={"waiting": {
            "message": "back-off 1m20s restarting failed container=nvidia-device-plugin-ctr "
                       "pod=nvidia-device-plugin-daemonset-7x2kq_kube-system(7e9a1b3d-5f7a-4c9e-8b1d-3f5a7c9e1b7x00)",
            "reason": "CrashLoopBackOff"}})
        found["rollout_rc"] = "1"
        found["rollout"] = ("Waiting for daemon set \"nvidia-device-plugin-daemonset\" rollout to finish: 1 of 2 updated "
                            "pods are available...\nerror: timed out waiting for the condition")

    check = gpu_check(gpu_edited(change), "gpu-a", gpu_stack.host_plan(t4_facts, container_runtime=True), t4_facts)
    assert not check["passed"]
    assert check["message"] == (
        "no RuntimeClass nvidia (RuntimeClasses: crun, lunatic, nvidia-experimental, slight, spin, wasmedge, wasmer, "
        "wasmtime, wws); device plugin pod nvidia-device-plugin-daemonset-7x2kq Running on gpu-a, container "
        "nvidia-device-plugin-ctr waiting: CrashLoopBackOff (back-off 1m20s restarting failed container="
        "nvidia-device-plugin-ctr pod=nvidia-device-plugin-daemonset-7x2kq_kube-system(7e9a1b3d-5f7a-4c9e-8b1d-"
        "3f5a7c9e1b7x00)); waited 300 s for daemonset nvidia-device-plugin-daemonset to roll out: Waiting for daemon "
        "set \"nvidia-device-plugin-daemonset\" rollout to finish: 1 of 2 updated pods are available... error: timed "
        "out waiting for the condition (exit 1)")


def test_gpu_support_is_skipped_with_the_reason_where_it_does_not_apply(t4_facts, tmp_path):
    cpu = gather(build_sysfs("cpu-only-ci", tmp_path / "cpu"), "", tmp_path / "dev")
    cpu["distribution"] = {"id": "debian", "version_id": "12", "family": "Debian"}
    cases = [
        (gpu_stack.host_plan(cpu, container_runtime=True), cpu, "no GPU stack on this host (cpu): no GPU: CPU fallback"),
        (gpu_stack.host_plan(t4_facts), t4_facts,
         "no container support for the cuda stack on this host: gpu_container_runtime is false"),
        ({"stack": "rocm", "container": gpu_stack.container_choice("Debian", "rocm")}, {},
         "the rocm stack has no container runtime of its own (ROCm containers need no runtime of their own: the device "
         "plugin passes /dev/kfd and /dev/dri); the role deploys no device plugin for it"),
        (None, None, "no GPU plan for gpu-a: its GPUs were not read (k3s does not run on it)"),
    ]
    for plan, facts, reason in cases:
        check = gpu_check("", "gpu-a", plan, facts)
        assert (check["passed"], check["skip_reason"]) == (False, reason)
    live = gpu_check("", "gpu-a", gpu_stack.host_plan(t4_facts, container_runtime=True), t4_facts, "no k3s binary")
    assert live["skip_reason"] == "not live: no k3s binary"


def test_every_live_check_has_a_description():
    assert set(k3s_verdict.DESCRIPTIONS) >= set(k3s_verdict.PROBE_CLUSTER + k3s_verdict.PROBE_NODE + k3s_verdict.GPU_NODE)
