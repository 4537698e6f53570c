# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: progress
type: stdout
short_description: A compact view of a suite run, one line per stage and per check; the full output goes to a log
version_added: 0.4.0
description:
  - Prints one line when a stage starts and when it ends (with its duration), one line per validation check
    (its status, category, name and host, with the running count of passed, failed and skipped checks), and
    a failed or unreachable task at once, with its host and message. Every line starts with the time elapsed
    since the run started.
  - Everything the default callback would print goes, unchanged, to a log file, C(ansible.log) in the run's
    results directory once the run has one (C(playbooks/run-start.yml)), before that in a temporary file
    that is then moved there. Its path is printed at the start and at the end.
  - Choose it for one run with C(ANSIBLE_STDOUT_CALLBACK=aicluster.lab.progress), or in ansible.cfg
    (C(stdout_callback = aicluster.lab.progress)).
extends_documentation_fragment:
  - ansible.builtin.default_callback
  - ansible.builtin.result_format_callback
requirements:
  - set as stdout callback in configuration
'''

import os
import shutil
import tempfile
import time

from ansible.plugins.callback.default import CallbackModule as DefaultCallback

from ansible_collections.aicluster.lab.plugins.module_utils.run_state import RunState, check_records, stage_of_play

_MARK = {'passed': 'ok  ', 'failed': 'FAIL', 'skipped': 'skip'}


class _LogDisplay(object):
    """The default callback's display, written to a file instead of the screen."""

    def __init__(self, screen, handle):
        self._screen = screen
        self.handle = handle

    def __getattr__(self, name):
        return getattr(self._screen, name)

    def _write(self, text):
        if self.handle is not None:
            self.handle.write(text + '\n')
            self.handle.flush()

    def display(self, msg, color=None, stderr=False, screen_only=False, log_only=False, newline=True, **kwargs):
        if not screen_only:
            self._write(str(msg))

    def banner(self, msg, color=None, cows=True):
        msg = str(msg).strip()
        self._write('\n%s %s' % (msg, '*' * max(3, 79 - len(msg))))

    def _verbose(self, level, msg, host=None):
        if self._screen.verbosity >= level:
            self._write(('<%s> %s' % (host, msg)) if host else str(msg))

    def v(self, msg, host=None):
        self._verbose(1, msg, host)

    def vv(self, msg, host=None):
        self._verbose(2, msg, host)

    def vvv(self, msg, host=None):
        self._verbose(3, msg, host)

    def vvvv(self, msg, host=None):
        self._verbose(4, msg, host)

    def verbose(self, msg, host=None, caplevel=2):
        self._verbose(caplevel + 1, msg, host)


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'aicluster.lab.progress'

    def __init__(self):
        super().__init__()
        self._screen = self._display
        fd, self._log_path = tempfile.mkstemp(prefix='aicluster-lab-', suffix='.log')
        self._display = _LogDisplay(self._screen, os.fdopen(fd, 'w'))
        self._state = None
        self._started = time.time()

    def _say(self, text, color=None):
        elapsed = int(time.time() - self._started)
        self._screen.display('[%3d:%02d] %s' % (elapsed // 60, elapsed % 60, text), color=color)

    def _adopt_run_dir(self, run_dir):
        """Move the full log into the run's directory, where the report lands."""
        if not run_dir or not os.path.isdir(run_dir) or self._state.run_dir:
            return
        self._state.run_dir = run_dir
        target = os.path.join(run_dir, 'ansible.log')
        self._display.handle.close()
        shutil.move(self._log_path, target)
        self._log_path = target
        self._display.handle = open(target, 'a')

    def v2_playbook_on_start(self, playbook):
        super().v2_playbook_on_start(playbook)
        self._state = RunState(os.path.basename(playbook._file_name), self._started)
        self._say('%s: full output in %s' % (self._state.playbook, self._log_path))

    def v2_playbook_on_play_start(self, play):
        super().v2_playbook_on_play_start(play)
        self._state.play_started(stage_of_play(play.get_name()))

    def v2_playbook_on_task_start(self, task, is_conditional):
        super().v2_playbook_on_task_start(task, is_conditional)
        self._state.start_task(task.get_name(), time.time())

    def _record(self, result, outcome):
        data = result._result
        before = self._state.stages[-1] if self._state.stages else None
        if outcome != 'skipped' and self._state.activity(time.time()):
            if before:
                self._say('stage %s done in %.1f s' % (before['stage'], before['seconds']))
            self._say('stage %s' % self._state.stage)
        self._adopt_run_dir((data.get('ansible_facts') or {}).get('suite_run_dir'))
        # One line per check, whether the task recorded one, a batch or a loop of them.
        records = check_records(data)
        for record in records:
            self._state.check(record, time.time())
            counts = self._state.checks
            self._say('%s %s/%s on %s (%d passed, %d failed, %d skipped)%s' % (
                _MARK.get(record.get('status'), '?'), record.get('category'), record.get('name'), record.get('host'),
                counts['passed'], counts['failed'], counts['skipped'],
                (': ' + record.get('message', '')) if record.get('status') == 'failed' else ''),
                color='red' if record.get('status') == 'failed' else None)
        self._state.host_result(result._host.get_name(), outcome, time.time())
        # A failed check has its line; a task that failed otherwise is said here.
        if outcome in ('failed', 'unreachable') and not records:
            self._say('%s: task "%s" on %s: %s' % (outcome.upper(), self._state.task, result._host.get_name(),
                                                   str(data.get('msg', ''))[:800]), color='red')

    def v2_runner_on_ok(self, result):
        # Read before the default callback, which strips a loop's results as it prints them.
        self._record(result, 'changed' if result._result.get('changed') else 'ok')
        super().v2_runner_on_ok(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        # Read before the default callback, which strips a loop's results as it prints them.
        self._record(result, 'ok' if ignore_errors else 'failed')
        super().v2_runner_on_failed(result, ignore_errors)

    def v2_runner_on_unreachable(self, result):
        # Read before the default callback, which strips a loop's results as it prints them.
        self._record(result, 'unreachable')
        super().v2_runner_on_unreachable(result)

    def v2_runner_on_skipped(self, result):
        # Read before the default callback, which strips a loop's results as it prints them.
        self._record(result, 'skipped')
        super().v2_runner_on_skipped(result)

    def v2_playbook_on_stats(self, stats):
        super().v2_playbook_on_stats(stats)
        failed = [h for h in sorted(stats.processed) if stats.failures.get(h) or stats.dark.get(h)]
        last = self._state.stages[-1] if self._state.stages else None
        self._state.finish(time.time(), bool(failed))
        if last:
            self._say('stage %s done in %.1f s' % (last['stage'], last['seconds']))
        counts = self._state.checks
        self._say('%s: %d checks (%d passed, %d failed, %d skipped)%s; full output in %s' % (
            'FAILED' if failed else 'done', self._state.checks_so_far(), counts['passed'], counts['failed'],
            counts['skipped'], (', failed hosts: ' + ', '.join(failed)) if failed else '', self._log_path),
            color='red' if failed else 'green')
        self._display.handle.close()
        self._display.handle = None
