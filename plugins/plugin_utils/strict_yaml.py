# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""YAML that refuses duplicate keys.

PyYAML keeps the last of two equal keys in a mapping without a word, so a profile that
says ``miimon: 100`` and further down ``miimon: 0`` silently gets the second. Every file
the collection reads itself on the controller goes through ``load``; files Ansible reads (inventories,
vars, playbooks) are covered by ``duplicate_dict_key = error`` in ansible.cfg.
"""

from __future__ import annotations

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """Two equal keys in one mapping. The message names the file, the line and the key."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that raises on a key given twice in one mapping."""

    source = "<string>"

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself below
                first = None
            if first is not None:
                raise DuplicateKeyError(
                    "%s, line %d: key %r is given twice in one mapping (first on line %d); YAML would keep only the "
                    "last one" % (self.source, key_node.start_mark.line + 1, key, first))
            try:
                seen[key] = key_node.start_mark.line + 1
            except TypeError:
                pass
        return super().construct_mapping(node, deep=deep)


def load(stream, source):
    """Parse one YAML document like yaml.safe_load, refusing duplicate keys; ``source`` names it in errors."""
    loader = _StrictLoader(stream)
    loader.source = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
