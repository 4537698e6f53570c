# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""aicluster.lab.network_apply: look with plain sh first, run the module only when it has work.

Every run of the network role after the first finds the files as wanted; the module then
arms nothing and reloads nothing, but still costs a Python start on the host (about 8 s on
an emulated guest). The look lists the owned files (mode, sha256) and any change directory
without a marker in one sh round trip. Only when the owned files are exactly the wanted ones
and no change is open does it answer "no change" itself; anything else - a difference, a
symlink, a pending or stale change, an argument the module would refuse, an answer it cannot
read - runs the module, which decides, refuses, arms and reports as it does alone.
"""

from __future__ import annotations

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.aicluster.lab.plugins.module_utils.network_commit import (
    DEFAULT_DIRECTORY,
    DEFAULT_MODE,
    DEFAULT_PREFIX,
    DEFAULT_RELOAD,
    DEFAULT_STATE_DIR,
    DEFAULT_TIMEOUT,
    CommitError,
    look_script,
    look_unchanged,
    validate,
)

display = Display()

MODULE = 'aicluster.lab.network_apply'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('files', 'directory', 'prefix', 'mode', 'reload', 'rollback_timeout', 'state_dir'))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        unchanged = self._no_change(args)
        if unchanged is not None:
            result.update(unchanged)
            return result
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result

    def _no_change(self, args):
        """The module's no-change result when the look vouches for it, else None."""
        files = args.get('files')
        directory = args.get('directory', DEFAULT_DIRECTORY)
        prefix = args.get('prefix', DEFAULT_PREFIX)
        state_dir = args.get('state_dir', DEFAULT_STATE_DIR)
        try:
            mode = validate(files, directory, prefix, args.get('reload', DEFAULT_RELOAD),
                            int(args.get('rollback_timeout', DEFAULT_TIMEOUT)), state_dir, args.get('mode', DEFAULT_MODE))
            answer = self._low_level_execute_command(look_script(directory, prefix, state_dir), sudoable=True)
            if answer.get('rc') != 0 or not look_unchanged(to_text(answer.get('stdout', '')), files, mode):
                return None
        except (CommitError, TypeError, ValueError) as exc:
            display.vvv('network_apply: %s - the module decides' % to_text(exc))
            return None
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The look is only a shortcut: whatever stops it, the module decides and reports.
            display.vvv('network_apply: the look failed (%s), the module decides' % to_text(exc))
            return None
        result = {'changed': False, 'change_id': None, 'rollback_deadline': None, 'armed': False,
                  'files_added': [], 'files_changed': [], 'files_removed': [], 'reconfigured': [],
                  'reconfigured_explicitly': [], 'networkd_restarted': False, 'devices_deleted': [],
                  'files_refreshed': [], 'commands': [],
                  'msg': 'no change: the %d owned files in %s are as wanted' % (len(files), directory)}
        if self._task.diff:
            result['diff'] = []
        return result
