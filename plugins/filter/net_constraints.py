# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter net_constraints_checks: the net_constraints role's two checks of one constraint profile."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.net_constraints_verdict import TOLERANCES, constraint_checks


def net_constraints_checks(profile, measured, tolerances=None, path=None):
    """[constraint_<name>, constraint_<name>_removed] as dicts for aicluster.lab.check."""
    if not isinstance(profile, Mapping) or "name" not in profile:
        raise AnsibleFilterError(f"net_constraints_checks: the input must be a constraint profile with a name, got {profile!r}")
    if not isinstance(measured, Mapping):
        raise AnsibleFilterError(f"net_constraints_checks: measured must be the phases baseline, during and after, got {measured!r}")
    unknown = sorted(set(tolerances or {}) - set(TOLERANCES))
    if unknown:
        raise AnsibleFilterError(f"net_constraints_checks: unknown tolerance(s) {', '.join(unknown)} (known: {', '.join(TOLERANCES)})")
    return constraint_checks(dict(profile), dict(measured), dict(tolerances or {}), dict(path or {}))


class FilterModule:
    def filters(self):
        return {"net_constraints_checks": net_constraints_checks}
