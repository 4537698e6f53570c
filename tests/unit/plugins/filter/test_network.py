# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network_models filter: the model builder behind Ansible's hostvars and errors."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.network import FilterModule, network_models

PROFILES = pathlib.Path(__file__).resolve().parents[4] / "profiles"


def shipped(name):
    return yaml.safe_load((PROFILES / f"{name}.yml").read_text())


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
    assert FilterModule().filters() == {"network_models": network_models}


def test_models_of_all_hosts_with_inventory_overrides():
    hostvars = {
        "node1": {"network_link_names": {"eth1": "enp1s0"}, "ansible_host": "192.168.150.11"},
        "node2": {"network_addresses": {"cluster": "192.168.200.22"}},
        "node3": {},
    }
    result = network_models(["node1", "node2", "node3"], hostvars, shipped("vlans"), "vlans")
    assert list(result) == ["node1", "node2", "node3"]
    assert result["node1"]["cluster_interface"] == "enp1s0.200"
    assert result["node2"]["cluster_address"] == "192.168.200.22"
    assert result["node3"]["profile"] == "vlans"


def test_profile_name_defaults_to_inline():
    assert network_models(["node1"], {}, shipped("simple"))["node1"]["profile"] == "inline"


def test_only_the_network_variables_of_the_listed_hosts_are_read():
    hostvars = FakeHostVars({"node1": {"network_addresses": {"cluster": "192.168.1.21"}, "secret": "x"}, "node2": {"other": 1}})
    result = network_models(["node1", "node2"], hostvars, shipped("simple"), "simple")
    assert result["node1"]["cluster_address"] == "192.168.1.21"
    assert {key for unused_host, key in hostvars.read} <= {"network_addresses", "network_link_names"}


def test_a_host_unknown_to_hostvars_uses_the_profile():
    result = network_models(["node1"], FakeHostVars({}), shipped("simple"), "simple")
    assert result["node1"]["cluster_address"] == "192.168.1.11"


def test_model_errors_become_filter_errors_with_the_same_text():
    hostvars = {"node2": {"network_addresses": {"cluster": "192.168.1.11"}}}
    with pytest.raises(AnsibleFilterError) as caught:
        network_models(["node1", "node2"], hostvars, shipped("simple"), "simple")
    assert caught.value.message == "network profile simple, host node2: network_addresses.cluster: 192.168.1.11 is already used by host node1"


def test_input_must_be_a_list_of_hosts():
    with pytest.raises(AnsibleFilterError) as caught:
        network_models("node1", {}, shipped("simple"), "simple")
    assert caught.value.message == "network_models: the input must be a list of host names, got 'node1'"


def test_profile_that_is_not_a_mapping():
    with pytest.raises(AnsibleFilterError) as caught:
        network_models(["node1"], {}, "bonding-vlans")
    assert caught.value.message == "network profile inline: the profile must be a mapping, got 'bonding-vlans'"
