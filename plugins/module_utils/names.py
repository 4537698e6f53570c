# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one host-name rule and the one interface-name rule of the collection.

Profiles, the VM lab, the libvirt modules and the modules that act on a host's interfaces
use these; each says in its own words which field was refused.
"""

from __future__ import annotations

import re

# The kernel's IFNAMSIZ is 16 with the trailing NUL: a name has at most 15 characters.
IFNAMSIZ = 15
# What dev_valid_name (net/core/dev.c) refuses inside a name.
_BAD_IFNAME_CHARS = re.compile(r"[/:\s]")
# RFC 1123 labels: letters, digits and '-', 1 to 63 characters, no '-' at either end.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")


def _show(value):
    """A value as an error shows it: in its repr (a str subclass as a plain str), kept short."""
    text = repr(str(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def interface_name(value):
    """``value`` if the kernel takes it as an interface name; raises ValueError saying what is wrong.

    The kernel's rule (dev_valid_name): 1 to 15 characters, not '.' or '..', no '/', ':' or
    whitespace.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{_show(value)} is not an interface name")
    if len(value) > IFNAMSIZ:
        raise ValueError(f"{_show(value)} is longer than {IFNAMSIZ} characters, the kernel's limit for interface names")
    if _BAD_IFNAME_CHARS.search(value) or value in (".", ".."):
        raise ValueError(f"{_show(value)} is not a valid interface name (no '/', ':' or whitespace)")
    return value


def host_name(value):
    """``value`` if it is a host name (RFC 1123: dot-separated labels of letters, digits and '-',
    each 1 to 63 characters and not starting or ending with '-', 253 in all); raises ValueError."""
    if not isinstance(value, str) or not _HOST_NAME.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a valid host name")
    return value


def lab_node_name(value):
    """``value`` if a VM lab node can carry it: one lower-case label of the host-name rule.

    The name is also the node's hostname (validate compares the two), part of its libvirt
    domain's and disk's names and its DHCP lease's name, so it takes no dots and no upper case.
    Raises ValueError.
    """
    if not isinstance(value, str) or "." in value or value != value.lower() or not _HOST_NAME.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a valid host name (a-z, 0-9, '-')")
    return value
