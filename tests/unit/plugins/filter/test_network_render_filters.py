# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network role's render filters, as the role calls them, and through Jinja."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter import network_render as network_render_filter
from ansible_collections.aicluster.lab.plugins.filter.network_render import (
    FilterModule,
    network_netplan,
    network_networkd_files,
)
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.network_units import (
    SHIPPED_PROFILES,
    load_models,
    values,
)

MODELS = load_models()


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"network_networkd_files", "network_netplan", "network_summary"}


@pytest.mark.parametrize("profile, files", [
    ("simple", ["10-aicluster-eth1.network"]),
    ("dhcp-simple", ["10-aicluster-eth1.network"]),
    ("vlans", ["10-aicluster-eth1.network", "10-aicluster-eth1.200.netdev", "10-aicluster-eth1.200.network",
               "10-aicluster-eth1.100.netdev", "10-aicluster-eth1.100.network"]),
    ("bonding-vlans", ["10-aicluster-eth1.network", "10-aicluster-eth2.network",
                       "10-aicluster-bond0.netdev", "10-aicluster-bond0.network",
                       "10-aicluster-bond0.200.netdev", "10-aicluster-bond0.200.network",
                       "10-aicluster-bond0.100.netdev", "10-aicluster-bond0.100.network"]),
])
def test_networkd_files_per_shipped_profile(profile, files):
    assert list(network_networkd_files(MODELS[profile])) == files


def test_role_prefix_without_its_dash():
    # The role's network_file_prefix is "10-aicluster-"; it passes it without the dash.
    files = network_networkd_files(MODELS["bonding-vlans"], "10-aicluster")
    assert values(files["10-aicluster-bond0.netdev"], "Bond", "Mode") == ["active-backup"]
    assert values(files["10-aicluster-eth1.network"], "Network", "PrimarySlave") == ["true"]


@pytest.mark.parametrize("profile", SHIPPED_PROFILES)
def test_netplan_is_yaml_with_the_same_interfaces(profile):
    plan = yaml.safe_load(network_netplan(MODELS[profile]))["network"]
    names = [name for section in ("ethernets", "bonds", "vlans") for name in plan.get(section, {})]
    assert sorted(names) == sorted(MODELS[profile]["interfaces"])


def test_dhcp_and_mtu_through_the_filters():
    files = network_networkd_files(MODELS["dhcp-simple"])
    assert values(files["10-aicluster-eth1.network"], "Network", "DHCP") == ["ipv4"]
    assert values(files["10-aicluster-eth1.network"], "Link", "MTUBytes") == ["1500"]
    plan = yaml.safe_load(network_netplan(MODELS["dhcp-simple"]))["network"]
    assert plan["ethernets"]["eth1"]["dhcp4"] is True


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="network_networkd_files: the host model must be a dict"):
        network_networkd_files("node1")
    with pytest.raises(AnsibleFilterError, match="network_netplan: host model of \\?: missing links"):
        network_netplan({"networks": {}, "interfaces": []})
    with pytest.raises(AnsibleFilterError, match="network_networkd_files: prefix"):
        network_networkd_files(MODELS["simple"], "a/b")


PLAYBOOK = """
- name: Render as the network role does
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    network_file_prefix: 10-aicluster-
  tasks:
    - name: Write the networkd files
      ansible.builtin.copy:
        dest: "{{ out }}/{{ item.key }}"
        content: "{{ item.value }}"
        mode: "0644"
      loop: "{{ network_model | aicluster.lab.network_networkd_files(network_file_prefix | regex_replace('-$', '')) | dict2items }}"
    - name: Write the netplan file
      ansible.builtin.copy:
        dest: "{{ out }}/netplan.yaml"
        content: "{{ network_model | aicluster.lab.network_netplan }}"
        mode: "0600"
"""


def test_through_ansible_playbook_as_the_role_uses_them(tmp_path):
    playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or shutil.which("ansible-playbook")
    if not playbook:
        pytest.skip("ansible-playbook is not installed")
    # The collection root the tests import from (the checkout linked as aicluster/lab).
    collections = pathlib.Path(network_render_filter.__file__).parents[5]
    model = MODELS["bonding-vlans"]
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({
        "network_model": model, "out": str(tmp_path / "out"), "ansible_python_interpreter": sys.executable,
    }))
    (tmp_path / "out").mkdir()
    # A config of its own, so the checkout's ansible.cfg (inventory, SSH settings) stays out.
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    run = subprocess.run([playbook, "-i", "localhost,", "-e", "@" + str(tmp_path / "vars.json"), str(tmp_path / "play.yml")],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    written = {path.name: path.read_text() for path in (tmp_path / "out").iterdir()}
    expected = dict(network_networkd_files(model), **{"netplan.yaml": network_netplan(model)})
    assert written == expected


def test_network_summary_filter_describes_the_host_in_one_line():
    from ansible_collections.aicluster.lab.plugins.filter.network_render import FilterModule

    summary = FilterModule().filters()["network_summary"]
    model = MODELS["bonding-vlans"]
    line = summary(model)
    assert line.startswith("node1 (bonding-vlans): bond0 over eth1*, eth2 (active-backup")
    assert "cluster 192.168.200.11/24 on bond0.200 (VLAN 200)" in line and "\n" not in line
    with pytest.raises(AnsibleFilterError, match="network_summary"):
        summary({"host": "node1"})
