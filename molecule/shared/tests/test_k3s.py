"""k3s on the nodes, offline, as a person would check it by hand: the files and their modes,
config.yaml against the profile (node-ip and flannel-iface on the cluster network), the
units written but not started, the kernel settings, the token in no log or report, and the
k3s stage's report (config checks passed, the live part skipped with the reason).

Only the k3s scenario converges k3s; in the others these tests are skipped with that reason.
"""

import json
import os
import pathlib

import pytest
import testinfra
import yaml

from profile_data import PROJECT, host_interface, profile_of

pytestmark = pytest.mark.skipif(os.environ.get("MOLECULE_SCENARIO_NAME") != "k3s",
                                reason=f"scenario {os.environ.get('MOLECULE_SCENARIO_NAME')!r} does not converge k3s "
                                       "(only the k3s scenario does)")

CONFIG = "/etc/rancher/k3s/config.yaml"
TOKEN = "/etc/rancher/k3s/cluster-token"


def name_of(host):
    return host.backend.get_hostname()


def nodes(host):
    return host.ansible.get_variables()["groups"]["lab_nodes"]


def cluster_address(profile, name):
    return profile["hosts"][name]["addresses"]["cluster"]


def is_server(host):
    # No k3s groups in the scenario's inventory: the lab's first node is the server.
    return name_of(host) == nodes(host)[0]


def test_config_yaml_is_root_0600_and_from_the_profile(host):
    profile, name = profile_of(host), name_of(host)
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)
    data = yaml.safe_load(config.content_string)
    assert data["node-ip"] == cluster_address(profile, name)
    assert data["flannel-iface"] == host_interface(profile, name, "cluster")
    assert data["token-file"] == TOKEN
    assert "token" not in data and "agent-token" not in data
    first = cluster_address(profile, nodes(host)[0])
    if is_server(host):
        assert data["cluster-init"] is True and data["advertise-address"] == first
        assert first in data["tls-san"]
    else:
        assert data["server"] == f"https://{first}:6443" and "tls-san" not in data


def test_the_token_file_is_root_0600_and_the_same_on_every_node(host):
    token = host.file(TOKEN)
    assert (token.user, token.group, token.mode) == ("root", "root", 0o600)
    assert len(token.content_string.strip()) >= 32
    first = testinfra.get_host(f"ansible://{nodes(host)[0]}", ansible_inventory=host.backend.ansible_inventory)
    assert first.file(TOKEN).content_string == token.content_string


def test_the_unit_is_written_but_not_started_without_a_binary(host):
    unit = "k3s.service" if is_server(host) else "k3s-agent.service"
    other = "k3s-agent.service" if is_server(host) else "k3s.service"
    path = host.file(f"/etc/systemd/system/{unit}")
    assert path.mode == 0o644 and f"ExecStart=/usr/local/bin/k3s {'server' if is_server(host) else 'agent'}" \
        in path.content_string
    assert not host.file(f"/etc/systemd/system/{other}").exists
    assert not host.file("/usr/local/bin/k3s").exists
    service = host.service(unit)
    assert not service.is_running and not service.is_enabled
    # No binary, so systemd would skip it at boot, not fail it: no failed unit on the node.
    assert host.run("systemctl --failed --no-legend --plain").stdout.strip() == ""


def test_the_kernel_has_what_k3s_needs_now_and_at_boot(host):
    for module in ("br_netfilter", "overlay"):
        assert host.file(f"/sys/module/{module}").is_directory, module
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"):
        assert host.file(f"/proc/sys/{key}").content_string.strip() == "1", key
    assert host.file("/etc/modules-load.d/aicluster-k3s.conf").content_string.split("\n")[1:3] == \
        ["br_netfilter", "overlay"]
    assert "net.ipv4.ip_forward = 1" in host.file("/etc/sysctl.d/90-aicluster-k3s.conf").content_string


def _ansible_log():
    path = pathlib.Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "ansible.log"
    assert path.is_file(), f"no ansible log at {path} (molecule.yml sets ANSIBLE_LOG_PATH there)"
    return path.read_text(errors="replace")


def _k3s_reports():
    reports = sorted((PROJECT / "results").glob("*/report.json"), key=lambda path: path.stat().st_mtime)
    return [path for path in reports if '"category": "k3s"' in path.read_text()]


def test_the_token_is_in_no_log_and_no_report(host):
    token = host.file(TOKEN).content_string.strip()
    log = _ansible_log()
    # The log holds the runs that handled the token (converge, idempotence, side effect).
    assert "K3s | the token file (0600)" in log
    assert token not in log
    reports = _k3s_reports()
    assert reports, "the side effect wrote no report with k3s checks"
    for path in (reports[-1], reports[-1].parent / "checks.jsonl", reports[-1].parent / "summary.md"):
        assert token not in path.read_text(), path


def test_the_stage_reports_the_config_passed_and_the_live_part_skipped_with_the_reason(host):
    name = name_of(host)
    report = json.loads(_k3s_reports()[-1].read_text())
    checks = {check["name"]: check for check in report["checks"] if check["host"] == name
              and check["category"] == "k3s"}
    for passed in ("k3s_config", "k3s_config_guard", "k3s_files", "k3s_prerequisites"):
        assert checks[passed]["status"] == "passed", checks[passed]
    live = ["k3s_binary", "k3s_service", "k3s_node_ready", "k3s_node_ip", "k3s_flannel", "k3s_pod_to_pod",
            "k3s_pod_dns", "k3s_gpu_runtime"]
    live += ["k3s_api_ready", "k3s_etcd", "k3s_coredns", "k3s_local_path", "k3s_volume_bound",
             "k3s_probe_cleanup"] if is_server(host) else []
    for skipped in live:
        assert checks[skipped]["status"] == "skipped", checks[skipped]
        assert "no k3s binary to install" in checks[skipped]["message"], checks[skipped]
    assert set(checks) == {"k3s_config", "k3s_config_guard", "k3s_files", "k3s_prerequisites", *live}
