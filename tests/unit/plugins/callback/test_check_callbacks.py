# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The callbacks progress and run_state on the results of aicluster.lab.check: one check, a loop
of them, a batch (the checks option). Each check is one line and one count, however it came.
test_check_playbook.py runs both through ansible-playbook."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from ansible_collections.aicluster.lab.plugins.callback import progress, run_state
from ansible_collections.aicluster.lab.plugins.module_utils.run_state import RunState


def record(name, status, host='node1', category='L1', message='fine'):
    return {'run_id': 'r1', 'name': name, 'host': host, 'category': category, 'status': status,
            'message': message, 'figures': {}, 'description': None, 'condition': None, 'check_mode': False,
            'time': '2026-01-01T12:00:03.412Z'}


def task_result(data, host='node1'):
    return SimpleNamespace(_result=data, _host=SimpleNamespace(get_name=lambda: host))


BATCH = [record('a', 'passed'), record('b', 'failed', message='b broke'), record('c', 'skipped', message='later')]
# The same three checks as the task results of each way to record them.
AS_SINGLES = [('ok', {'check': BATCH[0]}), ('failed', {'check': BATCH[1], 'failed': True}),
              ('skipped', {'check': BATCH[2], 'skipped': True})]
AS_LOOP = [('failed', {'results': [{'check': r} for r in BATCH], 'failed': True})]
AS_BATCH = [('failed', {'checks': BATCH, 'failed': True, 'msg': '3 checks on node1: ...'})]


class Screen:
    def __init__(self):
        self.lines = []

    def display(self, msg, color=None, **_kwargs):
        self.lines.append((msg.split('] ', 1)[1], color))


@pytest.fixture(name='compact')
def fixture_compact():
    callback = progress.CallbackModule()
    callback._state = RunState('validate.yml', 0.0)
    callback._screen = Screen()
    yield callback
    callback._display.handle.close()
    os.unlink(callback._log_path)  # the full log it opened in the temporary directory


@pytest.mark.parametrize('results', [AS_SINGLES, AS_LOOP, AS_BATCH], ids=['single', 'loop', 'batch'])
def test_progress_prints_one_line_per_check(compact, results):
    for outcome, data in results:
        compact._record(task_result(data), outcome)
    assert compact._screen.lines == [
        ('ok   L1/a on node1 (1 passed, 0 failed, 0 skipped)', None),
        ('FAIL L1/b on node1 (1 passed, 1 failed, 0 skipped): b broke', 'red'),
        ('skip L1/c on node1 (1 passed, 1 failed, 1 skipped)', None),
    ]
    assert compact._state.checks == {'passed': 1, 'failed': 1, 'skipped': 1}


def test_progress_names_a_failed_task_that_recorded_no_check(compact):
    compact._state.start_task('Record each check', 1.0)
    compact._record(task_result({'failed': True, 'msg': 'checks[1]: missing required arguments: category'}), 'failed')
    assert compact._screen.lines == [
        ('FAILED: task "Record each check" on node1: checks[1]: missing required arguments: category', 'red')]


def test_progress_counts_a_batch_that_was_skipped_whole(compact):
    skipped = [record('x', 'skipped', message='no GPU'), record('y', 'skipped', message='no GPU')]
    compact._record(task_result({'checks': skipped, 'skipped': True, 'skip_reason': 'no GPU'}), 'skipped')
    assert [line for line, _color in compact._screen.lines] == [
        'skip L1/x on node1 (0 passed, 0 failed, 1 skipped)', 'skip L1/y on node1 (0 passed, 0 failed, 2 skipped)']


@pytest.mark.parametrize('results', [AS_SINGLES, AS_LOOP, AS_BATCH], ids=['single', 'loop', 'batch'])
def test_run_state_counts_each_check_and_names_the_failed(tmp_path, results):
    callback = run_state.CallbackModule()
    callback.state = RunState('validate.yml', 0.0)
    callback.state.run_dir = str(tmp_path)
    for outcome, data in results:
        # The roles record with ignore_errors: a failed check is an ok task for the host.
        callback._result(task_result(data), 'ok' if outcome == 'failed' else outcome)
    saved = json.loads((tmp_path / 'state.json').read_text())
    assert saved['checks'] == {'passed': 1, 'failed': 1, 'skipped': 1, 'total': 3}
    assert saved['failed_checks'] == [{'host': 'node1', 'name': 'b', 'message': 'b broke'}]
    assert saved['hosts']['node1']['status'] == 'ok'
