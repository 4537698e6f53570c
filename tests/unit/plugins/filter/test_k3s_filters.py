# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k3s role's filters over module_utils, and the role's own sh scripts run for real on this machine.

The state read and the reset's read only read; here (a build machine, no k3s) the state read
must parse and decide "everything to write, no binary", and the reset's read must find nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shlex
import subprocess

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter import k3s as k3s_filters
from ansible_collections.aicluster.lab.plugins.filter.k3s_config import k3s_config
from ansible_collections.aicluster.lab.plugins.filter.plan import plan
from ansible_collections.aicluster.lab.plugins.module_utils import k3s_host

ROOT = pathlib.Path(__file__).resolve().parents[4]
ROLE = ROOT / "roles" / "k3s"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
TOKEN_FILE = DEFAULTS["k3s_token_file"]


def plan_hosts(name="simple", hosts=("node1", "node2")):
    return plan(list(hosts), {}, {"name": name, "profile": yaml.safe_load((ROOT / "profiles" / f"{name}.yml").read_text())})


def render(template, keep_trailing_newline=True, **variables):
    """A role template rendered as Ansible would, with the few Ansible filters the scripts use.

    Ansible's template lookup drops an included template's last newline: the scripts must
    hold either way (keep_trailing_newline=False renders as Ansible does).
    """
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=keep_trailing_newline, trim_blocks=True)
    environment.filters["quote"] = lambda value: shlex.quote(str(value))
    environment.filters["dirname"] = lambda value: str(pathlib.PurePosixPath(value).parent)
    environment.filters["to_json"] = json.dumps
    environment.filters["bool"] = bool
    return environment.get_template(template).render(**variables)


def wanted(host="node1", role="server", **more):
    configs = k3s_config(plan_hosts(), ["node1"], ["node2"])
    unit = render("k3s.service.j2", inventory_hostname=host, k3s_role_here=role,
                  k3s_start_timeout_s=DEFAULTS["k3s_start_timeout_s"], k3s_kernel_modules=DEFAULTS["k3s_kernel_modules"])
    files = k3s_filters.k3s_host_files(configs[host], host, role, {}, unit, DEFAULTS["k3s_kernel_modules"],
                                       DEFAULTS["k3s_sysctls"])
    result = {"role": role, "files": files, "dirs": ["/etc/rancher/k3s", "/etc/rancher/k3s/config.yaml.d",
                                                     "/var/lib/rancher/k3s/agent/images"],
              "modules": DEFAULTS["k3s_kernel_modules"], "sysctls": DEFAULTS["k3s_sysctls"], "users": [],
              "firewall": k3s_filters.k3s_firewall_rules(role, configs["node1"]),
              "version": DEFAULTS["k3s_version"], "artifact_dir": "", "from_release": False, "artifacts": {},
              "token_given": False, "token_file": TOKEN_FILE, "first_server": host == "node1"}
    result.update(more)
    return result


def run_sh(text):
    done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_registered_names():
    assert sorted(k3s_filters.FilterModule().filters()) == [
        "k3s_artifacts", "k3s_checks", "k3s_decide", "k3s_firewall_rules", "k3s_gpu_checks", "k3s_host_files",
        "k3s_live_checks", "k3s_members", "k3s_nodes_ready", "k3s_probe_checks", "k3s_release_names"]


def test_the_unit_template_runs_the_role_and_is_skipped_without_a_binary():
    unit = render("k3s.service.j2", inventory_hostname="node2", k3s_role_here="agent", k3s_start_timeout_s=900,
                  k3s_kernel_modules=["br_netfilter", "overlay"])
    assert unit.startswith(k3s_host.MARK + " for node2 (agent)")
    lines = unit.splitlines()
    for line in ("Type=notify", "KillMode=process", "Delegate=yes", "ConditionFileIsExecutable=/usr/local/bin/k3s",
                 "TimeoutStartSec=900", "ExecStartPre=-/sbin/modprobe br_netfilter", "ExecStart=/usr/local/bin/k3s agent",
                 "WantedBy=multi-user.target"):
        assert line in lines, line


def read_state_script(want):
    paths = [item["path"] for item in want["files"]] + ["/etc/systemd/system/k3s-agent.service"]
    return render("read-state.sh.j2", k3s_read_paths=paths, k3s_dirs=want["dirs"],
                  k3s_kernel_modules=want["modules"], k3s_sysctls_here=want["sysctls"], k3s_token_file=TOKEN_FILE,
                  k3s_users=["root", "no-such-user-here"], k3s_artifact_dir="")


def test_the_state_read_runs_here_and_decides_everything_to_write_and_no_binary():
    want = wanted()
    output = run_sh(read_state_script(want))
    read = k3s_filters.k3s_decide(output, want)
    state, decision = read["state"], read["decision"]
    assert state["machine"] and state["binary"] is None
    assert set(state["files"]) == {item["path"] for item in want["files"]} | {"/etc/systemd/system/k3s-agent.service"}
    assert state["users"] == {"root": True, "no-such-user-here": False}
    assert set(state["sysctls"]) == set(want["sysctls"])
    assert {item["path"] for item in decision["files"]} == {item["path"] for item in want["files"]}
    assert not decision["live"] and decision["binary"]["action"] == "none"
    assert read["token"] == {"from": "generate", "path": TOKEN_FILE}
    assert decision["pending"][-1] == f"generate the cluster token in {TOKEN_FILE}"
    agent = k3s_filters.k3s_decide(run_sh(read_state_script(wanted("node2", "agent"))), wanted("node2", "agent"))
    assert agent["token"] == {"from": "first server", "path": None}
    assert agent["decision"]["pending"][-1] == f"write {TOKEN_FILE} (0600, the cluster token)"
    # A build machine runs no firewalld or ufw: nothing to open.
    assert state["firewall"]["kind"] == "none" and decision["firewall"] == {"kind": "none", "ports": [], "sources": []}


def test_the_state_read_sees_a_file_as_written(tmp_path):
    # The read hashes what is on disk exactly as the decision hashes what it would write.
    want = wanted()
    config = tmp_path / "config.yaml"
    config.write_text(want["files"][0]["content"])
    config.chmod(0o600)
    want["files"][0] = dict(want["files"][0], path=str(config))
    read = k3s_filters.k3s_decide(run_sh(read_state_script(want)), want)
    line = read["state"]["files"][str(config)]
    assert line["mode"] == "600" and line["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    written = {item["path"]: item["why"] for item in read["decision"]["files"]}
    if os.geteuid() == 0:
        assert str(config) not in written
    else:  # a file not owned by root is written again, whatever its content
        assert written[str(config)] == f"owner {line['owner']}"


def test_the_reset_read_finds_nothing_of_k3s_here():
    assert run_sh(render("reset-left.sh.j2", k3s_token_file=TOKEN_FILE)) == ""


def test_the_reset_script_is_valid_sh():
    done = subprocess.run(["sh", "-n"], input=render("reset.sh.j2", k3s_token_file=TOKEN_FILE), text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("keep", [True, False])
def test_the_live_read_is_valid_sh(keep):
    done = subprocess.run(["sh", "-n"], input=render("live-read.sh.j2", keep), text=True, capture_output=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_the_checks_filter_gives_the_config_and_host_checks():
    want = wanted()
    output = run_sh(read_state_script(want))
    read = k3s_filters.k3s_decide(output, want)
    configs = k3s_config(plan_hosts(), ["node1"], ["node2"])
    checks = k3s_filters.k3s_checks(output, read, want, configs["node1"], plan_hosts()["node1"], "node1")
    names = [check["name"] for check in checks]
    assert names == ["k3s_config", "k3s_config_guard", "k3s_files", "k3s_prerequisites", "k3s_binary", "k3s_service"]
    assert checks[0]["passed"] and checks[1]["passed"]
    assert not checks[2]["passed"] and "/etc/rancher/k3s/config.yaml: missing" in checks[2]["message"]
    assert checks[4]["skip_reason"] and checks[5]["skip_reason"]


def test_the_live_filter_skips_with_the_reason_or_judges():
    skipped = k3s_filters.k3s_live_checks("", "node1", "node1", ["node1"], plan_hosts()["node1"], "no binary")
    assert [check["skip_reason"] for check in skipped] == ["not live: no binary"] * 7
    judged = k3s_filters.k3s_live_checks("", "node2", "node1", ["node1"], plan_hosts()["node2"])
    assert [check["passed"] for check in judged] == [False] * 3
    assert not k3s_filters.k3s_nodes_ready("", ["node1"])


def test_the_probe_and_gpu_filters_skip_with_the_reason_or_judge():
    skipped = k3s_filters.k3s_probe_checks("", "node1", "node1", ["node1", "node2"], "no binary")
    assert [check["skip_reason"] for check in skipped] == ["not live: no binary"] * 4
    off = k3s_filters.k3s_probe_checks("", "node2", "node1", ["node1", "node2"], "", False)
    assert [check["skip_reason"] for check in off] == ["k3s_probe is false: no probe workload was run"] * 2
    judged = k3s_filters.k3s_probe_checks("", "node2", "node1", ["node1", "node2"])
    assert [check["passed"] for check in judged] == [False] * 2
    assert k3s_filters.k3s_gpu_checks("", "node1", None, None, "no binary")[0]["skip_reason"] == "not live: no binary"
    cpu = {"stack": "cpu", "reason": "no GPU: CPU fallback", "container": None}
    assert k3s_filters.k3s_gpu_checks("", "node1", cpu, {"gpus": []})[0]["skip_reason"] == (
        "no GPU stack on this host (cpu): no GPU: CPU fallback")


@pytest.mark.parametrize("call, words", [
    (lambda: k3s_filters.k3s_members({"k3s_agents": ["a"]}), "has no servers to join"),
    (lambda: k3s_filters.k3s_artifacts("/nonexistent-k3s-artifacts", None), "is not a directory on the controller"),
    (lambda: k3s_filters.k3s_host_files("not a config", "node1", "server"), "the input must be the host's config"),
    (lambda: k3s_filters.k3s_host_files({}, "node1", "server", {"x": {"token": "t"}}), "a secret never goes"),
    (lambda: k3s_filters.k3s_decide("### machine\nx86_64\n", wanted()), "the read did not run to its end"),
    (lambda: k3s_filters.k3s_probe_checks("", "node1", "node1", "node1"), "nodes must be the list of the probe's nodes"),
    (lambda: k3s_filters.k3s_gpu_checks("", "node1", "cuda"), "plan must be what the gpu_plan filter returned"),
    (lambda: k3s_filters.k3s_decide(run_sh(read_state_script(wanted())), dict(wanted(), artifact_dir="/srv")),
     "the artifact directory has no release files for this host's machine"),
])
def test_errors_are_filter_errors_naming_the_problem(call, words):
    with pytest.raises(AnsibleFilterError, match=words):
        call()


def test_members_from_ansible_groups():
    assert k3s_filters.k3s_members({"all": ["n1", "n2"], "lab_nodes": ["n1", "n2"], "ungrouped": []})["servers"] == ["n1"]


def test_release_names_per_architecture_and_an_unknown_one_refused():
    from ansible_collections.aicluster.lab.plugins.filter.k3s import k3s_release_names

    assert k3s_release_names("arm64") == {"binary": "k3s-arm64", "sums": "sha256sum-arm64.txt",
                                          "images": ["k3s-airgap-images-arm64.tar.zst", "k3s-airgap-images-arm64.tar.gz",
                                                     "k3s-airgap-images-arm64.tar"]}
    assert k3s_release_names("amd64")["binary"] == "k3s" and k3s_release_names("arm")["binary"] == "k3s-armhf"
    with pytest.raises(AnsibleFilterError, match="no release for architecture"):
        k3s_release_names("riscv64")
