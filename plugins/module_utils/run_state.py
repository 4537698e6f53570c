# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a suite run is: its stage, each host's status and the checks so far.

Fed by the callbacks ``aicluster.lab.run_state`` (which writes it to
``results/<run-id>/state.json`` at every change, so a run that dies leaves the file
saying where) and ``aicluster.lab.progress`` (which prints it for people). Pure: it is
told what happened and when, and unit-tested that way.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

STATE_FILE = 'state.json'
# Plays are named "Stage <stage> | what it does" (playbooks/*.yml).
_STAGE_PLAY = re.compile(r'^Stage (\w[\w-]*)')


def check_records(result):
    """The records of aicluster.lab.check in a task result, in order: a single check's
    (``check``), a batch's (``checks``), or those of each item of a loop over either."""
    records = []
    for item in result.get('results') or [result]:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get('check'), dict):
            records.append(item['check'])
        batch = item.get('checks')
        if isinstance(batch, list) and all(isinstance(record, dict) and 'status' in record for record in batch):
            records.extend(batch)
    return records


def stage_of_play(play_name):
    """The stage a play belongs to, from its name, or None for a play outside the stages."""
    match = _STAGE_PLAY.match(play_name or '')
    return match.group(1) if match else None


class RunState(object):
    """The state of one run. Times are epoch seconds given by the caller."""

    def __init__(self, playbook, started):
        self.playbook = playbook
        self.started = started
        self.status = 'running'
        self.run_dir = None
        self.stage = None
        self.stage_started = None
        self.stages = []
        self.task = None
        self.hosts = {}
        self.checks = {'passed': 0, 'failed': 0, 'skipped': 0}
        self.failed_checks = []
        self.updated = started
        self.pending_stage = None

    def play_started(self, stage):
        """A play of ``stage`` (None: outside the stages) starts; the stage begins with its first work."""
        self.pending_stage = stage

    def activity(self, now):
        """A task did something (it was not skipped). Returns True when that began a new stage.

        A stage playbook imported by another one brings plays whose tasks all skip (its own
        report inside a suite, say): they must not show as a stage.
        """
        stage, self.pending_stage = self.pending_stage, None
        return self.enter_stage(stage, now)

    def enter_stage(self, stage, now):
        """Returns True when this is a new stage (a stage may have several plays)."""
        self.updated = now
        if stage is None or stage == self.stage:
            return False
        self._close_stage(now)
        self.stage, self.stage_started = stage, now
        self.stages.append({'stage': stage, 'started': now, 'seconds': None})
        return True

    def _close_stage(self, now):
        if self.stages and self.stages[-1]['seconds'] is None:
            self.stages[-1]['seconds'] = round(now - self.stages[-1]['started'], 1)

    def start_task(self, name, now):
        self.task, self.updated = name, now

    def host_result(self, host, outcome, now, message=None):
        """outcome: ok, changed, failed, unreachable or skipped. A failed or unreachable host stays so."""
        self.updated = now
        entry = self.hosts.setdefault(host, {'status': 'ok', 'tasks': 0})
        entry['tasks'] += 1
        if outcome in ('failed', 'unreachable'):
            entry['status'] = outcome
            entry['stage'] = self.stage
            entry['task'] = self.task
            if message:
                entry['message'] = message[:500]

    def check(self, record, now):
        """A record of the aicluster.lab.check action; returns it for the caller to print."""
        self.updated = now
        status = record.get('status', 'failed')
        self.checks[status] = self.checks.get(status, 0) + 1
        if status == 'failed':
            self.failed_checks.append({'host': record.get('host'), 'name': record.get('name'),
                                       'message': (record.get('message') or '')[:500]})
        return record

    def finish(self, now, failed):
        self._close_stage(now)
        self.status = 'failed' if failed else 'finished'
        self.updated = now

    def checks_so_far(self):
        return sum(self.checks.values())

    def to_dict(self):
        return {
            'playbook': self.playbook,
            'status': self.status,
            'started': self.started,
            'updated': self.updated,
            'stage': self.stage,
            'stage_started': self.stage_started,
            'task': self.task,
            'stages': self.stages,
            'hosts': self.hosts,
            'checks': dict(self.checks, total=self.checks_so_far()),
            'failed_checks': self.failed_checks,
        }


def write_state(run_dir, state):
    """Replace run_dir/state.json atomically, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix='.state-', suffix='.json')
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump(state.to_dict(), handle, indent=2, sort_keys=True)
            handle.write('\n')
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(run_dir, STATE_FILE))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
