# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: run_state
type: notification
short_description: Keep results/<run-id>/state.json saying where a suite run is
version_added: 0.4.0
description:
  - Writes C(state.json) in the run's results directory at every change - a stage starting, a task starting,
    a host failing, a check recorded - and once more when the playbook ends.
  - It holds the playbook, the run's status (C(running), C(finished), C(failed)), the current stage and task
    and when they started, each stage's duration, each host's status (a failed or unreachable host names the
    stage, the task and the message), and the checks so far by status with the failed ones named.
  - A run that dies (killed, the controller lost) leaves the file with status C(running) and its last stage
    and task, so a person or a CI job can tell where it stopped.
  - The run's directory is the one C(playbooks/run-start.yml) makes (the C(suite_run_dir) fact); a playbook
    that starts no run writes nothing. Stages are read from play names, C(Stage <stage> | ...).
  - Enabled in the collection's C(ansible.cfg) (C(callbacks_enabled)); needs no options.
requirements:
  - enable in ansible.cfg, C(callbacks_enabled = aicluster.lab.run_state)
'''

import os
import time

from ansible.plugins.callback import CallbackBase

from ansible_collections.aicluster.lab.plugins.module_utils.run_state import RunState, check_records, stage_of_play, write_state


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'notification'
    CALLBACK_NAME = 'aicluster.lab.run_state'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.state = None

    def _write(self):
        if self.state is None or not self.state.run_dir or not os.path.isdir(self.state.run_dir):
            return
        try:
            write_state(self.state.run_dir, self.state)
        except OSError as exc:
            self._display.warning('run_state: could not write state.json in %s: %s' % (self.state.run_dir, exc))

    def v2_playbook_on_start(self, playbook):
        self.state = RunState(os.path.basename(playbook._file_name), time.time())

    def v2_playbook_on_play_start(self, play):
        if self.state:
            self.state.play_started(stage_of_play(play.get_name()))

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self.state:
            self.state.start_task(task.get_name(), time.time())
            self._write()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _result(self, result, outcome):
        if self.state is None:
            return
        data = result._result
        run_dir = (data.get('ansible_facts') or {}).get('suite_run_dir')
        if run_dir and not self.state.run_dir:
            self.state.run_dir = run_dir
        records = check_records(data)
        for record in records:
            self.state.check(record, time.time())
        new_stage = outcome != 'skipped' and self.state.activity(time.time())
        message = data.get('msg') if outcome in ('failed', 'unreachable') else None
        self.state.host_result(result._host.get_name(), outcome, time.time(), message and str(message))
        if new_stage or outcome in ('failed', 'unreachable') or run_dir or records or data.get('results'):
            self._write()

    def v2_runner_on_ok(self, result):
        self._result(result, 'changed' if result._result.get('changed') else 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, 'ok' if ignore_errors else 'failed')

    def v2_runner_on_unreachable(self, result):
        self._result(result, 'unreachable')

    def v2_runner_on_skipped(self, result):
        self._result(result, 'skipped')

    def v2_playbook_on_stats(self, stats):
        if self.state is None:
            return
        failed = any(stats.failures.get(h) or stats.dark.get(h) for h in stats.processed)
        self.state.finish(time.time(), failed)
        self._write()
