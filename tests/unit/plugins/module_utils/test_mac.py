# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one MAC rule."""

from __future__ import annotations

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.mac import unicast_mac


@pytest.mark.parametrize("value, expected", [
    ("52:54:00:AB:cd:01", "52:54:00:ab:cd:01"),
    ("52-54-00-ab-cd-01", "52:54:00:ab:cd:01"),
    (" 52:54:00:ab:cd:01 ", "52:54:00:ab:cd:01"),
    ("02:00:00:00:00:01", "02:00:00:00:00:01"),  # locally administered: fine
])
def test_unicast_macs(value, expected):
    assert unicast_mac(value) == expected


@pytest.mark.parametrize("value, message", [
    ("52:54:00:ab:cd", "'52:54:00:ab:cd' is not a MAC address like 52:54:00:12:34:56"),
    ("52:54:00:ab:cd:zz", "'52:54:00:ab:cd:zz' is not a MAC address like 52:54:00:12:34:56"),
    ("5254.00ab.cd01", "'5254.00ab.cd01' is not a MAC address like 52:54:00:12:34:56"),
    ("01:00:5e:00:00:01", "01:00:5e:00:00:01 is a multicast address; a NIC needs a unicast one"),
    ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is a multicast address"),
    (None, "None is not a MAC address"),
    (True, "True is not a MAC address"),
    # What YAML 1.1 makes of an unquoted 52:54:00:12:34:56.
    (680461683416, "680461683416 is not a MAC address like 52:54:00:12:34:56 (quote MAC addresses in YAML"),
])
def test_what_is_not_a_unicast_mac(value, message):
    with pytest.raises(ValueError) as caught:
        unicast_mac(value)
    assert str(caught.value).startswith(message)
