# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape every role's read script prints: sections, each opened by a '### <name>' line."""

from __future__ import annotations

import re

_SECTION = re.compile(r"^### (\S+)\s*$")


def sections(text):
    """{name: text} of output split at '### <name>' lines; what comes before the first is dropped."""
    found, name, lines = {}, None, []
    for line in (text or "").splitlines():
        match = _SECTION.match(line)
        if match:
            if name is not None:
                found[name] = "\n".join(lines)
            name, lines = match.group(1), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        found[name] = "\n".join(lines)
    return found
