# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo role's reading and deciding: the host's state, the backend from gpu_facts, the
artifact's manifest, identities across hosts (cloned images), the firewall from the plan,
and what differs."""

import copy
import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import exo, exo_firewall

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
EXO = FIXTURES / "exo"
REF = "b5375f8cee4368d09e1ce96a56b9f81fb0bc81aa"
NODE2_LL = "fe80::b407:53ff:fe3b:c693"
SPEC = {"interface": "bond0.200", "discovery_port": 52413, "zenoh_port": 52414, "api_port": 52415,
        "peers_v6": [NODE2_LL], "peers_v4": ["192.168.200.12"], "api_sources": ["192.168.200.0/24"]}
PACKAGES = {"Debian": ["nftables", "iproute2"], "RedHat": ["nftables", "iproute"]}


def lab_read(host="node1"):
    return (EXO / f"lab-read-state-{host}.txt").read_text()


def test_the_labs_read_after_converge_is_read_whole():
    state = exo.host_state(lab_read())
    assert state["os_release"]["ID"] == "debian" and state["arch"] == "x86_64"
    assert exo.MACHINE_ID.match(state["machine_id"])
    assert state["identity"]["host"] == "node1" and exo.UUID.match(state["identity"]["id"])
    assert state["user"] == {"name": "exo", "uid": state["user"]["uid"], "gid": state["user"]["gid"],
                             "home": "/var/lib/exo", "shell": "/usr/sbin/nologin"}
    assert state["paths"]["/var/lib/exo"] == {"kind": "directory", "mode": "0750", "owner": "exo", "group": "exo"}
    assert state["paths"]["/etc/aicluster-lab/exo/node-identity"]["kind"] == "regular file"
    assert set(state["files"]) == {"/etc/systemd/system/exo.service", "/etc/systemd/system/aicluster-exo-firewall.service",
                                   "/etc/aicluster-lab/exo/firewall.nft"}
    assert state["units"] == {"exo.service": {"enabled": "disabled", "active": "inactive"},
                              "aicluster-exo-firewall.service": {"enabled": "enabled", "active": "active"}}
    # dpkg knows RHEL's name, iproute, as a transitional package that is not installed.
    assert state["packages"] == {"nftables": True, "iproute2": True, "iproute": False}
    assert state["tools"]["nft"] == "/usr/sbin/nft"
    assert state["unit_show"]["ProtectSystem"] == "strict"
    assert exo_firewall.live(state["nft"])["chains"]["input"]["hook"] == "input"
    assert state["artifact"] is None and state["node_zid"] is None


def test_the_labs_read_before_the_role():
    state = exo.host_state((EXO / "lab-read-state-node2-before.txt").read_text())
    assert state["user"] is None and state["identity"] == {}
    assert state["paths"]["/var/lib/exo"] is None
    assert state["files"] == {} and state["packages"] == {"iproute2": True, "iproute": False}
    assert state["tools"]["nft"] is None and exo_firewall.live(state["nft"]) is None
    assert state["units"]["exo.service"] == {"enabled": "", "active": "inactive"}


def test_a_state_that_is_not_read_state_output_is_refused():
    with pytest.raises(exo.ExoInputError, match="lacks the section"):
        exo.host_state("Permission denied (publickey).")


# ---------------------------------------------------------------- backend

def gpu(stack, reason, cuda=None):
    tool = {"tool": "nvidia-smi", "cuda_version": cuda} if cuda else None
    gpus = [{"vendor_id": "0x10de", "tool": tool}] if stack == "cuda" else []
    return {"recommended_stack": stack, "stack_reason": reason, "gpus": gpus}


@pytest.mark.parametrize("facts, extra, backend, devices, says", [
    (gpu("cpu", "no GPU: CPU fallback"), "mlx-cpu", "MlxCpu", False, "no GPU: CPU fallback: CPU (mlx-cpu)"),
    (gpu("cuda", "NVIDIA 10de:1eb8 at 0000:00:05.0: cuda", "12.2"), "mlx-cuda12", "MlxCuda", True, "serves CUDA 12"),
    (gpu("cuda", "NVIDIA 10de:2330 at 0000:00:05.0: cuda", "13.0"), "mlx-cuda13", "MlxCuda", True, "serves CUDA 13"),
    (gpu("cuda", "NVIDIA (no driver bound yet): cuda"), "mlx-cuda12", "MlxCuda", True, "not known yet"),
    (gpu("cuda", "NVIDIA: cuda", "11.7"), "mlx-cpu", "MlxCpu", False, "CUDA 11 only"),
    (gpu("rocm", "AMD 1002:740f: rocm"), "mlx-cpu", "MlxCpu", False, "no rocm backend on Linux"),
    (gpu("oneapi", "Intel 8086:56c0: oneapi"), "mlx-cpu", "MlxCpu", False, "no oneapi backend"),
])
def test_the_backend_follows_the_recommended_stack(facts, extra, backend, devices, says):
    choice = exo.backend(facts)
    assert (choice["extra"], choice["backend"], choice["devices"]) == (extra, backend, devices)
    assert says in choice["reason"]


def test_the_backend_by_name_and_a_name_exo_does_not_offer():
    assert exo.backend({}, "mlx-cuda13")["reason"] == "mlx-cuda13, set by exo_backend"
    with pytest.raises(exo.ExoInputError, match="'rocm' is not one of auto, mlx-cpu"):
        exo.backend({}, "rocm")
    with pytest.raises(exo.ExoInputError, match="what aicluster.lab.gpu_facts returned"):
        exo.backend({"gpus": []})


def test_the_backend_on_the_gpu_fixtures_of_gpu_facts():
    from ansible_collections.aicluster.lab.plugins.module_utils import gpu
    nvidia = (FIXTURES / "gpu" / "nvidia-smi").glob("*.xml")
    for path in sorted(nvidia)[:1]:
        parsed = gpu.parse_tool("nvidia-smi", path.read_text())[0]
        address, figures = next(iter(parsed.items()))
        facts = {"recommended_stack": "cuda", "stack_reason": "NVIDIA: cuda",
                 "gpus": [{"vendor_id": "0x10de", "address": address, "tool": figures}]}
        major = int(figures["cuda_version"].split(".")[0])
        assert exo.backend(facts)["extra"] == ("mlx-cuda13" if major >= 13 else "mlx-cuda12" if major == 12 else "mlx-cpu")


# ---------------------------------------------------------------- artifact

MANIFEST = {"ref": REF, "extra": "mlx-cpu", "arch": "x86_64", "prefix": "/opt/exo", "archive": "exo.tar.gz",
            "sha256": "a" * 64, "entrypoint": "exo/.venv/bin/exo", "python": "3.13.5"}


def test_a_manifest_that_fits():
    assert exo.manifest_problems(MANIFEST, REF, "mlx-cpu", "x86_64", "/opt/exo/") == []


@pytest.mark.parametrize("change, problem", [
    ({"ref": "0" * 40}, "built from 0000000000000000000000000000000000000000, the role pins " + REF),
    ({"extra": "mlx-cuda12"}, "it holds the mlx-cuda12 extra, this host needs mlx-cpu"),
    ({"arch": "aarch64"}, "it is built for aarch64, the host is x86_64"),
    ({"prefix": "/usr/local/exo"}, "must be unpacked at /usr/local/exo"),
    ({"sha256": "abc"}, "is not a SHA-256 digest"),
    ({"python": "3.12.3"}, "EXO needs 3.13"),
    ({"entrypoint": "../bin/exo"}, "must be a path inside the prefix"),
    ({"archive": ""}, "MANIFEST.json lacks archive"),
    ({"archive": "../exo.tar.gz"}, "must be a file name in the artifact's directory"),
])
def test_a_manifest_that_does_not_fit(change, problem):
    problems = exo.manifest_problems(dict(MANIFEST, **change), REF, "mlx-cpu", "x86_64", "/opt/exo")
    assert any(problem in p for p in problems), problems
    assert exo.manifest_problems("nope", REF, "mlx-cpu", "x86_64", "/opt/exo") == ["MANIFEST.json is not a mapping: 'nope'"]


def test_without_a_host_only_the_pin_and_the_manifest_form_are_checked():
    # The air-gap bundle stages an artifact for hosts it does not read.
    other_host = dict(MANIFEST, extra="mlx-cuda13", arch="aarch64", prefix="/srv/exo")
    assert exo.manifest_problems(other_host, REF) == []
    assert exo.manifest_problems(dict(other_host, ref="0" * 40), REF) == [
        f"it was built from {'0' * 40}, the role pins {REF} (exo_ref)"]
    assert exo.manifest_problems(dict(other_host, sha256="abc"), REF) == ["sha256 'abc' is not a SHA-256 digest"]


# ---------------------------------------------------------------- identities

MID1, MID2, MID3 = "1" * 32, "2" * 32, "3" * 32
ID1, ID2 = "0f6a5b3e-1d2c-4b5a-9e8f-7a6b5c4d3e2f", "5e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c1b"


def st(machine, identity=None):
    return {"machine_id": machine, "identity": identity or {}}


def test_identities_kept_made_and_replaced():
    states = {
        "node1": st(MID1, {"id": ID1, "host": "node1", "machine_id": MID1}),
        "node2": st(MID2, {"id": ID1, "host": "node1", "machine_id": MID1}),   # node1's image, cloned
        "node3": st(MID3),
    }
    result = exo.identities(states, ["node1", "node2", "node3"])
    assert result["node1"] == {"action": "keep", "reason": f"identity {ID1}, made for node1", "id": ID1}
    assert result["node2"]["action"] == "generate" and "made for 'node1' (a cloned image)" in result["node2"]["reason"]
    assert result["node3"] == {"action": "generate", "reason": "no identity yet", "id": None}


def test_an_identity_file_copied_with_a_renamed_host_is_replaced():
    states = {"node1": st(MID1, {"id": ID1, "host": "node1", "machine_id": MID3})}
    assert "made on machine" in exo.identities(states, ["node1"])["node1"]["reason"]


def test_two_hosts_keeping_one_id_the_second_is_replaced():
    states = {"node1": st(MID1, {"id": ID2, "host": "node1", "machine_id": MID1}),
              "node2": st(MID2, {"id": ID2, "host": "node2", "machine_id": MID2})}
    result = exo.identities(states, ["node1", "node2"])
    assert result["node1"]["action"] == "keep"
    assert result["node2"] == {"action": "generate", "reason": f"node1 holds the same identity {ID2}", "id": None}


def test_a_shared_machine_id_is_refused_naming_the_hosts():
    states = {"node1": st(MID1), "node2": st(MID1), "node3": st(MID3)}
    with pytest.raises(exo.ExoInputError, match=f"node1, node2 have {MID1}.*systemd-machine-id-setup"):
        exo.identities(states, ["node1", "node2", "node3"])
    with pytest.raises(exo.ExoInputError, match="not a machine id"):
        exo.identities({"node1": st("")}, ["node1"])


def test_a_node_zid_shared_by_two_hosts():
    states = {"node1": {"node_zid": "ab" * 32}, "node2": {"node_zid": "ab" * 32}, "node3": {"node_zid": None}}
    assert exo.shared_node_zids(states, ["node1", "node2", "node3"]) == ["node1", "node2"]


def test_identity_text():
    assert exo.identity_text(ID1, "node1", MID1) == f"id={ID1}\nhost=node1\nmachine_id={MID1}\n"


# ---------------------------------------------------------------- the firewall from the plan

def plan(*hosts):
    entries = {}
    for index, host in enumerate(hosts, start=11):
        entries[host] = {"cluster": {"network": "cluster", "interface": "bond0.200", "address": f"192.168.200.{index}",
                                     "netdev": "bond0", "mtu": 1500},
                         "network": {"networks": {"cluster": {"subnet": "192.168.200.0/24", "prefix": 24}}}}
    return entries


def addrs(ll):
    return {"addrs": [{"ifname": "bond0.200", "addr_info": [{"family": "inet6", "local": ll, "prefixlen": 64}]}]}


def test_the_firewall_admits_the_peers_read_in_this_run():
    states = {"node1": addrs("fe80::1"), "node2": addrs(NODE2_LL), "node3": addrs("fe80::3")}
    spec = exo.firewall_spec(plan("node1", "node2", "node3"), "node1", states, ["node1", "node2", "node3"],
                             {"discovery": "52413", "zenoh": 52414, "api": 52415})
    assert spec == {"table": "aicluster_exo", "interface": "bond0.200", "discovery_port": 52413, "zenoh_port": 52414,
                    "api_port": 52415, "peers_v6": [NODE2_LL, "fe80::3"], "peers_v4": ["192.168.200.12", "192.168.200.13"],
                    "api_sources": ["192.168.200.0/24"], "note": ""}


def test_a_peer_not_read_opens_the_link_local_prefix_and_says_so():
    spec = exo.firewall_spec(plan("node1", "node2"), "node1", {"node1": addrs("fe80::1")}, ["node1"],
                             {"discovery": 52413, "zenoh": 52414, "api": 52415})
    assert spec["peers_v6"] == ["fe80::/10"] and spec["peers_v4"] == ["192.168.200.12"]
    assert spec["note"].startswith("link-local address of node2 not read in this run")


def test_no_cluster_network_is_refused():
    with pytest.raises(exo.ExoInputError, match="no cluster network in the plan"):
        exo.firewall_spec({"node1": {"cluster": None}}, "node1", {}, ["node1"], {"discovery": 1, "zenoh": 2, "api": 3})


# ---------------------------------------------------------------- what differs

def wanted_for(state, **change):
    """What the role wants, with the files exactly as they are on the lab node (their digests match)."""
    files = [{"path": path, "content": "", "owner": "root", "group": "root", "mode": "0644",
              "unit": path.endswith(".service")} for path in sorted(state["files"])]
    wanted = {"user": "exo", "group": "exo", "home": "/var/lib/exo", "root_dirs": ["/etc/aicluster-lab/exo"],
              "service_dirs": ["/var/lib/exo", "/var/lib/exo/models"], "files": files, "packages_by_family": PACKAGES,
              "firewall": exo_firewall.live(state["nft"]) and SPEC, "firewall_unit": "aicluster-exo-firewall.service",
              "service_unit": "exo.service", "artifact": None, "identity": {"action": "keep"}}
    wanted.update(change)
    return wanted


def converged(state):
    """The lab state with the files' digests set to those of the wanted contents (empty here)."""
    state = copy.deepcopy(state)
    state["files"] = {path: exo.sha256("") for path in state["files"]}
    return state


def test_a_converged_host_needs_nothing():
    state = converged(exo.host_state(lab_read()))
    firewall = _lab_spec(state)
    decision = exo.decision(state, wanted_for(state, firewall=firewall))
    assert decision["changes"] is False, decision
    assert decision["service"] == {"runnable": False, "enable": False, "start": False, "restart": False}


def _lab_spec(state):
    """The spec that the lab's loaded table was written from (read back from it)."""
    have = exo_firewall.live(state["nft"])
    return dict(SPEC, peers_v6=have["sets"]["peers_v6"]["elements"], peers_v4=have["sets"]["peers_v4"]["elements"])


def test_a_fresh_host_needs_everything():
    state = exo.host_state((EXO / "lab-read-state-node2-before.txt").read_text())
    decision = exo.decision(state, wanted_for(state, firewall=SPEC, files=[
        {"path": "/etc/systemd/system/exo.service", "content": "x", "owner": "root", "group": "root", "mode": "0644",
         "unit": True}], identity={"action": "generate"}))
    assert decision["family"] == "Debian" and decision["missing_packages"] == ["nftables"]
    assert decision["user"] == ["user exo does not exist"]
    assert [d["path"] for d in decision["dirs"]] == ["/etc/aicluster-lab/exo", "/var/lib/exo", "/var/lib/exo/models"]
    assert decision["files"] == ["/etc/systemd/system/exo.service"] and decision["daemon_reload"] is True
    assert decision["firewall"] == ["table inet aicluster_exo is not loaded"]
    assert decision["firewall_unit"] == {"enable": True, "start": True}
    assert decision["identity"] == "generate" and decision["changes"] is True


def test_a_mode_changed_by_hand_and_an_artifact_given():
    state = converged(exo.host_state(lab_read()))
    state["paths"]["/var/lib/exo/models"]["mode"] = "0777"
    artifact = dict(MANIFEST)
    decision = exo.decision(state, wanted_for(state, firewall=_lab_spec(state), artifact=artifact))
    assert [(d["path"], d["mode"], d["now"]["mode"]) for d in decision["dirs"]] == [("/var/lib/exo/models", "0750", "0777")]
    assert decision["install"] is True
    assert decision["service"] == {"runnable": True, "enable": True, "start": True, "restart": False}


def test_an_installed_artifact_keeps_the_service_without_the_artifact_dir():
    state = converged(exo.host_state(lab_read()))
    state["artifact"] = dict(MANIFEST)
    state["units"]["exo.service"] = {"enabled": "enabled", "active": "active"}
    decision = exo.decision(state, wanted_for(state, firewall=_lab_spec(state)))
    assert decision["install"] is False and decision["changes"] is False
    assert decision["service"] == {"runnable": True, "enable": False, "start": False, "restart": False}
    newer = dict(MANIFEST, sha256="b" * 64)
    decision = exo.decision(state, wanted_for(state, firewall=_lab_spec(state), artifact=newer))
    assert decision["install"] is True and decision["service"]["restart"] is True


def test_an_unknown_distribution_is_refused():
    state = converged(exo.host_state(lab_read()))
    state["os_release"] = {"ID": "alpine"}
    with pytest.raises(exo.ExoInputError, match="'alpine' is not a distribution"):
        exo.decision(state, wanted_for(state, firewall=SPEC))
