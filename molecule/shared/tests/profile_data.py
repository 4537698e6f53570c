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


def interface_of(network):
    return network["parent"] + (f".{network['vlan']}" if network.get("vlan") else "")
