# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one host-name rule and one interface-name rule."""

from __future__ import annotations

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.names import (
    IFNAMSIZ, host_name, interface_name, lab_node_name)


@pytest.mark.parametrize("value", ["eth0", "bond0.100", "enp65s0f0np0", "br-lab_1", "a" * IFNAMSIZ])
def test_interface_names_the_kernel_takes(value):
    assert interface_name(value) == value


@pytest.mark.parametrize("value, message", [
    ("", "'' is not an interface name"),
    (None, "None is not an interface name"),
    (7, "7 is not an interface name"),
    ("enp65s0f0np0abcd", "'enp65s0f0np0abcd' is longer than 15 characters, the kernel's limit for interface names"),
    ("eth1:0", "'eth1:0' is not a valid interface name (no '/', ':' or whitespace)"),
    ("br/0", "'br/0' is not a valid interface name (no '/', ':' or whitespace)"),
    ("br 0", "'br 0' is not a valid interface name"),
    ("eth1\n", "'eth1\\n' is not a valid interface name"),
    (".", "'.' is not a valid interface name"),
    ("..", "'..' is not a valid interface name"),
])
def test_what_the_kernel_refuses_as_an_interface_name(value, message):
    with pytest.raises(ValueError) as caught:
        interface_name(value)
    assert str(caught.value).startswith(message)


def test_a_long_value_is_shown_short():
    with pytest.raises(ValueError) as caught:
        interface_name("x" * 500)
    assert len(str(caught.value)) < 160 and "..." in str(caught.value)


@pytest.mark.parametrize("value", ["node1", "Node-1", "n", "lab.example.org", "a" * 63, ".".join(["a" * 63] * 3) + ".abc"])
def test_host_names(value):
    assert host_name(value) == value


@pytest.mark.parametrize("value", ["", "bad_name", "-node", "node-", "a" * 64, "node..lab", "node.", ".node",
                                   ".".join(["a" * 63] * 4), "node1\n", None, 1])
def test_what_is_not_a_host_name(value):
    with pytest.raises(ValueError, match="is not a valid host name$"):
        host_name(value)


@pytest.mark.parametrize("value", ["node1", "gpu-2", "n", "a" * 63])
def test_lab_node_names(value):
    assert lab_node_name(value) == value


@pytest.mark.parametrize("value", ["Node_1", "Node1", "node1.lab", "-node", "a" * 64, "", "node1\n", None])
def test_a_lab_node_name_is_one_lower_case_label(value):
    with pytest.raises(ValueError) as caught:
        lab_node_name(value)
    assert str(caught.value) == f"{value!r} is not a valid host name (a-z, 0-9, '-')"
