# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the vfio role: the verdicts of a bind or a release (module_utils/vfio.py holds the
logic and its tests)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import vfio


def vfio_checks(before, after, state):
    """The checks (category hardware) of a bind (state bound) or a release (state released)."""
    for name, value in (('before', before), ('after', after)):
        if not isinstance(value, dict) or 'problems' not in value:
            raise AnsibleFilterError('vfio_checks: %s must be what aicluster.lab.vfio_preflight returned, got %r'
                                     % (name, value))
    if state not in ('bound', 'released'):
        raise AnsibleFilterError('vfio_checks: state %r is not bound or released' % (state,))
    return vfio.checks(before, after, state)


class FilterModule:
    def filters(self):
        return {'vfio_checks': vfio_checks}
