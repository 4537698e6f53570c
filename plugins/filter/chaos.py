# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter chaos_checks: the chaos role's checks of one fault, from what it recorded."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.chaos_verdict import chaos_checks as _checks

_KEYS = ("victims", "nodes", "observer", "hit_at", "heal_at", "ssh_at", "watch", "lost_after", "interval_ms", "recover_timeout_s")


def chaos_checks(fault, record):
    """[chaos_<fault>_<victim>_lost..., chaos_<fault>_others_kept, chaos_<fault>_<victim>_recovered...]."""
    if not isinstance(record, Mapping):
        raise AnsibleFilterError(f"chaos_checks: the record must be a mapping, got {record!r}")
    missing = [key for key in _KEYS if key not in record]
    if missing:
        raise AnsibleFilterError(f"chaos_checks: the record of fault {fault} lacks {', '.join(missing)}")
    unknown = [victim for victim in record["victims"] if victim not in record["hit_at"] or victim not in record["heal_at"]]
    if unknown:
        raise AnsibleFilterError(f"chaos_checks: fault {fault}: no hit or heal time for {', '.join(unknown)}")
    return _checks(str(fault), dict(record))


class FilterModule:
    def filters(self):
        return {"chaos_checks": chaos_checks}
