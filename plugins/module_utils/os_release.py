# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""/etc/os-release read once for every role that picks packages per distribution."""

from __future__ import annotations


def parse_os_release(text):
    """{KEY: value} from the text of /etc/os-release (quotes removed)."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def family_of(values, families):
    """The family ``families`` ({os-release id: family}) gives the host's ID, else the first of
    its ID_LIKE that it knows (a derivative names its parent there); None when none is known.

    Each role keeps its own table: package sets split distributions differently (the rdma role
    needs Debian or RedHat, the GPU repositories tell Ubuntu from Debian)."""
    for name in [values.get("ID", "")] + values.get("ID_LIKE", "").split():
        if name.lower() in families:
            return families[name.lower()]
    return None
