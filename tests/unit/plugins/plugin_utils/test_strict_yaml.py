# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""strict_yaml: yaml.safe_load, except that a key given twice in one mapping is an error."""

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.plugin_utils.strict_yaml import DuplicateKeyError, load


def test_it_parses_what_safe_load_parses():
    text = "a: 1\nb: [x, {c: 2}]\nd: {e: null}\n"
    assert load(text, "t.yml") == yaml.safe_load(text)


@pytest.mark.parametrize("text, message", [
    ("a: 1\na: 2\n", "t.yml, line 2: key 'a' is given twice in one mapping (first on line 1)"),
    ("hosts:\n  node1: {}\n  node2: {}\n  node1: {}\n", "t.yml, line 4: key 'node1' is given twice in one mapping (first on line 2)"),
    ("x: {k: 1, k: 2}\n", "t.yml, line 1: key 'k' is given twice in one mapping (first on line 1)"),
    ("- {vlan: 100}\n- vlan: 1\n  vlan: 2\n", "t.yml, line 3: key 'vlan' is given twice in one mapping (first on line 2)"),
])
def test_a_key_given_twice_names_the_file_line_and_key(text, message):
    with pytest.raises(DuplicateKeyError) as caught:
        load(text, "t.yml")
    assert str(caught.value).startswith(message)


def test_equal_keys_in_different_mappings_are_fine():
    assert load("a: {k: 1}\nb: {k: 2}\n", "t.yml") == {"a": {"k": 1}, "b": {"k": 2}}
