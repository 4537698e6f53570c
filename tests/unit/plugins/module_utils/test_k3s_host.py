# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the k3s role does to a host: members, air-gap artifacts, files, the state read, the decision."""

from __future__ import annotations

import hashlib
import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import k3s_host
from ansible_collections.aicluster.lab.plugins.module_utils.k3s_config import build_configs
from ansible_collections.aicluster.lab.plugins.module_utils.k3s_host import K3sHostError
from ansible_collections.aicluster.lab.plugins.module_utils.plan import build_plan

ROOT = pathlib.Path(__file__).resolve().parents[4]
STATE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "k3s" / "state"
TOKEN_FILE = "/etc/rancher/k3s/cluster-token"
MODULES = ["br_netfilter", "overlay"]
SYSCTLS = {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1,
           "net.bridge.bridge-nf-call-ip6tables": 1}
DIRS = ["/etc/rancher/k3s", "/etc/rancher/k3s/config.yaml.d", "/var/lib/rancher/k3s/agent/images"]


def simple_configs():
    profile = yaml.safe_load((ROOT / "profiles" / "simple.yml").read_text())
    plan = build_plan(["node1", "node2"], {"node1": {}, "node2": {}}, profile, "simple")
    return plan, build_configs(plan, ["node1"], ["node2"])


def wanted_for(host="node1", role="server", dropins=None, **more):
    _plan, configs = simple_configs()
    files = k3s_host.host_files(host, role, configs[host], dropins, "[Unit]\nunit of " + role + "\n", MODULES, SYSCTLS)
    wanted = {"role": role, "files": files, "dirs": DIRS, "modules": MODULES, "sysctls": SYSCTLS, "users": [],
              "version": "v1.31.0+k3s1", "artifact_dir": "", "from_release": False, "artifact": None,
              "token_file": TOKEN_FILE}
    wanted.update(more)
    return wanted


def read_output(wanted, binary=None, units=None, token=True, dropins=(), links=None, images=(), machine="x86_64",
                changed=None):
    """What read-state.sh.j2 prints on a host holding ``wanted`` (``changed``: {path: new content})."""
    changed = changed or {}
    lines = ["### machine", machine, "### binary"]
    lines += [binary["sha256"], f"k3s version {binary['version']} (34be6d96)"] if binary else ["missing"]
    lines.append("### files")
    for item in wanted["files"]:
        content = changed.get(item["path"], item["content"])
        if content is None:
            lines.append(f"{item['path']}|missing")
        else:
            digest = hashlib.sha256(content.encode()).hexdigest()
            lines.append(f"{item['path']}|{item['mode'].lstrip('0')}|root:root|{digest}")
    lines += ["### dropins"] + [f"{name}|{first}" for name, first in dropins]
    lines += ["### dirs"] + [f"{path}|present" for path in wanted["dirs"]]
    lines += ["### modules"] + [f"{name}|loaded" for name in wanted["modules"]]
    lines += ["### sysctls"] + [f"{key}|{value}" for key, value in wanted["sysctls"].items()]
    lines += ["### units"]
    for unit in ("k3s.service", "k3s-agent.service"):
        lines.append(f"{unit} {' '.join((units or {}).get(unit, ('none', 'inactive')))}")
    lines += ["### tokens", f"{TOKEN_FILE}|600|root:root|64" if token else f"{TOKEN_FILE}|missing",
              "/var/lib/rancher/k3s/server/token|missing", "### users", "### links"]
    lines += [f"{name}|{(links or {}).get(name, 'missing')}" for name in k3s_host.LINKS]
    lines += ["### images"] + [f"{name}|{digest}" for name, digest in images]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- members


def test_members_from_the_k3s_groups():
    groups = {"k3s_servers": ["ctl-a", "ctl-b", "ctl-c"], "k3s_agents": ["gpu-a"], "lab_nodes": ["x"]}
    assert k3s_host.members(groups) == {"servers": ["ctl-a", "ctl-b", "ctl-c"], "agents": ["gpu-a"],
                                        "source": "groups k3s_servers and k3s_agents"}


def test_members_fall_back_to_the_lab_group_first_host_the_server():
    found = k3s_host.members({"all": ["node1", "node2", "node3"], "lab_nodes": ["node1", "node2", "node3"]})
    assert (found["servers"], found["agents"]) == (["node1"], ["node2", "node3"])
    assert "no group k3s_servers" in found["source"]


def test_members_with_servers_only_and_other_group_names():
    found = k3s_host.members({"ctl": ["a", "b", "c"]}, "ctl", "workers", "lab_nodes")
    assert (found["servers"], found["agents"]) == (["a", "b", "c"], [])


@pytest.mark.parametrize("groups, words", [
    ({"k3s_agents": ["gpu-a"], "lab_nodes": ["gpu-a"]}, "group k3s_agents (gpu-a) has no servers to join"),
    ({"k3s_servers": ["a"], "k3s_agents": ["a", "b"]}, "a in both k3s_servers and k3s_agents"),
    ({"other": ["a"]}, "no group k3s_servers, and no group lab_nodes"),
    (["a"], "groups must be Ansible's groups mapping"),
])
def test_members_refused(groups, words):
    with pytest.raises(K3sHostError, match=words.replace("(", r"\(").replace(")", r"\)")):
        k3s_host.members(groups)


# -------------------------------------------------------------------------------------- artifacts


def release_dir(tmp_path, arch="amd64", images=(".tar.zst",), binary=b"\x7fELF k3s binary", sums_extra=""):
    names = k3s_host.release_names(arch)
    files = {names["binary"]: binary, "install.sh": b"#!/bin/sh\n"}
    for suffix in images:
        files[f"k3s-airgap-images-{arch}{suffix}"] = b"images " + suffix.encode()
    lines = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        if name != "install.sh":  # the release's sums file does not list install.sh
            lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (tmp_path / names["sums"]).write_text("\n".join(lines) + "\n" + sums_extra)
    return files


def test_artifacts_verified_against_the_release_sums(tmp_path):
    files = release_dir(tmp_path, images=(".tar.gz", ".tar.zst"))
    found = k3s_host.artifacts(str(tmp_path))
    assert list(found) == ["amd64"]
    assert found["amd64"]["binary"] == {"name": "k3s", "path": str(tmp_path / "k3s"),
                                        "sha256": hashlib.sha256(files["k3s"]).hexdigest()}
    # The most compact images tarball present is used.
    assert found["amd64"]["images"]["name"] == "k3s-airgap-images-amd64.tar.zst"
    assert k3s_host.artifacts(str(tmp_path), ["amd64"], images=False)["amd64"]["images"] is None


def test_artifacts_of_arm64_name_their_binary_as_k3s_does(tmp_path):
    release_dir(tmp_path, arch="arm64", images=(".tar.gz",))
    found = k3s_host.artifacts(str(tmp_path))
    assert found["arm64"]["binary"]["name"] == "k3s-arm64"
    assert found["arm64"]["images"]["name"] == "k3s-airgap-images-arm64.tar.gz"


def test_a_damaged_binary_is_refused_naming_both_sums(tmp_path):
    release_dir(tmp_path)
    (tmp_path / "k3s").write_bytes(b"truncated")
    with pytest.raises(K3sHostError) as caught:
        k3s_host.artifacts(str(tmp_path))
    text = str(caught.value)
    assert f"{tmp_path}/k3s: sha256 {hashlib.sha256(b'truncated').hexdigest()} is not " in text
    assert "from sha256sum-amd64.txt; the file is damaged or from another release - nothing is installed" in text


def test_a_damaged_images_tarball_is_refused(tmp_path):
    release_dir(tmp_path)
    (tmp_path / "k3s-airgap-images-amd64.tar.zst").write_bytes(b"half")
    with pytest.raises(K3sHostError, match="k3s-airgap-images-amd64.tar.zst: sha256 .* is not"):
        k3s_host.artifacts(str(tmp_path))


@pytest.mark.parametrize("change, words", [
    ("no sums", "has no sha256sum-<arch>.txt"),
    ("no binary", "has no k3s"),
    ("binary not listed", "sha256sum-amd64.txt does not list k3s; it cannot be verified"),
    ("bad line", "line 3: 'not a checksum line' is not '<sha256>  <file>'"),
    ("not a directory", "is not a directory on the controller"),
])
def test_artifacts_refused(tmp_path, change, words):
    release_dir(tmp_path)
    directory = str(tmp_path)
    if change == "no sums":
        (tmp_path / "sha256sum-amd64.txt").unlink()
    elif change == "no binary":
        (tmp_path / "k3s").unlink()
    elif change == "binary not listed":
        sums = tmp_path / "sha256sum-amd64.txt"
        sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if not line.endswith("  k3s")))
    elif change == "bad line":
        with (tmp_path / "sha256sum-amd64.txt").open("a") as handle:
            handle.write("not a checksum line\n")
    else:
        directory = str(tmp_path / "missing")
    with pytest.raises(K3sHostError, match=words.replace("(", r"\(").replace(")", r"\)")):
        k3s_host.artifacts(directory)


def test_a_sums_file_with_binary_marks_is_read():
    digest = "a" * 64
    assert k3s_host.parse_sums(f"{digest} *k3s\n\n{digest}  ./k3s-airgap-images-amd64.tar\n") == {
        "k3s": digest, "k3s-airgap-images-amd64.tar": digest}


def test_arches_as_k3s_names_them():
    assert [k3s_host.arch_of(machine) for machine in ("x86_64", "aarch64", "armv7l")] == ["amd64", "arm64", "arm"]
    with pytest.raises(K3sHostError, match="machine 's390x' has no k3s release"):
        k3s_host.arch_of("s390x")


# ------------------------------------------------------------------------------------------ files


def test_host_files_config_0600_then_unit_and_kernel_settings():
    wanted = wanted_for()
    paths = [(item["path"], item["mode"], item["restart"]) for item in wanted["files"]]
    assert paths == [("/etc/rancher/k3s/config.yaml", "0600", True), ("/etc/systemd/system/k3s.service", "0644", True),
                     ("/etc/modules-load.d/aicluster-k3s.conf", "0644", False),
                     ("/etc/sysctl.d/90-aicluster-k3s.conf", "0644", False)]
    config = wanted["files"][0]["content"]
    assert config.startswith(k3s_host.MARK + " for node1 (server)")
    assert yaml.safe_load(config) == simple_configs()[1]["node1"]
    assert wanted["files"][2]["content"].splitlines()[1:] == MODULES
    assert "net.bridge.bridge-nf-call-iptables = 1" in wanted["files"][3]["content"]


def test_dropins_are_checked_like_config_yaml_and_written_0600():
    wanted = wanted_for("node2", "agent", {"50-kubelet": {"kubelet-arg+": ["max-pods=50"], "node-name": "n2"}})
    dropin = next(item for item in wanted["files"] if item["path"].endswith("50-kubelet.yaml"))
    assert dropin["mode"] == "0600" and dropin["restart"]
    assert yaml.safe_load(dropin["content"]) == {"kubelet-arg+": ["max-pods=50"], "node-name": "n2"}


@pytest.mark.parametrize("dropins, words", [
    ({"x": {"token": "s3cret"}}, "k3s_config_dropins.x.token: a secret never goes into a config file"),
    ({"x": {"node-ip": "10.0.0.1"}}, "k3s_config_dropins.x.node-ip: '10.0.0.1': set from the plan's cluster address"),
    ({"x": {"flannel-backend": "host-gw"}}, "every server must share it; set it in k3s_cluster_config"),
    ({"x": {"tls-san": ["a"]}}, "tls-san: ['a']: a k3s server-only flag; a k3s agent would skip it (in k3s_config_dropins.x)"),
    ({"x": {"kubelet-args": ["a=b"]}}, "kubelet-args: ['a=b']: not a flag of k3s v1.31.0+k3s1"),
    ({"x": {"debug": "yes"}}, "debug: 'yes' is not true or false"),
    ({"x.yaml": {"debug": True}}, "a drop-in's name is letters"),
    ({"x": {}}, "{} must be a mapping of k3s flags to values"),
    (["x"], "must be a mapping of drop-in name to flags"),
])
def test_dropins_refused_naming_host_file_and_key(dropins, words):
    with pytest.raises(K3sHostError) as caught:
        wanted_for("node2", "agent", dropins)
    assert str(caught.value).startswith("k3s config, host node2 (agent): ")
    assert words in str(caught.value)


# ------------------------------------------------------------------------------------ state, decide


def test_a_fresh_node_gets_everything_and_no_binary_without_a_source():
    state = k3s_host.host_state((STATE / "fresh-node.txt").read_text())
    assert state["binary"] is None and state["sysctls"]["net.ipv4.ip_forward"] == "0"
    decision = k3s_host.decide(state, wanted_for())
    assert [item["path"] for item in decision["files"]] == [item["path"] for item in wanted_for()["files"]]
    assert all(item["why"] == "missing" for item in decision["files"])
    assert decision["dirs"] == DIRS and decision["modules"] == MODULES and decision["sysctls"]
    assert decision["binary"] == {"action": "none", "reason": (
        "no k3s binary to install: k3s_artifact_dir is empty (AICLUSTER_K3S_ARTIFACTS is unset) and "
        "k3s_install_from_release is false (the lab's nodes have no internet)")}
    assert not decision["live"] and decision["live_reason"] == decision["binary"]["reason"]
    assert decision["links"] == [] and decision["remove"] == []
    assert "enable and start k3s.service" not in decision["pending"]
    assert decision["pending"][:2] == ["write /etc/rancher/k3s/config.yaml (missing)",
                                       "write /etc/systemd/system/k3s.service (missing)"]
    assert "load module br_netfilter" in decision["pending"] and "apply the sysctl settings" in decision["pending"]


def test_a_converged_offline_node_changes_nothing():
    wanted = wanted_for()
    decision = k3s_host.decide(k3s_host.host_state(read_output(wanted)), wanted)
    assert decision["pending"] == [] and decision["restart"] == [] and not decision["sysctls"]


def test_a_changed_config_restarts_the_running_service_and_says_why():
    wanted = wanted_for()
    binary = {"sha256": "b" * 64, "version": "v1.31.0+k3s1"}
    text = read_output(wanted, binary=binary, units={"k3s.service": ("enabled", "active")},
                       changed={"/etc/rancher/k3s/config.yaml": "node-ip: 10.0.0.9\n"})
    decision = k3s_host.decide(k3s_host.host_state(text), dict(wanted, from_release=True))
    assert decision["binary"] == {"action": "keep", "reason": "version v1.31.0+k3s1"}
    assert [item["path"] for item in decision["files"]] == ["/etc/rancher/k3s/config.yaml"]
    assert decision["restart"] == ["/etc/rancher/k3s/config.yaml (content)"]
    assert decision["pending"][-1] == "restart k3s.service (/etc/rancher/k3s/config.yaml (content))"


def test_a_changed_sysctl_file_does_not_restart_k3s():
    wanted = wanted_for()
    text = read_output(wanted, binary={"sha256": "b" * 64, "version": "v1.31.0+k3s1"},
                       units={"k3s.service": ("enabled", "active")},
                       changed={"/etc/sysctl.d/90-aicluster-k3s.conf": "old\n"})
    decision = k3s_host.decide(k3s_host.host_state(text), dict(wanted, from_release=True))
    assert [item["path"] for item in decision["files"]] == ["/etc/sysctl.d/90-aicluster-k3s.conf"]
    assert decision["restart"] == [] and not any("restart" in line for line in decision["pending"])


def test_a_wrong_mode_on_the_config_is_rewritten():
    wanted = wanted_for()
    text = read_output(wanted).replace("/etc/rancher/k3s/config.yaml|600|", "/etc/rancher/k3s/config.yaml|644|")
    decision = k3s_host.decide(k3s_host.host_state(text), wanted)
    assert [(item["path"], item["why"]) for item in decision["files"]] == [("/etc/rancher/k3s/config.yaml", "mode 644")]


def test_the_release_downloads_a_binary_of_another_version_and_restarts():
    wanted = dict(wanted_for(), from_release=True, version="v1.31.1+k3s1")
    text = read_output(wanted, binary={"sha256": "b" * 64, "version": "v1.31.0+k3s1"},
                       units={"k3s.service": ("enabled", "active")})
    decision = k3s_host.decide(k3s_host.host_state(text), wanted)
    assert decision["binary"] == {"action": "download", "reason": "version v1.31.0+k3s1 is not v1.31.1+k3s1"}
    assert decision["release"] == {"binary": "k3s", "sums": "sha256sum-amd64.txt", "images": [
        "k3s-airgap-images-amd64.tar.zst", "k3s-airgap-images-amd64.tar.gz", "k3s-airgap-images-amd64.tar"]}
    assert decision["restart"] == ["the k3s binary (version v1.31.0+k3s1 is not v1.31.1+k3s1)"]


def test_an_artifact_binary_and_images_copied_when_their_sums_differ():
    artifact = {"binary": {"name": "k3s", "path": "/srv/k3s/k3s", "sha256": "c" * 64},
                "images": {"name": "k3s-airgap-images-amd64.tar.zst", "path": "/srv/k3s/i.tar.zst", "sha256": "d" * 64}}
    wanted = dict(wanted_for(), artifact_dir="/srv/k3s", artifact=artifact)
    fresh = k3s_host.decide(k3s_host.host_state(read_output(wanted)), wanted)
    assert fresh["binary"]["action"] == "copy" and fresh["images"]["action"] == "copy"
    assert fresh["images"]["dest"] == "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst"
    assert fresh["live"] and fresh["links"] == ["kubectl", "crictl", "ctr"]
    assert "enable and start k3s.service" in fresh["pending"]
    done = read_output(wanted, binary={"sha256": "c" * 64, "version": "v1.31.0+k3s1"},
                       units={"k3s.service": ("enabled", "active")},
                       links={"kubectl": "/usr/bin/kubectl-distro", "crictl": "file", "ctr": "/usr/local/bin/k3s"},
                       images=[("k3s-airgap-images-amd64.tar.zst", "d" * 64)])
    again = k3s_host.decide(k3s_host.host_state(done), wanted)
    # A kubectl that is not k3s's stays: only a missing name is linked.
    assert again["pending"] == [] and again["links"] == []


def test_an_artifact_dir_without_the_hosts_arch_is_refused():
    wanted = dict(wanted_for(), artifact_dir="/srv/k3s", artifact=None)
    with pytest.raises(K3sHostError, match=r"no release files for this host's machine \(aarch64, k3s arch arm64\)"):
        k3s_host.decide(k3s_host.host_state(read_output(wanted, machine="aarch64")), wanted)


def test_stale_dropins_of_the_role_go_others_stay():
    wanted = wanted_for(dropins={"keep": {"debug": True}})
    text = read_output(wanted, dropins=[("keep.yaml", k3s_host.MARK + " for node1 (server)"),
                                        ("old.yaml", k3s_host.MARK + " for node1 (server)"),
                                        ("50-aicluster-gpu.yaml", "# Written by the aicluster.lab gpu role")])
    decision = k3s_host.decide(k3s_host.host_state(text), wanted)
    assert decision["remove"] == ["/etc/rancher/k3s/config.yaml.d/old.yaml"]
    assert decision["restart"] == ["/etc/rancher/k3s/config.yaml.d/old.yaml (no longer wanted)"]


def test_a_node_that_was_an_agent_loses_the_agent_unit():
    wanted = wanted_for()
    text = read_output(wanted).replace("### dropins", "/etc/systemd/system/k3s-agent.service|644|root:root|" + "e" * 64
                                       + "\n### dropins")
    decision = k3s_host.decide(k3s_host.host_state(text), wanted)
    assert decision["other_unit"] == "k3s-agent.service"
    assert decision["remove"] == ["/etc/systemd/system/k3s-agent.service"]


def test_a_read_cut_short_is_refused():
    with pytest.raises(K3sHostError, match="has no '### units' section"):
        k3s_host.host_state("### machine\nx86_64\n### binary\nmissing\n### files\n### dirs\n### modules\n### sysctls\n")


@pytest.mark.parametrize("given, first, files, expected", [
    (True, True, {}, {"from": "variable", "path": None}),
    (False, False, {}, {"from": "first server", "path": None}),
    (False, True, {TOKEN_FILE: 64}, {"from": "file", "path": TOKEN_FILE}),
    (False, True, {k3s_host.K3S_SERVER_TOKEN: 108}, {"from": "file", "path": k3s_host.K3S_SERVER_TOKEN}),
    (False, True, {TOKEN_FILE: 0}, {"from": "generate", "path": TOKEN_FILE}),
    (False, True, {}, {"from": "generate", "path": TOKEN_FILE}),
])
def test_where_the_token_comes_from(given, first, files, expected):
    state = {"token_files": {path: {"mode": "600", "owner": "root:root", "size": size} for path, size in files.items()}}
    assert k3s_host.token_source(given, state, TOKEN_FILE, first) == expected


# --------------------------------------------------------------------------------------- firewall


def test_firewall_rules_per_role_and_backend():
    _plan, configs = simple_configs()
    first = configs["node1"]
    assert k3s_host.firewall_rules("server", first) == {
        "ports": ["6443/tcp", "2379-2380/tcp", "10250/tcp", "8472/udp"], "sources": ["10.42.0.0/16", "10.43.0.0/16"]}
    assert k3s_host.firewall_rules("agent", first)["ports"] == ["10250/tcp", "8472/udp"]
    wireguard = dict(first, **{"flannel-backend": "wireguard-native", "datastore-endpoint": "postgres://db"})
    assert k3s_host.firewall_rules("server", wireguard)["ports"] == ["6443/tcp", "10250/tcp", "51820/udp", "51821/udp"]
    assert k3s_host.firewall_rules("agent", dict(first, **{"flannel-backend": "host-gw"}))["ports"] == ["10250/tcp"]


def with_firewall(text, lines):
    return text.replace("### images", "### firewall\n" + "\n".join(lines) + "\n### images")


def test_firewalld_gets_only_the_missing_ports_and_sources():
    _plan, configs = simple_configs()
    wanted = wanted_for(firewall=k3s_host.firewall_rules("server", configs["node1"]))
    text = with_firewall(read_output(wanted), ["kind firewalld", "ports 22/tcp 6443/tcp", "sources 10.43.0.0/16"])
    decision = k3s_host.decide(k3s_host.host_state(text), wanted)
    assert decision["firewall"] == {"kind": "firewalld", "ports": ["2379-2380/tcp", "10250/tcp", "8472/udp"],
                                    "sources": ["10.42.0.0/16"]}
    assert "open 2379-2380/tcp in firewalld" in decision["pending"] and "trust 10.42.0.0/16 in firewalld" in \
        decision["pending"]


def test_ufw_rules_read_from_its_own_words():
    _plan, configs = simple_configs()
    wanted = wanted_for("node2", "agent", firewall=k3s_host.firewall_rules("agent", configs["node1"]))
    text = with_firewall(read_output(wanted), ["kind ufw", "rule allow 22/tcp", "rule allow 10250/tcp",
                                               "rule allow 8472/udp", "rule allow from 10.42.0.0/16",
                                               "rule allow from 10.43.0.0/16"])
    decision = k3s_host.decide(k3s_host.host_state(text), wanted)
    assert decision["firewall"] == {"kind": "ufw", "ports": [], "sources": []} and decision["pending"] == []


def test_no_host_firewall_is_left_alone():
    _plan, configs = simple_configs()
    wanted = wanted_for(firewall=k3s_host.firewall_rules("server", configs["node1"]))
    decision = k3s_host.decide(k3s_host.host_state(with_firewall(read_output(wanted), ["kind none"])), wanted)
    assert decision["firewall"] == {"kind": "none", "ports": [], "sources": []}
