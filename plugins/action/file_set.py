# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""aicluster.lab.file_set: look first with plain sh, run the module only when something differs.

A run that finds every file, directory and removal already as wanted - every second run of
a role - then costs one sh round trip on the host instead of a Python start (about 0.3 s
against 5 s on an emulated guest). The look compares what the module would compare (type,
mode, owner, the content's sha256); when it cannot vouch for every entry (something differs,
something is in the way, an argument the module would refuse, an answer it cannot read) the
module runs and decides, reports and changes exactly as it does alone.
"""

from __future__ import annotations

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aicluster.lab.plugins.module_utils.file_set import probe_script, probe_unchanged

display = Display()

MODULE = 'aicluster.lab.file_set'


def _entries(args):
    """(files, directories, absent) as the module reads them, or None for anything else."""
    files = args.get('files') or []
    directories = args.get('directories') or []
    absent = args.get('absent') or []
    if not all(isinstance(value, list) for value in (files, directories, absent)):
        return None
    if not all(isinstance(entry, dict) and isinstance(entry.get('path'), str) and isinstance(entry.get('content'), str)
               and isinstance(entry.get('mode', '0644'), str) for entry in files):
        return None
    if not all(isinstance(path, str) and path.startswith('/') for path in directories + absent + [e['path'] for e in files]):
        return None
    return files, directories, absent


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('files', 'directories', 'absent'))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        entries = _entries(args)
        if entries and any(entries) and self._already_as_wanted(*entries):
            result.update(changed=False, written=[], made=[], removed=[])
            if self._task.diff:
                result['diff'] = []
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result

    def _already_as_wanted(self, files, directories, absent):
        try:
            script = probe_script(files, directories, absent)
            answer = self._low_level_execute_command(script, sudoable=True)
            if answer.get('rc') != 0:
                display.vvv('file_set: the look exited %s, the module decides' % answer.get('rc'))
                return False
            return probe_unchanged(to_text(answer.get('stdout', '')), files, directories, absent)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The look is only a shortcut: whatever stops it, the module decides and reports.
            display.vvv('file_set: the look failed (%s), the module decides' % to_text(exc))
            return False
