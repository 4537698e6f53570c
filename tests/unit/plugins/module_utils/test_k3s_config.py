# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each host's k3s config.yaml from the plan: the shipped profiles, a physical inventory, each refusal."""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import k3s_flags
from ansible_collections.aicluster.lab.plugins.module_utils.k3s_config import K3sConfigError, build_configs
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import NetworkModelError
from ansible_collections.aicluster.lab.plugins.module_utils.plan import HOST_KEYS, build_plan

ROOT = pathlib.Path(__file__).resolve().parents[4]
PROFILES = ROOT / "profiles"
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "k3s"
NODES = ["node1", "node2", "node3"]
TOKEN_FILE = "/etc/rancher/k3s/cluster-token"


def shipped(name):
    return yaml.safe_load((PROFILES / f"{name}.yml").read_text())


def local_host_vars():
    """The shipped VM lab inventory's variables of each node, as the plan reads them."""
    inventory = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())
    hosts = inventory["all"]["children"]["lab_nodes"]["hosts"]
    return {host: {key: (variables or {}).get(key) for key in HOST_KEYS} for host, variables in hosts.items()}


def planned(name, hosts=None):
    # The shipped lab has two nodes; the profiles list three, which k3s needs for an odd server count.
    hosts = hosts or NODES
    host_vars = local_host_vars()
    return build_plan(hosts, {host: host_vars.get(host, {}) for host in hosts}, shipped(name), name)


def error_of(*args, **kwargs):
    with pytest.raises(K3sConfigError) as caught:
        build_configs(*args, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("profile, interface, addresses", [
    ("simple", "eth1", ["192.168.1.11", "192.168.1.12", "192.168.1.13"]),
    ("vlans", "eth1.200", ["192.168.200.11", "192.168.200.12", "192.168.200.13"]),
    ("bonding-vlans", "bond0.200", ["192.168.200.11", "192.168.200.12", "192.168.200.13"]),
    ("dhcp-simple", "eth1", ["192.168.220.11", "192.168.220.12", "192.168.220.13"]),
])
def test_each_shipped_profile_one_server_two_agents(profile, interface, addresses):
    plan = planned(profile)
    configs = build_configs(plan, ["node1"], ["node2", "node3"])
    first = addresses[0]
    assert configs["node1"] == {
        "node-ip": first, "flannel-iface": interface, "advertise-address": first, "tls-san": [first],
        "cluster-cidr": "10.42.0.0/16", "service-cidr": "10.43.0.0/16", "cluster-dns": "10.43.0.10",
        "cluster-init": True, "token-file": TOKEN_FILE,
    }
    for host, address in zip(NODES[1:], addresses[1:]):
        assert configs[host] == {"node-ip": address, "flannel-iface": interface,
                                 "server": f"https://{first}:6443", "token-file": TOKEN_FILE}
    # The values are the plan's, not re-derived: the plan's cluster endpoint, hop for hop.
    assert [(plan[h]["cluster"]["interface"], plan[h]["cluster"]["address"]) for h in NODES] == \
        [(configs[h]["flannel-iface"], configs[h]["node-ip"]) for h in NODES]


def test_three_servers_the_first_initialises_the_others_join_it():
    configs = build_configs(planned("bonding-vlans"), NODES, tls_san=["k3s.example.internal"])
    assert configs["node1"]["cluster-init"] is True and "server" not in configs["node1"]
    for host, address in (("node2", "192.168.200.12"), ("node3", "192.168.200.13")):
        assert "cluster-init" not in configs[host]
        assert configs[host]["server"] == "https://192.168.200.11:6443"
        assert configs[host]["advertise-address"] == address
        assert configs[host]["tls-san"] == [address, "k3s.example.internal"]


def physical():
    """The fixture inventory flattened as Ansible would: host vars over group vars over all's."""
    inventory = yaml.safe_load((FIXTURES / "physical.yml").read_text())
    top = inventory["all"]
    groups, host_vars = {}, {}
    for name, group in top["children"]["lab_nodes"]["children"].items():
        groups[name] = list(group["hosts"])
        for host, own in group["hosts"].items():
            host_vars[host] = {**top["vars"], **(group.get("vars") or {}), **(own or {})}
    return groups, host_vars


def test_a_physical_inventory_renamed_ports_and_inventory_addresses():
    groups, host_vars = physical()
    hosts = groups["k3s_servers"] + groups["k3s_agents"]
    plan = build_plan(hosts, {h: {k: host_vars[h].get(k) for k in HOST_KEYS} for h in hosts},
                      shipped(host_vars["ctl-a"]["network_profile"]), "bonding-vlans")
    configs = build_configs(plan, groups["k3s_servers"], groups["k3s_agents"], host_vars)
    # The cluster network is VLAN 200 on the bond of the renamed ports: the bond keeps its name.
    assert plan["gpu-b"]["network"]["bond"]["members"] == ["enp65s0f0", "enp66s0f0"]
    assert {h: (c["flannel-iface"], c["node-ip"]) for h, c in configs.items()} == {
        "ctl-a": ("bond0.200", "192.168.200.31"), "ctl-b": ("bond0.200", "192.168.200.32"),
        "ctl-c": ("bond0.200", "192.168.200.33"), "gpu-a": ("bond0.200", "192.168.200.21"),
        "gpu-b": ("bond0.200", "192.168.200.22")}
    assert configs["gpu-a"]["server"] == configs["ctl-c"]["server"] == "https://192.168.200.31:6443"
    assert configs["gpu-b"]["node-label"] == ["nvidia.com/gpu.present=true"]
    assert configs["gpu-b"]["node-taint"] == ["nvidia.com/gpu=true:NoSchedule"]
    assert "node-label" not in configs["ctl-a"]


def test_the_token_is_never_in_a_config():
    configs = build_configs(planned("simple"), NODES)
    for config in configs.values():
        assert config["token-file"] == TOKEN_FILE
        assert not set(config) & {"token", "agent-token"}
    for key in ("token", "agent-token"):
        message = error_of(planned("simple"), NODES, host_vars={"node2": {"k3s_config_extra": {key: "s3cr3t"}}})
        assert message == (f"k3s config, host node2 (server): k3s_config_extra.{key}: a secret never goes into "
                           "config.yaml; the role writes it to a 0600 file named by token-file")
        assert "s3cr3t" not in message


def test_profile_k3s_section_feeds_the_servers():
    profile = shipped("simple")
    profile["k3s"] = {"cluster_cidr": "10.52.0.0/16", "service_cidr": "10.53.0.0/16"}
    plan = build_plan(NODES, {}, profile, "simple")
    server = build_configs(plan, ["node1"], ["node2"])["node1"]
    # cluster-dns moves with the service range, as k3s's own default does.
    assert (server["cluster-cidr"], server["service-cidr"], server["cluster-dns"]) == \
        ("10.52.0.0/16", "10.53.0.0/16", "10.53.0.10")


def test_extra_flags_cluster_wide_and_per_host():
    configs = build_configs(planned("simple"), ["node1"], ["node2"],
                            host_vars={"node2": {"k3s_config_extra": {"kubelet-arg": ["max-pods=200"]}}},
                            extra={"flannel-backend": "host-gw", "etcd-s3-timeout": "5m0s", "protect-kernel-defaults": True})
    assert configs["node1"]["flannel-backend"] == "host-gw"
    # A server-only cluster setting stays off the agents; an agent's flag reaches them.
    assert "flannel-backend" not in configs["node2"] and "etcd-s3-timeout" not in configs["node2"]
    assert configs["node2"]["protect-kernel-defaults"] is True
    assert configs["node2"]["kubelet-arg"] == ["max-pods=200"]


def test_an_external_datastore_needs_no_etcd_quorum():
    configs = build_configs(planned("simple"), ["node1", "node2"], ["node3"],
                            extra={"datastore-endpoint": "postgres://k3s@db.example.internal:5432/k3s"})
    assert "cluster-init" not in configs["node1"] and "server" not in configs["node2"]
    assert configs["node3"]["server"] == "https://192.168.1.11:6443"


# -- refusals, each with its message ---------------------------------------------------------


def test_misspelt_key_names_the_closest_flag():
    message = error_of(planned("simple"), ["node1"], ["node2"],
                       host_vars={"node2": {"k3s_config_extra": {"flanel-backend": "vxlan", "kubelet-args": ["a=b"]}}})
    assert message == ("k3s config, host node2 (agent): flanel-backend: 'vxlan': not a flag of k3s v1.31.0+k3s1 "
                       "(k3s would skip it and run without it); did you mean flannel-backend?")
    message = error_of(planned("simple"), ["node1"], host_vars={"node1": {"k3s_config_extra": {"kubelet-args": ["a=b"]}}})
    assert message.endswith("kubelet-args: ['a=b']: not a flag of k3s v1.31.0+k3s1 (k3s would skip it and run "
                            "without it); did you mean kubelet-arg?")


@pytest.mark.parametrize("key, value, what", [
    ("write-kubeconfig-mode", 420, "a string (quote numbers such as a file mode)"),  # YAML's 0644
    ("https-listen-port", "6443", "a whole number"),
    ("https-listen-port", True, "a whole number"),
    ("secrets-encryption", "yes", "true or false"),
    ("etcd-s3-timeout", "5 minutes", "a Go duration such as 30s or 5m0s"),
    ("etcd-s3-timeout", 300, "a Go duration such as 30s or 5m0s"),
    ("disable", ["traefik", 7], "a string or a list of strings"),
    ("disable", [], "a string or a list of strings"),
])
def test_wrong_type(key, value, what):
    kind = k3s_flags.flag_type(key)
    message = error_of(planned("simple"), ["node1"], host_vars={"node1": {"k3s_config_extra": {key: value}}})
    assert message == f"k3s config, host node1 (server): {key}: {value!r} is not {what} (k3s {kind} flag)"


def test_server_only_flag_on_an_agent():
    message = error_of(planned("simple"), ["node1"], ["node2"],
                       host_vars={"node2": {"k3s_config_extra": {"disable": ["traefik"]}}})
    assert message == "k3s config, host node2 (agent): disable: ['traefik']: a k3s server-only flag; a k3s agent would skip it"


def test_agent_only_flag_on_a_server():
    message = error_of(planned("simple"), ["node1"], host_vars={"node1": {"k3s_config_extra": {"disable-apiserver-lb": True}}})
    assert message == "k3s config, host node1 (server): disable-apiserver-lb: True: a k3s agent-only flag; a k3s server would skip it"


@pytest.mark.parametrize("count", [2, 4])
def test_even_server_count(count):
    hosts = [f"node{i}" for i in range(1, count + 1)]
    plan = build_plan(hosts, {h: {"network_addresses": {"cluster": f"192.168.1.{10 + i}"}} for i, h in enumerate(hosts, 1)},
                      shipped("simple"), "simple")
    message = error_of(plan, hosts)
    assert message == (f"k3s config: servers: {count} servers ({', '.join(hosts)}); embedded etcd needs an odd number: "
                       f"{count} servers survive the loss of {(count - 1) // 2}, no more than {count - 1} do, with one "
                       "more member to lose quorum; add a server or remove one")


def test_servers_disagree_on_a_cidr():
    plan = planned("simple")
    # A plan not built from one profile (entries from two runs, or written by hand).
    plan["node3"] = copy.deepcopy(plan["node3"])
    plan["node3"]["network"]["k3s"]["cluster_cidr"] = "10.62.0.0/16"
    message = error_of(plan, NODES)
    assert message == ("k3s config, host node3 (server): cluster-cidr: '10.62.0.0/16' differs from '10.42.0.0/16' on "
                       "node1; every server must have the same cluster-cidr")


def test_servers_disagree_on_the_flannel_backend():
    message = error_of(planned("simple"), NODES, host_vars={"node2": {"k3s_config_extra": {"flannel-backend": "host-gw"}}})
    assert message == ("k3s config, host node2 (server): flannel-backend: 'host-gw' differs from unset on node1; every "
                       "server must have the same flannel-backend")


def test_cluster_dns_outside_service_cidr():
    # In the profile: refused while the model is built, before any config.
    profile = shipped("simple")
    profile["k3s"]["cluster_dns"] = "10.96.0.10"
    with pytest.raises(NetworkModelError, match=r"^network profile simple: k3s.cluster_dns: 10.96.0.10 is outside "
                                                r"k3s.service_cidr 10.43.0.0/16$"):
        build_plan(NODES, {}, profile, "simple")
    # In a plan from elsewhere: refused by the config's own check.
    plan = planned("simple")
    plan["node1"]["network"]["k3s"]["cluster_dns"] = "10.96.0.10"
    assert error_of(plan, ["node1"]) == \
        "k3s config, host node1 (server): cluster-dns: 10.96.0.10 is outside service-cidr 10.43.0.0/16"


@pytest.mark.parametrize("key, value, field", [
    ("k3s_config_extra", {"node-ip": "10.0.0.1"}, "k3s_config_extra.node-ip: '10.0.0.1': set from the plan's cluster address, not here"),
    ("k3s_config_extra", {"cluster-cidr": "10.62.0.0/16"},
     "k3s_config_extra.cluster-cidr: '10.62.0.0/16': set from the profile's k3s.cluster_cidr, not here"),
    ("k3s_node_labels", ["gpu"], "k3s_node_labels: 'gpu' is not a node label like example.com/gpu=true"),
    ("k3s_node_taints", ["gpu=true:NoRun"],
     "k3s_node_taints: 'gpu=true:NoRun' is not a taint like gpu=true:NoSchedule (effects: NoSchedule, PreferNoSchedule, NoExecute)"),
])
def test_inventory_values_refused(key, value, field):
    assert error_of(planned("simple"), ["node1"], ["node2"], host_vars={"node2": {key: value}}) == \
        f"k3s config, host node2 (agent): {field}"


def test_groups_must_be_planned_and_disjoint():
    plan = planned("simple")
    assert error_of(plan, ["node1"], ["node1"]) == \
        "k3s config, host node1 (agent): listed twice (also as server); a host is a server or an agent, once"
    assert error_of(plan, ["node9"]) == ("k3s config, host node9 (server): not in the plan (hosts: node1, node2, node3); "
                                         "the k3s groups must be planned hosts")
    assert error_of(plan, []) == "k3s config: servers: no server; the k3s servers group must name at least one host"
    assert error_of(build_plan(NODES, {}), ["node1"]) == (
        "k3s config, host node1 (server): the plan has no cluster network for it (the run has no network_profile); "
        "node-ip and flannel-iface come from the cluster network")


def test_every_schema_entry_is_well_formed():
    for name, (kind, who, alias, hidden) in k3s_flags.FLAGS.items():
        assert kind in k3s_flags.TYPES and who in (k3s_flags.SERVER, k3s_flags.AGENT, k3s_flags.BOTH), name
        assert alias is None or len(alias) == 1, name
        assert isinstance(hidden, bool), name
    assert set(k3s_flags.MUST_AGREE) <= set(k3s_flags.FLAGS)
    assert "disable-apiserver-lb" not in k3s_flags.names("server")
    assert "tls-san" not in k3s_flags.names("agent") and "node-ip" in k3s_flags.names("agent")
