"""The scenario's network profile, read straight from its YAML file.

The verifier checks the nodes against the profile as a person would, with its own
small reading of the data, not with the collection's model code under test.
"""

import os
import pathlib

import yaml

PROJECT = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))


def profile_of(host):
    name = host.ansible.get_variables()["network_profile"]
    return yaml.safe_load((PROJECT / "profiles" / f"{name}.yml").read_text())


def vlan_of(profile, host_name, name):
    """The VLAN id host_name tags network `name` with: its own override, else the network's."""
    override = (profile["hosts"].get(host_name) or {}).get("vlans") or {}
    return override.get(name, profile["networks"][name].get("vlan"))


def interface_of(network, vlan=None):
    """The interface of a network: its parent, with the VLAN id (the network's unless given)."""
    vlan = vlan if vlan is not None else network.get("vlan")
    return network["parent"] + (f".{vlan}" if vlan else "")


def host_interface(profile, host_name, name):
    """The interface host_name carries network `name` on, following its VLAN override."""
    return interface_of(profile["networks"][name], vlan_of(profile, host_name, name))
