# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network_profile lookup: shipped names, the inventory's own directories, paths, errors."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleLookupError

from ansible_collections.aicluster.lab.plugins.lookup import network_profile

PROFILES = pathlib.Path(__file__).resolve().parents[4] / "profiles"
SHIPPED = sorted(path.stem for path in PROFILES.glob("*.yml"))


@pytest.fixture
def lookup():
    # What the plugin loader does for a plugin it loads: register the options its
    # DOCUMENTATION declares, under the name get_option looks them up by.
    plugin = network_profile.LookupModule()
    plugin._load_name = "aicluster.lab.network_profile"
    C.config.initialize_plugin_configuration_definitions(
        "lookup", plugin._load_name, yaml.safe_load(network_profile.DOCUMENTATION)["options"])
    return plugin


def error_of(lookup, terms, **kwargs):
    with pytest.raises(AnsibleLookupError) as caught:
        lookup.run(terms, **kwargs)
    return caught.value.message


def test_shipped_profiles_are_found_next_to_the_plugin():
    assert pathlib.Path(network_profile.SHIPPED_DIR).resolve() == PROFILES.resolve()
    assert {"simple", "vlans", "bonding-vlans", "dhcp-simple", "vlans-broken"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_profile_by_name(lookup, name):
    assert lookup.run([name]) == [{"name": name, "profile": yaml.safe_load((PROFILES / f"{name}.yml").read_text())}]


def test_dirs_are_searched_first(lookup, tmp_path):
    (tmp_path / "simple.yml").write_text("links: [{name: eno1}]\nnetworks: {}\n")
    (tmp_path / "mine.yml").write_text("links: [{name: eno2}]\n")
    assert lookup.run(["simple"], dirs=[str(tmp_path / "missing"), str(tmp_path)])[0]["profile"]["links"] == [{"name": "eno1"}]
    assert lookup.run(["mine"], dirs=[str(tmp_path)]) == [{"name": "mine", "profile": {"links": [{"name": "eno2"}]}}]
    assert lookup.run(["vlans"], dirs=[str(tmp_path)])[0]["name"] == "vlans"


def test_a_path_names_the_profile_by_its_stem(lookup, tmp_path):
    path = tmp_path / "lab-a.yml"
    path.write_text("description: mine\n")
    assert lookup.run([str(path)]) == [{"name": "lab-a", "profile": {"description": "mine"}}]


def test_a_relative_path_is_taken_from_the_playbook_dir(lookup, tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "site.yaml").write_text("description: site\n")
    result = lookup.run(["profiles/site.yaml"], variables={"playbook_dir": str(tmp_path)})
    assert result == [{"name": "site", "profile": {"description": "site"}}]


def test_unknown_name_lists_known_profiles_and_where_it_looked(lookup, tmp_path):
    (tmp_path / "extra.yml").write_text("links: []\n")
    message = error_of(lookup, ["foo"], dirs=[str(tmp_path)])
    assert message == (f"network_profile: 'foo' is not a profile file or a known profile "
                       f"(known: {', '.join(sorted(SHIPPED + ['extra']))}; searched: {tmp_path}, {network_profile.SHIPPED_DIR})")


def test_missing_file_is_reported_like_an_unknown_name(lookup, tmp_path):
    message = error_of(lookup, [str(tmp_path / "nope.yml")])
    assert message.startswith(f"network_profile: '{tmp_path / 'nope.yml'}' is not a profile file or a known profile (known: bonding-vlans, ")
    assert message.endswith(f"; searched: {tmp_path})")


def test_a_name_cannot_climb_out_of_the_profile_dirs(lookup):
    assert "is not a profile file or a known profile" in error_of(lookup, ["..hidden"])


@pytest.mark.parametrize("text, kind", [("- eth1\n", "a list"), ("", "empty"), ("just text\n", "a str")])
def test_file_that_is_not_a_mapping(lookup, tmp_path, text, kind):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    assert error_of(lookup, [str(path)]) == (
        f"network_profile: '{path}': {path} must hold a mapping (a network profile), but it is {kind}")


def test_file_that_is_not_yaml(lookup, tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("links: [eth1\n")
    assert error_of(lookup, [str(path)]).startswith(f"network_profile: '{path}': {path} is not valid YAML: ")


def test_a_key_given_twice_is_an_error_naming_the_file_line_and_key(lookup, tmp_path):
    # PyYAML alone keeps the second miimon: the profile would silently lose its link monitoring.
    path = tmp_path / "twice.yml"
    path.write_text("bond:\n  name: bond0\n  miimon: 100\n  mode: active-backup\n  miimon: 0\n")
    assert error_of(lookup, [str(path)]) == (
        f"network_profile: '{path}': {path}, line 5: key 'miimon' is given twice in one mapping (first on line 3); "
        "YAML would keep only the last one")


def test_shipped_profiles_have_no_key_twice(lookup):
    for name in network_profile._known([]):
        assert lookup.run([name])[0]["profile"], name


def test_exactly_one_term(lookup):
    assert error_of(lookup, ["simple", "vlans"]) == (
        "network_profile: takes exactly one profile name or path, got 2: ['simple', 'vlans']")
    assert error_of(lookup, []) == "network_profile: takes exactly one profile name or path, got 0: []"
