# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network_checks and network_bond_state filters: the validate role's way in.

The role passes each ``ip -j`` output as one line of the command's stdout (a JSON
string); the filter parses it, names the field when it cannot, and refuses input that
is not a host's model.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.network_checks import (
    FilterModule,
    network_checks,
    network_bond_state,
)
from ansible_collections.aicluster.lab.plugins.module_utils.network_checks import peer_targets
from ansible_collections.aicluster.lab.plugins.module_utils.network_model import build_models

ROOT = pathlib.Path(__file__).resolve().parents[4]
IP_FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "ip"
FIELDS = {"links": "link", "addrs": "addr", "routes": "route", "neigh": "neigh"}

MODELS = build_models(yaml.safe_load((ROOT / "profiles" / "bonding-vlans.yml").read_text()),
                      ["node1", "node2"], {}, "bonding-vlans")
MODEL = MODELS["node1"]


def parsed_state():
    return {field: json.loads((IP_FIXTURES / f"bonding-vlans-node1-{kind}.json").read_text())
            for field, kind in FIELDS.items()}


def stdout_state():
    """What the role hands over: ip -j prints each table as one compact line."""
    return {field: json.dumps(value, separators=(",", ":")) for field, value in parsed_state().items()}


def summary(checks):
    return [(check["name"], check["passed"]) for check in checks]


def test_filters_are_registered():
    assert FilterModule().filters() == {"network_checks": network_checks, "network_bond_state": network_bond_state}


def test_json_strings_from_stdout_lines_pass():
    targets = peer_targets(MODELS, "node1")
    checks = network_checks(MODEL, stdout_state(), targets)
    assert len(checks) == 10
    assert all(check["passed"] for check in checks), [check["message"] for check in checks if not check["passed"]]


def test_json_strings_and_lists_give_the_same_checks():
    targets = peer_targets(MODELS, "node1")
    assert network_checks(MODEL, stdout_state(), targets) == network_checks(MODEL, parsed_state(), targets)


def test_strings_and_lists_may_be_mixed():
    state = stdout_state()
    state["routes"] = parsed_state()["routes"]
    assert all(check["passed"] for check in network_checks(MODEL, state))


def test_a_fault_in_the_json_text_is_found():
    state = stdout_state()
    assert state["links"].count('"id":200') == 1
    state["links"] = state["links"].replace('"id":200', '"id":201')
    failed = [(check["name"], check["message"]) for check in network_checks(MODEL, state) if not check["passed"]]
    assert failed == [("net_vlan_ids", "bond0.200: VLAN id 201, expected 200 (network cluster)")]


def test_empty_output_is_an_empty_table():
    # No neighbour yet: nothing learned, which the neighbour check reports.
    state = stdout_state()
    state["neigh"] = "  "
    targets = peer_targets(MODELS, "node1")
    neighbours = network_checks(MODEL, state, targets)[-1]
    assert (neighbours["name"], neighbours["passed"]) == ("net_neighbours", False)


@pytest.mark.parametrize("field", list(FIELDS))
def test_bad_json_names_the_field(field):
    state = stdout_state()
    # Output cut short, as when the command is killed mid-way.
    state[field] = state[field][:40]
    with pytest.raises(AnsibleFilterError, match=rf"^network_checks: state\.{field} is not the JSON of ip -j: "):
        network_checks(MODEL, state)


def test_error_text_instead_of_json_names_the_field():
    state = stdout_state()
    state["addrs"] = 'Device "bond0.300" does not exist.'
    with pytest.raises(AnsibleFilterError, match=r"^network_checks: state\.addrs is not the JSON of ip -j: Expecting value"):
        network_checks(MODEL, state)


@pytest.mark.parametrize("not_a_model", [
    MODELS,                     # every host's models instead of this host's
    MODEL["networks"],          # a part of a model
    None,
    "bonding-vlans",
    [MODEL],
])
def test_input_that_is_not_a_model(not_a_model):
    with pytest.raises(AnsibleFilterError, match=re.escape("network_checks: the input must be a host's network_model")):
        network_checks(not_a_model, stdout_state())


def test_peer_targets():
    assert peer_targets(MODELS, "node2") == [
        {"network": "cluster", "peer": "node1", "address": "192.168.200.11", "interface": "bond0.200", "vlan": 200, "peer_vlan": 200, "mtu": 1500},
        {"network": "storage", "peer": "node1", "address": "192.168.100.11", "interface": "bond0.100", "vlan": 100, "peer_vlan": 100, "mtu": 1500},
    ]


def test_bond_state_of_the_real_bond():
    links = (IP_FIXTURES / "bonding-vlans-node1-link.json").read_text()
    state = network_bond_state(links, "bond0")
    assert {key: state[key] for key in ("mode", "active", "primary", "primary_reselect", "miimon", "updelay", "downdelay")} == {
        "mode": "active-backup", "active": "eth1", "primary": "eth1", "primary_reselect": "always",
        "miimon": 100, "updelay": 0, "downdelay": 0}
    assert [(m["name"], m["state"], m["mii_status"], m["carrier"]) for m in state["members"]] == [
        ("eth1", "ACTIVE", "UP", True), ("eth2", "BACKUP", "UP", True)]
    # The permanent MAC, not the bond's address every member wears.
    assert state["members"][0]["perm_hwaddr"] == "52:54:00:d3:d1:58"


def test_bond_state_of_something_that_is_not_a_bond():
    links = (IP_FIXTURES / "bonding-vlans-node1-link.json").read_text()
    assert network_bond_state(links, "bond0.200") is None
    assert network_bond_state(links, "bond9") is None
