# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan filter: the plan builder behind Ansible's hostvars, the profile lookup and errors."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.plan import FilterModule, plan, plan_peers

PROFILES = pathlib.Path(__file__).resolve().parents[4] / "profiles"


def shipped(name):
    return yaml.safe_load((PROFILES / f"{name}.yml").read_text())


def loaded(name, profile_name=None):
    """What the network_profile lookup returns."""
    return {"name": profile_name or name, "profile": shipped(name)}


def models(hosts, hostvars, profile):
    return {host: entry["network"] for host, entry in plan(hosts, hostvars, profile).items()}


class FakeHostVars(Mapping):
    """Like Ansible's HostVars: only the listed hosts exist, and reading a variable is recorded."""

    def __init__(self, hosts):
        self._hosts = hosts
        self.read = []

    def __getitem__(self, host):
        outer = self

        class HostView(Mapping):
            def __getitem__(self, key):
                outer.read.append((host, key))
                return outer._hosts[host][key]

            def __iter__(self):
                return iter(outer._hosts[host])

            def __len__(self):
                return len(outer._hosts[host])

        return HostView()

    def __iter__(self):
        return iter(self._hosts)

    def __len__(self):
        return len(self._hosts)


def test_filter_is_registered():
    assert FilterModule().filters() == {"plan": plan, "plan_peers": plan_peers}


def test_models_of_all_hosts_with_inventory_overrides():
    hostvars = {
        "node1": {"network_link_names": {"eth1": "enp1s0"}, "ansible_host": "192.168.150.11"},
        "node2": {"network_addresses": {"cluster": "192.168.200.22"}},
        "node3": {},
    }
    result = models(["node1", "node2", "node3"], hostvars, loaded("vlans"))
    assert list(result) == ["node1", "node2", "node3"]
    assert result["node1"]["cluster_interface"] == "enp1s0.200"
    assert result["node2"]["cluster_address"] == "192.168.200.22"
    assert result["node3"]["profile"] == "vlans"


def test_profile_name_defaults_to_inline():
    assert models(["node1"], {}, {"profile": shipped("simple")})["node1"]["profile"] == "inline"


def test_only_the_network_variables_of_the_listed_hosts_are_read():
    hostvars = FakeHostVars({"node1": {"network_addresses": {"cluster": "192.168.1.21"}, "secret": "x"}, "node2": {"other": 1}})
    result = models(["node1", "node2"], hostvars, loaded("simple"))
    assert result["node1"]["cluster_address"] == "192.168.1.21"
    assert {key for unused_host, key in hostvars.read} <= {"network_addresses", "network_link_names"}


def test_a_host_unknown_to_hostvars_uses_the_profile():
    result = models(["node1"], FakeHostVars({}), loaded("simple"))
    assert result["node1"]["cluster_address"] == "192.168.1.11"


def test_model_errors_become_filter_errors_with_the_same_text():
    hostvars = {"node2": {"network_addresses": {"cluster": "192.168.1.11"}}}
    with pytest.raises(AnsibleFilterError) as caught:
        models(["node1", "node2"], hostvars, loaded("simple"))
    assert caught.value.message == "network profile simple, host node2: network_addresses.cluster: 192.168.1.11 is already used by host node1"


def test_input_must_be_a_list_of_hosts():
    with pytest.raises(AnsibleFilterError) as caught:
        models("node1", {}, loaded("simple"))
    assert caught.value.message == "plan: the input must be a list of host names, got 'node1'"


def test_profile_that_is_not_a_mapping():
    with pytest.raises(AnsibleFilterError) as caught:
        plan(["node1"], {}, {"name": "inline", "profile": "bonding-vlans"})
    assert caught.value.message == "network profile inline: the profile must be a mapping, got 'bonding-vlans'"


def test_profile_that_is_not_the_lookups_result():
    with pytest.raises(AnsibleFilterError) as caught:
        plan(["node1"], {}, "bonding-vlans")
    assert caught.value.message == "plan: profile must be the network_profile lookup's {name, profile} or none, got 'bonding-vlans'"


def test_without_a_profile_every_host_keeps_its_network():
    result = plan(["node1", "node2"], FakeHostVars({"node1": {}}))
    assert result["node1"] == {"host": "node1", "profile": None, "network": None, "cluster": None,
                               "storage": None, "rdma": None}
    assert list(result) == ["node1", "node2"]


def test_only_the_hosts_of_the_play_are_planned():
    # --limit node2 with an inventory value that would clash with node1's: node2 alone is planned.
    hostvars = {"node1": {"network_addresses": {"cluster": "192.168.1.50"}}, "node2": {"network_addresses": {"cluster": "192.168.1.50"}}}
    assert list(plan(["node1", "node2"], hostvars, loaded("simple"), ["node2", "localhost"])) == ["node2"]
    # A play on the controller alone plans the whole group.
    assert list(plan(["node1", "node2"], {}, loaded("simple"), ["localhost"])) == ["node1", "node2"]
    assert list(plan(["node1", "node2"], {}, loaded("simple"), [])) == ["node1", "node2"]


def test_plan_peers():
    planned = plan(["node1", "node2"], {}, loaded("simple"))
    assert [(peer["peer"], peer["address"]) for peer in plan_peers(planned, "node1")] == [("node2", "192.168.1.12")]
    with pytest.raises(AnsibleFilterError) as caught:
        plan_peers(planned, "node9")
    assert caught.value.message == "plan_peers: host node9 is not in the plan (hosts: node1, node2)"
    with pytest.raises(AnsibleFilterError) as caught:
        plan_peers(None, "node1")
    assert caught.value.message == "plan_peers: the input must be the plan (plan_hosts), got None"
