# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k3s_config filter: the config builder behind Ansible's hostvars, the plan filter's result and errors."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter import k3s_config as k3s_config_filter
from ansible_collections.aicluster.lab.plugins.filter import plan as plan_filter
from ansible_collections.aicluster.lab.plugins.filter.k3s_config import FilterModule, k3s_config
from ansible_collections.aicluster.lab.plugins.filter.plan import plan

PROFILES = pathlib.Path(__file__).resolve().parents[4] / "profiles"
NODES = ["node1", "node2", "node3"]


def plan_hosts(name="bonding-vlans", hostvars=None):
    return plan(NODES, hostvars or {}, {"name": name, "profile": yaml.safe_load((PROFILES / f"{name}.yml").read_text())})


class Undefined:
    """What hostvars holds for a host Ansible does not know: not a mapping."""


def test_registered_under_its_file_name():
    assert FilterModule().filters() == {"k3s_config": k3s_config}


def test_one_call_for_all_hosts_reads_only_the_k3s_variables():
    hostvars = {"node1": {"k3s_node_labels": {"role": "control"}, "ansible_host": "10.0.0.1"},
                "node2": {"k3s_node_taints": ["gpu=true:NoSchedule"], "network_profile": "simple"},
                "node3": Undefined()}
    configs = k3s_config(plan_hosts(), ["node1"], ["node2", "node3"], hostvars)
    assert list(configs) == NODES
    assert configs["node1"]["node-label"] == ["role=control"]
    assert configs["node2"]["node-taint"] == ["gpu=true:NoSchedule"]
    assert configs["node3"] == {"node-ip": "192.168.200.13", "flannel-iface": "bond0.200",
                                "server": "https://192.168.200.11:6443", "token-file": "/etc/rancher/k3s/cluster-token"}
    assert "ansible_host" not in configs["node1"]


def test_hostvars_are_read_by_the_plan_filters_reader():
    # One reader of Ansible's hostvars for the filters over the plan: only the keys named are read.
    assert k3s_config_filter.inventory_vars is plan_filter.inventory_vars
    assert plan_filter.inventory_vars({"node1": {"k3s_node_labels": ["a=b"], "secret": 1}}, "node1",
                                      ("k3s_node_labels", "k3s_node_taints")) == {"k3s_node_labels": ["a=b"],
                                                                                  "k3s_node_taints": None}
    assert plan_filter.inventory_vars({"node1": Undefined()}, "node1") == {}


def test_options_reach_the_builder():
    configs = k3s_config(plan_hosts("simple"), ["node1"], ["node2"], {}, extra={"disable": ["traefik"]},
                         tls_san=["10.0.0.100"], token_file="/run/k3s/token", api_port=7443)
    assert configs["node1"]["tls-san"] == ["192.168.1.11", "10.0.0.100"]
    assert configs["node1"]["disable"] == ["traefik"] and "disable" not in configs["node2"]
    assert configs["node2"]["server"] == "https://192.168.1.11:7443"
    assert configs["node2"]["token-file"] == "/run/k3s/token"


def test_errors_are_filter_errors_with_the_builders_text():
    with pytest.raises(AnsibleFilterError, match=r"^k3s config, host node2 \(agent\): tls-san: '10.0.0.9': a k3s "
                                                 r"server-only flag; a k3s agent would skip it$"):
        k3s_config(plan_hosts(), ["node1"], ["node2"], {"node2": {"k3s_config_extra": {"tls-san": "10.0.0.9"}}})
    with pytest.raises(AnsibleFilterError, match=r"^k3s config: servers: 2 servers \(node1, node2\); embedded etcd"):
        k3s_config(plan_hosts(), ["node1", "node2"])
    with pytest.raises(AnsibleFilterError, match=r"^k3s config: servers: 'node1' must be a list of inventory host names$"):
        k3s_config(plan_hosts(), "node1")
    with pytest.raises(AnsibleFilterError, match=r"^k3s_config: the input must be the plan \(plan_hosts\)"):
        k3s_config(["node1"], ["node1"])
