# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the network renderer tests: the hand-written host models and a unit-file reader."""

from __future__ import annotations

import pathlib

import yaml

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "network"
SHIPPED_PROFILES = ("simple", "vlans", "bonding-vlans", "dhcp-simple")


def load_models():
    """{profile: node1's model}: the shipped profiles plus lacp-jumbo (LACP, jumbo MTU, gateway)."""
    return yaml.safe_load((FIXTURES / "models.yml").read_text())


def parse_unit(text):
    """A systemd unit file as [(section, [(key, value), ...]), ...].

    Sections may repeat ([Route]) and keys may repeat (Address=, VLAN=), so neither is a
    dict here; configparser would reject or merge both.
    """
    sections = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], []))
            continue
        if not sections or "=" not in line:
            raise ValueError(f"not a unit file line: {raw!r}")
        key, value = line.split("=", 1)
        sections[-1][1].append((key.strip(), value.strip()))
    return sections


def values(text, section, key):
    """Every value of ``key`` in every ``section`` of a unit file, in file order."""
    return [value for name, items in parse_unit(text) if name == section for k, value in items if k == key]
