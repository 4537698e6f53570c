# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""aicluster.lab.network_confirm: confirm a change over the first new connection that works.

The confirm window proves one thing: that the controller reaches the host over its network as
it is after the change. So, with reconnect_within set, this action drops the connection and
runs the confirm module over new ones until one gets through: the first that reaches the host
confirms the change, in one round trip. A separate reconnect-then-confirm costs a second round
trip, and on a busy host that second trip is what let the rollback fire.
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = 'aicluster.lab.network_confirm'
# Seconds between two connection attempts; a refused or timed-out ssh already took a while.
RETRY_SLEEP_S = 2


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('change_id', 'state_dir', 'wait_rolled_back', 'reconnect_within'))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        module_args = dict(self._task.args)
        reconnect_within = module_args.pop('reconnect_within', None)
        if reconnect_within is None:
            result.update(self._execute_module(module_name=MODULE, module_args=module_args,
                                               task_vars=task_vars))
            return result
        try:
            reconnect_within = float(reconnect_within)
        except (TypeError, ValueError):
            result.update(failed=True, msg='reconnect_within must be a number of seconds, got %r'
                          % (reconnect_within,))
            return result

        started = time.monotonic()
        attempts = 0
        last_error = 'no attempt was made'
        while True:
            attempts += 1
            # A reused connection would prove nothing: only a new one shows that the
            # controller reaches the host over its network as it is now.
            try:
                self._connection.reset()
            except AttributeError:
                pass
            try:
                module_result = self._execute_module(module_name=MODULE, module_args=module_args,
                                                     task_vars=task_vars)
            except AnsibleConnectionFailure as exc:
                last_error = to_text(exc).strip().splitlines()[-1] if to_text(exc).strip() else repr(exc)
                display.vvv('network_confirm: attempt %d could not reach the host: %s' % (attempts, last_error))
            else:
                if not module_result.get('unreachable'):
                    result.update(module_result)
                    result.update(reconnected=True, reconnect_attempts=attempts,
                                  reconnected_after_s=round(time.monotonic() - started, 1))
                    return result
                last_error = to_text(module_result.get('msg', 'unreachable'))
            elapsed = time.monotonic() - started
            if elapsed + RETRY_SLEEP_S >= reconnect_within:
                break
            time.sleep(RETRY_SLEEP_S)
        result.update(
            failed=True, reconnected=False, reconnect_attempts=attempts,
            reconnected_after_s=None, status='unreachable',
            msg='no new connection reached the host within %g s (%d attempts; last: %s)'
                % (reconnect_within, attempts, last_error))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
