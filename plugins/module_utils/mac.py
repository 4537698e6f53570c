# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one MAC address rule of the collection: profiles, the VM lab's NICs and the libvirt modules use it."""

from __future__ import annotations

import re

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def unicast_mac(value):
    """``value`` as a lower-case colon-separated MAC a NIC can own; raises ValueError saying what is wrong.

    Dashes are read as colons (52-54-00-12-34-56). An integer gets a hint: YAML 1.1 reads an
    unquoted 52:54:00:12:34:56 as a base-60 number.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{value!r} is not a MAC address like 52:54:00:12:34:56")
    if isinstance(value, int):
        raise ValueError(f"{value!r} is not a MAC address like 52:54:00:12:34:56 "
                         "(quote MAC addresses in YAML: unquoted ones can be read as numbers)")
    mac = value.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise ValueError(f"{value!r} is not a MAC address like 52:54:00:12:34:56")
    # The low bit of the first octet marks a group address, which no NIC may own.
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{mac} is a multicast address; a NIC needs a unicast one")
    return mac
