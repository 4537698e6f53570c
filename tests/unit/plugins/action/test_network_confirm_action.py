# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the aicluster.lab.network_confirm action: the first new connection confirms.

The plugin gets a real Task, PlayContext, DataLoader and Templar; the connection and the
module run are stand-ins that fail to connect a given number of times. test_full_suite.py
runs it against a guest whose network change cuts it off.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible.errors import AnsibleConnectionFailure
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.template import Templar

from ansible_collections.aicluster.lab.plugins.action import network_confirm as confirm_action


class Connection:
    def __init__(self):
        self.resets = 0
        self._shell = SimpleNamespace(tmpdir=None)

    def reset(self):
        self.resets += 1


def make_plugin(args, failures, monkeypatch):
    """A plugin whose first `failures` module runs cannot connect; later ones confirm."""
    task = Task()
    task.action = 'aicluster.lab.network_confirm'
    task.args = args
    connection = Connection()
    loader = DataLoader()
    plugin = confirm_action.ActionModule(
        task=task, connection=connection, play_context=PlayContext(), loader=loader,
        templar=Templar(loader=loader, variables={}), shared_loader_obj=None)
    calls = []

    def execute_module(module_name, module_args, task_vars):
        calls.append((module_name, dict(module_args), connection.resets))
        if len(calls) <= failures:
            raise AnsibleConnectionFailure('Failed to connect to the host via ssh: ssh: connect to host '
                                           '192.168.150.12 port 22: No route to host')
        return {'changed': True, 'status': 'confirmed', 'confirmed_after_effective_s': 3.1}

    monkeypatch.setattr(plugin, '_execute_module', execute_module)
    monkeypatch.setattr(plugin, '_remove_tmp_path', lambda path: None)
    monkeypatch.setattr(confirm_action.time, 'sleep', lambda seconds: None)
    return plugin, connection, calls


def test_without_reconnect_within_it_runs_the_module_once_over_the_current_connection(monkeypatch):
    plugin, connection, calls = make_plugin({'change_id': 'c1'}, 0, monkeypatch)
    result = plugin.run(task_vars={})
    assert result['status'] == 'confirmed'
    assert calls == [('aicluster.lab.network_confirm', {'change_id': 'c1'}, 0)]
    assert connection.resets == 0 and 'reconnected' not in result


def test_the_first_connection_that_gets_through_confirms_each_over_a_new_connection(monkeypatch):
    plugin, connection, calls = make_plugin({'change_id': 'c1', 'reconnect_within': 60}, 2, monkeypatch)
    result = plugin.run(task_vars={})
    assert result['status'] == 'confirmed' and not result.get('failed')
    assert (result['reconnected'], result['reconnect_attempts']) == (True, 3)
    # reconnect_within is the action's own: the module never sees it; every try resets first.
    assert [call[1] for call in calls] == [{'change_id': 'c1'}] * 3
    assert [call[2] for call in calls] == [1, 2, 3]


def test_no_connection_within_the_window_fails_naming_the_window_and_the_last_error(monkeypatch):
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(confirm_action.time, 'monotonic', lambda: float(next(clock)))
    plugin, _connection, calls = make_plugin({'change_id': 'c1', 'reconnect_within': '15'}, 1000, monkeypatch)
    result = plugin.run(task_vars={})
    assert result['failed'] is True and result['reconnected'] is False and result['status'] == 'unreachable'
    assert 1 < len(calls) <= 4
    assert result['msg'].startswith('no new connection reached the host within 15 s (')
    assert 'No route to host' in result['msg']


@pytest.mark.parametrize('value', ['soon', [1]])
def test_a_window_that_is_not_a_number_is_refused(value, monkeypatch):
    plugin, _connection, calls = make_plugin({'change_id': 'c1', 'reconnect_within': value}, 0, monkeypatch)
    result = plugin.run(task_vars={})
    assert result['failed'] is True and 'reconnect_within must be a number of seconds' in result['msg']
    assert calls == []
