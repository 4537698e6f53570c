"""os-release parsing and the family lookup the rdma and gpu roles share."""

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.os_release import family_of, parse_os_release

TABLE = {"debian": "Debian", "rhel": "RedHat"}


def test_quotes_are_removed_and_lines_without_a_value_ignored():
    values = parse_os_release('ID="rocky"\nID_LIKE=\'rhel centos fedora\'\n# comment\nVERSION_ID=9.4\n')
    assert values == {"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4"}


@pytest.mark.parametrize("text, family", [
    ("ID=debian", "Debian"),
    ("ID=RHEL", "RedHat"),  # case does not matter
    ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"", "Debian"),  # the first ID_LIKE the table knows
    ("ID=rocky\nID_LIKE=\"rhel centos fedora\"", "RedHat"),
    ("ID=alpine", None),
    ("", None),
])
def test_the_id_first_then_id_like(text, family):
    assert family_of(parse_os_release(text), TABLE) == family
