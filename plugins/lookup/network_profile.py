# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lookup network_profile: load a network profile by name or path, for the plan filter."""

from __future__ import annotations

DOCUMENTATION = r"""
name: network_profile
author:
  - aicluster.lab developers (@aicluster)
version_added: 0.2.0
short_description: Load a network profile by name or from a file
description:
  - Loads one network profile (see docs/network.md in the collection) and returns its
    name and its data, for the C(aicluster.lab.plan) filter.
  - A term with no C(/) and no C(.yml)/C(.yaml) ending is a profile name - the file
    C(<name>.yml) is looked for in O(dirs), in order, and then among the profiles the
    collection ships (C(profiles/) at the collection's root) - simple, vlans,
    bonding-vlans, dhcp-simple and vlans-broken.
  - Any other term is a path to a YAML file. A relative path is taken from the
    playbook's directory first, then from the current directory.
  - Only loads the data and checks that it is a mapping; the filter validates it.
options:
  _terms:
    description: One profile name or path.
    type: list
    elements: str
    required: true
  dirs:
    description:
      - Directories searched for C(<name>.yml) before the shipped profiles, so an
        inventory can carry its own profiles or replace a shipped one.
      - Ignored when the term is a path.
    type: list
    elements: path
    default: []
notes:
  - Fails, naming the term, the known profiles and the directories searched, when the
    profile cannot be found; and when the file is not YAML or does not hold a mapping.
seealso:
  - plugin: aicluster.lab.plan
    plugin_type: filter
"""

EXAMPLES = r"""
- name: A shipped profile
  ansible.builtin.debug:
    msg: "{{ lookup('aicluster.lab.network_profile', 'bonding-vlans') }}"
  # => {name: bonding-vlans, profile: {description: ..., links: [...], bond: {...}, networks: {...}, ...}}

- name: The inventory's own profiles first, then the shipped ones
  ansible.builtin.set_fact:
    network_profile_loaded: "{{ lookup('aicluster.lab.network_profile', network_profile,
                                       dirs=[inventory_dir ~ '/profiles']) }}"

- name: A file of one's own
  ansible.builtin.set_fact:
    network_profile_loaded: "{{ lookup('aicluster.lab.network_profile', '/etc/aicluster/mine.yml') }}"
"""

RETURN = r"""
_raw:
  description:
    - One element - the profile's name (its file name without C(.yml)) and its data.
    - Without O(ignore:wantlist=true), C(lookup) returns that element itself.
  type: list
  elements: dict
  contains:
    name:
      description: The profile's name, the file's stem; the models carry it as C(profile).
      type: str
      sample: bonding-vlans
    profile:
      description: The profile's data, as in the file.
      type: dict
"""

import os
import re

import yaml

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.aicluster.lab.plugins.plugin_utils import strict_yaml

# plugins/lookup/../../profiles: found from this file, so it works wherever the
# collection is installed, without a configured search path.
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "profiles")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _known(dirs):
    names = set()
    for directory in dirs:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        names.update(entry[:-4] for entry in entries if entry.endswith(".yml") and not entry.startswith("."))
    return sorted(names)


def _load(path, term):
    try:
        with open(path, encoding="utf-8") as handle:
            data = strict_yaml.load(handle, path)
    except OSError as exc:
        raise AnsibleLookupError(f"network_profile: {term!r}: cannot read {path}: {exc.strerror}") from None
    except strict_yaml.DuplicateKeyError as exc:
        raise AnsibleLookupError(f"network_profile: {term!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise AnsibleLookupError(f"network_profile: {term!r}: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise AnsibleLookupError(f"network_profile: {term!r}: {path} must hold a mapping (a network profile), but it is {kind}")
    return data


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1:
            raise AnsibleLookupError(f"network_profile: takes exactly one profile name or path, got {len(terms)}: {terms!r}")
        term = terms[0]
        if not isinstance(term, str) or not term:
            raise AnsibleLookupError(f"network_profile: {term!r} is not a profile name or path")
        term = str(term)
        dirs = [os.path.expanduser(str(directory)) for directory in self.get_option("dirs") or []] + [SHIPPED_DIR]

        if "/" in term or term.endswith((".yml", ".yaml")):
            path = os.path.expanduser(term)
            candidates = [path] if os.path.isabs(path) else [os.path.join(self._base_dir(variables), path), path]
            searched = [os.path.dirname(candidate) or "." for candidate in candidates]
        elif _NAME.match(term):
            candidates = [os.path.join(directory, term + ".yml") for directory in dirs]
            searched = dirs
        else:
            candidates, searched = [], dirs
        for candidate in candidates:
            if os.path.isfile(candidate):
                name = os.path.splitext(os.path.basename(candidate))[0]
                return [{"name": name, "profile": _load(candidate, term)}]
        raise AnsibleLookupError(
            f"network_profile: {term!r} is not a profile file or a known profile "
            f"(known: {', '.join(_known(dirs)) or 'none'}; searched: {', '.join(dict.fromkeys(searched))})")

    def _base_dir(self, variables):
        # The playbook's directory, as other path lookups use it; a lookup called outside
        # a play (a unit test) has neither variables nor a loader.
        if variables and variables.get("playbook_dir"):
            return str(variables["playbook_dir"])
        if self._loader is not None:
            return self._loader.get_basedir()
        return os.getcwd()
