# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k3s role's live scripts - live-read, probe, gpu-apply, gpu-read - rendered as Ansible
renders them and run for real with sh, against a stand-in for k3s's kubectl.

No k3s can run here (DESIGN.md). The stand-in answers each kubectl call the scripts make from
the hand-built reads of fixtures/k3s/live (README.md there) and logs every call, so the tests
show which calls each script makes (each wait bounded by its own --timeout, not cut short by
a request timeout), what it applies, that each pod fetches from the address of the next
node's pod, and that what the scripts print is what the filters judge.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.filter import k3s as k3s_filters
from ansible_collections.aicluster.lab.plugins.module_utils import k3s_host, k3s_verdict

from test_k3s_filters import DEFAULTS, render

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "k3s" / "live"
NODES = ["ctl-a", "ctl-b", "ctl-c", "gpu-a", "gpu-b"]

# The stand-in: answers from the sections of the fixture named by AICLUSTER_FAKE_READ,
# logs its arguments (one JSON line a call) and what it read on stdin.
STAND_IN = r'''
import json, os, re, sys
sys.path.insert(0, os.environ["AICLUSTER_FAKE_PATH"])
from ansible_collections.aicluster.lab.plugins.module_utils.k3s_verdict import live_sections
args = sys.argv[1:]
stdin = sys.stdin.read() if "-f" in args and args[args.index("-f") + 1] == "-" else ""
if "-f" in args and args[args.index("-f") + 1] != "-":
    stdin = open(args[args.index("-f") + 1]).read()
with open(os.environ["AICLUSTER_FAKE_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "stdin": stdin}) + "\n")
found = live_sections(open(os.environ["AICLUSTER_FAKE_READ"]).read())
words = [a for a in args if not a.startswith("--kubeconfig") and not a.startswith("--request-timeout")
         and a != "/etc/rancher/k3s/k3s.yaml"]
assert words[0] == "kubectl", words
words = words[1:]
if words[:2] == ["-n", words[1] if len(words) > 1 else ""]:
    words = words[2:]

def answer(name, rc_name=None):
    print(found.get(name, ""))
    rc = found.get(rc_name or name + "_rc", "0").strip() or "0"
    sys.exit(int(rc))

def pods():
    return json.loads(found["pods"])["items"]

verb = words[0]
if verb == "get" and words[1:2] == ["--raw"]:
    answer("readyz" if words[2] == "/readyz" else "etcd")
if verb == "delete":
    answer("cleanup" if "cleanup" in found and os.path.exists(os.environ["AICLUSTER_FAKE_LOG"] + ".applied") else "leftover")
if verb == "apply":
    open(os.environ["AICLUSTER_FAKE_LOG"] + ".applied", "w").write(stdin)
    answer("apply")
if verb == "diff":
    sys.exit(int(os.environ.get("AICLUSTER_FAKE_DIFF", "0")))
if verb == "wait":
    target = [w for w in words[1:] if not w.startswith("--")]
    if target[:1] == ["pvc/probe-volume"]:
        answer("volume_bound")
    if target[:1] == ["pod/probe-volume"]:
        answer("volume_done")
    if target[:1] == ["pod"]:
        answer("net_ready")
    if target[0].startswith("pv/"):
        answer("volume_deleted")
if verb == "rollout":
    answer("rollout")
if verb == "logs":
    answer("volume_log")
if verb == "exec":
    pod, command = words[1], words[words.index("--") + 1:]
    index = int(pod.rsplit("-", 1)[1])
    if command[0] == "wget":
        ip = re.match(r"http://\[?([^\]/]+)\]?:8080/", command[-1]).group(1)
        target = [p for p in pods() if p["status"].get("podIP") == ip]
        assert target, f"no pod has the address {ip!r}"
        assert found[f"fetch_{index}"].strip() == target[0]["spec"]["nodeName"], "not the next node's pod"
        answer(f"fetch_{index}")
    answer(f"dns_{index}")
if verb == "get":
    kind, rest = words[1], words[2:]
    output = rest[rest.index("-o") + 1]
    if output.startswith("jsonpath="):
        if kind == "pod":
            print(next(p for p in pods() if p["metadata"]["name"] == rest[0])["status"].get("podIP", ""), end="")
        elif kind == "pvc":
            print(json.loads(found["pvc"])["spec"].get("volumeName", ""), end="")
        elif kind == "node":
            node = next(n for n in json.loads(found["nodes"])["items"] if n["metadata"]["name"] == rest[0])
            print(node["status"]["allocatable"].get("nvidia.com/gpu", ""), end="")
        sys.exit(0)
    section = {"nodes": "nodes", "deployments": "deployments", "pvc": "pvc", "service": "service", "pv": "volumes",
               "runtimeclasses": "runtimeclasses", "daemonset": "daemonset"}.get(kind)
    if kind == "pod":
        section = "volume_pod"
    if kind == "pods":
        section = "pods"
    print(found[section])
    sys.exit(0)
sys.exit("stand-in: no answer for %r" % (args,))
'''


def script(template, keep_trailing_newline=False, **variables):
    """The role's script as Ansible renders it (an included template's last newline dropped)."""
    values = dict(DEFAULTS, k3s_hosts=NODES, k3s_probe_nodes=NODES, k3s_cluster_domain="cluster.local")
    values.update(variables)
    return render(template, keep_trailing_newline, **values)


@pytest.fixture(name="k3s")
def fixture_k3s(tmp_path):
    """run(template, read, **vars) -> (stdout, rc, calls): the script run by sh with the stand-in as k3s."""
    stand_in = tmp_path / "k3s"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}")
    stand_in.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    collections = next(path for path in sys.path if (pathlib.Path(path) / "ansible_collections").is_dir())

    def run(template, read, environment=None, **variables):
        text = script(template, **variables).replace(k3s_host.BINARY, str(stand_in))
        assert k3s_host.BINARY not in text
        done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=120, check=False,
                              env={"PATH": "/usr/bin:/bin", "AICLUSTER_FAKE_PATH": collections,
                                   "AICLUSTER_FAKE_LOG": str(log), "AICLUSTER_FAKE_READ": str(FIXTURES / read),
                                   **(environment or {})})
        assert "stand-in: no answer" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return done.stdout, done.returncode, calls

    return run


def verbs(calls):
    return [[word for word in call["args"] if not word.startswith("--kubeconfig") and word != "/etc/rancher/k3s/k3s.yaml"]
            for call in calls]


@pytest.mark.parametrize("template", ["live-read.sh.j2", "probe.sh.j2", "gpu-apply.sh.j2", "gpu-read.sh.j2"])
@pytest.mark.parametrize("keep", [True, False])
def test_every_script_is_valid_sh_however_includes_end(template, keep):
    text = script(template, keep, k3s_gpu_nodes=["gpu-a", "gpu-b"], k3s_gpu_runtime_class="nvidia", k3s_gpu_apply=False)
    done = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_live_read_prints_what_the_live_filter_judges(k3s):
    out, rc, calls = k3s("live-read.sh.j2", "cluster-ready.txt")
    assert rc == 0
    assert all("--request-timeout=20s" in call["args"] for call in calls)  # reads: answered in 20 s or failed
    checks = k3s_filters.k3s_live_checks(out, "ctl-a", "ctl-a", ["ctl-a", "ctl-b", "ctl-c"],
                                         {"cluster": {"address": "192.168.200.31", "interface": "bond0.200"}})
    assert [(check["name"], check["passed"]) for check in checks] == [
        (name, True) for name in k3s_verdict.CLUSTER_LIVE + k3s_verdict.NODE_LIVE]


def test_the_probe_applies_its_manifest_waits_bounded_and_cleans_up(k3s):
    out, rc, calls = k3s("probe.sh.j2", "probe-passed.txt")
    assert rc == 0
    called = verbs(calls)
    wait = f"--timeout={DEFAULTS['k3s_probe_wait_s']}s"
    assert called[0] == ["kubectl", "delete", "namespace", "aicluster-probe", "--ignore-not-found", "--wait=true", wait]
    assert called[1] == ["kubectl", "--request-timeout=20s", "apply", "-f", "-"]
    waits = [call for call in called if "wait" in call]
    assert [call[-2:] for call in waits] == [
        ["pvc/probe-volume", wait], ["pod/probe-volume", wait], ["aicluster.lab/probe=net", wait],
        ["pv/pvc-6b1e2c9d-0f4a-4e1b-9a57-3c2d1e0f9a11", wait]]
    assert not any("--request-timeout=20s" in call for call in waits)  # a request timeout would cut a wait short
    fetches = [call[call.index("exec") + 1:] for call in called if "wget" in call]
    assert [(call[0], call[-1]) for call in fetches] == [
        ("probe-net-0", "http://10.42.2.6:8080/"), ("probe-net-1", "http://10.42.3.5:8080/"),
        ("probe-net-2", "http://10.42.4.4:8080/"), ("probe-net-3", "http://10.42.5.4:8080/"),
        ("probe-net-4", "http://10.42.1.7:8080/")]
    lookups = [call[call.index("--") + 1:] for call in called if "nslookup" in call]
    assert lookups == [["nslookup", "-type=a", "kubernetes.default.svc.cluster.local"]] * len(NODES)
    assert called[-3][:4] == ["kubectl", "delete", "namespace", "aicluster-probe"]
    manifest = list(yaml.safe_load_all(calls[1]["stdin"]))
    assert [(item["kind"], item["metadata"]["name"]) for item in manifest] == [
        ("Namespace", "aicluster-probe"), ("PersistentVolumeClaim", "probe-volume"), ("Pod", "probe-volume")] + [
        ("Pod", f"probe-net-{index}") for index in range(len(NODES))]
    for index, node in enumerate(NODES):
        assert manifest[3 + index]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": node}
    assert manifest[1]["spec"]["storageClassName"] == "local-path"
    assert {container["image"] for item in manifest[2:] for container in item["spec"]["containers"]} == {
        "docker.io/rancher/mirrored-library-busybox:1.36.1"}
    for host in NODES:
        checks = k3s_filters.k3s_probe_checks(out, host, "ctl-a", NODES)
        assert all(check["passed"] for check in checks), checks


def test_the_probe_manifest_runs_under_the_restricted_pod_security_profile():
    text = script("probe.sh.j2")
    manifest = list(yaml.safe_load_all(re.search(r"<<'AICLUSTER_PROBE_MANIFEST'\n(.*?)\nAICLUSTER_PROBE_MANIFEST",
                                                 text, re.S).group(1)))
    for pod in manifest[2:]:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["seccompProfile"] == {
            "type": "RuntimeDefault"}
        assert not spec["automountServiceAccountToken"] and spec["tolerations"] == [{"operator": "Exists"}]
        for container in spec["containers"]:
            assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        assert {volume.get("persistentVolumeClaim", {}).get("claimName") for volume in spec.get("volumes", [])} <= {
            "probe-volume"}


@pytest.mark.parametrize("differs, apply_called", [("0", False), ("1", False)])
def test_gpu_apply_diffs_first_and_exits_with_diffs_status(k3s, differs, apply_called):
    _out, rc, calls = k3s("gpu-apply.sh.j2", "gpu-ready.txt", {"AICLUSTER_FAKE_DIFF": differs},
                          k3s_gpu_nodes=["gpu-a", "gpu-b"], k3s_gpu_runtime_class="nvidia", k3s_gpu_apply=False)
    assert rc == int(differs)
    assert [verbs([call])[0][1] for call in calls] == ["diff"]
    assert ("apply" in [verbs([call])[0][1] for call in calls]) is apply_called


def test_gpu_apply_applies_the_runtime_class_and_the_device_plugin_for_the_gpu_nodes(k3s):
    _out, rc, calls = k3s("gpu-apply.sh.j2", "gpu-ready.txt", k3s_gpu_nodes=["gpu-a", "gpu-b"],
                          k3s_gpu_runtime_class="nvidia", k3s_gpu_apply=True)
    assert rc == 0 and [verbs([call])[0][1] for call in calls] == ["apply"]
    runtime_class, daemonset = yaml.safe_load_all(calls[0]["stdin"])
    assert (runtime_class["kind"], runtime_class["metadata"]["name"], runtime_class["handler"]) == (
        "RuntimeClass", "nvidia", "nvidia")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-a", "gpu-b"]}]}]


def test_gpu_read_waits_for_the_rollout_and_the_gpus_then_prints_what_the_gpu_filter_judges(k3s):
    out, rc, calls = k3s("gpu-read.sh.j2", "gpu-ready.txt", k3s_gpu_nodes=["gpu-a", "gpu-b"])
    assert rc == 0
    called = verbs(calls)
    assert called[0] == ["kubectl", "-n", "kube-system", "rollout", "status", "daemonset/nvidia-device-plugin-daemonset",
                         f"--timeout={DEFAULTS['k3s_probe_wait_s']}s"]
    assert called[1:3] == [["kubectl", "--request-timeout=20s", "get", "node", node, "-o",
                            "jsonpath={.status.allocatable.nvidia\\.com/gpu}"] for node in ("gpu-a", "gpu-b")]
    plan = {"stack": "cuda", "reason": "NVIDIA 10de:1eb8 at 0000:00:1e.0: cuda",
            "container": {"runtime": "nvidia", "note": ""}}
    facts = {"gpus": [{"address": "0000:00:1e.0", "compute_stack": "cuda"}]}
    check = k3s_filters.k3s_gpu_checks(out, "gpu-b", plan, facts)[0]
    assert check["passed"], check


def test_gpu_read_stops_waiting_for_gpus_at_its_bound(k3s, tmp_path):
    found = k3s_verdict.live_sections((FIXTURES / "gpu-ready.txt").read_text())
    nodes = json.loads(found["nodes"])
    for node in nodes["items"]:
        node["status"]["allocatable"].pop("nvidia.com/gpu", None)
    found["nodes"] = json.dumps(nodes)
    read = tmp_path / "no-gpus.txt"
    read.write_text("".join(f"### {name}\n{value}\n" for name, value in found.items()))
    # A bound of 4 s against the script's 5 s between polls: the first poll answers within the
    # bound even on a busy host (with 1 s, a first poll slower than a second, under load, was
    # already past it and the script rightly asked only once), the second comes after it.
    out, rc, calls = k3s("gpu-read.sh.j2", read, k3s_gpu_nodes=["gpu-a"], k3s_probe_wait_s=4)
    assert rc == 0
    polls = [call for call in verbs(calls) if call[2:5] == ["get", "node", "gpu-a"]]
    assert len(polls) == 2  # asked, waited (5 s), asked again past the bound, went on
    plan = {"stack": "cuda", "container": {"runtime": "nvidia", "note": ""}}
    check = k3s_filters.k3s_gpu_checks(out, "gpu-a", plan, {"gpus": [{"compute_stack": "cuda"}]})[0]
    assert not check["passed"] and check["message"] == (
        "gpu-a advertises no allocatable nvidia.com/gpu (capacity 1); its PCI bus shows 1 GPU(s) of the cuda stack")
