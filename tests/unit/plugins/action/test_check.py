# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the aicluster.lab.check action plugin, run with ansible's own objects.

The plugin gets a real Task, PlayContext, DataLoader and Templar; only the connection
is a stand-in, since the check never uses it. test_check_playbook.py runs it through
ansible-playbook.
"""

from __future__ import annotations

import json
import multiprocessing
from types import SimpleNamespace

import pytest

from ansible import template as ansible_template
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.template import Templar

from ansible_collections.aicluster.lab.plugins.action import check as check_action

# ansible-core 2.19 only evaluates conditionals it trusts, as it trusts playbook text;
# before 2.19 every string was trusted.
trust = getattr(ansible_template, 'trust_as_template', lambda value: value)


def run_check(args, task_vars=None, check_mode=False):
    task_vars = dict(task_vars or {})
    task_vars.setdefault('inventory_hostname', 'node1')
    task = Task()
    task.action = 'aicluster.lab.check'
    task.args = args
    task.check_mode = check_mode
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    loader = DataLoader()
    plugin = check_action.ActionModule(
        task=task, connection=connection, play_context=PlayContext(), loader=loader,
        templar=Templar(loader=loader, variables=task_vars), shared_loader_obj=None)
    return plugin.run(task_vars=task_vars)


def that(*conditions):
    return [trust(condition) for condition in conditions]


def read_jsonl(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


class TestOutcome:
    def test_passing_check(self):
        result = run_check({'name': 'node_booted', 'category': 'L1', 'that': that('x == 1', 'x in [1, 2]'),
                            'figures': {'boot_s': '12.5'}}, {'x': 1})
        assert not result.get('failed') and result['changed'] is False
        record = result['check']
        assert (record['name'], record['host'], record['category'], record['status']) == (
            'node_booted', 'node1', 'L1', 'passed')
        assert record['message'] == 'All conditions passed'
        assert record['figures'] == {'boot_s': 12.5}
        assert record['time'].endswith('Z')
        assert result['msg'] == 'PASSED L1/node_booted on node1: All conditions passed [boot_s=12.5]'
        assert result['_ansible_verbose_always'] is True

    def test_single_condition_string_is_not_split_on_commas(self):
        result = run_check({'name': 'c', 'category': 'L1', 'that': trust('x in [1, 2]')}, {'x': 2})
        assert result['check']['status'] == 'passed'

    def test_boolean_conditions(self):
        assert run_check({'name': 'c', 'category': 'L1', 'that': [True]})['check']['status'] == 'passed'
        assert run_check({'name': 'c', 'category': 'L1', 'that': [False]})['check']['status'] == 'failed'

    def test_false_condition_fails_and_names_it(self):
        result = run_check({'name': 'ping', 'category': 'L2', 'that': that('x == 1', 'x == 2', 'undefined_var')},
                           {'x': 1})
        assert result['failed'] is True
        assert result['check']['status'] == 'failed'
        assert result['check']['message'] == 'Condition failed: x == 2'
        assert result['check']['condition'] == 'x == 2'
        assert result['assertion'] == 'x == 2' and result['evaluated_to'] is False

    def test_fail_msg_and_success_msg(self):
        failed = run_check({'name': 'c', 'category': 'L2', 'that': that('false'), 'fail_msg': 'node2 lost'})
        assert failed['check']['message'] == 'node2 lost'
        passed = run_check({'name': 'c', 'category': 'L2', 'that': that('true'), 'success_msg': 'fine'})
        assert passed['check']['message'] == 'fine'

    def test_condition_that_cannot_be_evaluated_fails_the_check(self):
        result = run_check({'name': 'c', 'category': 'L2', 'that': that('missing_var == 1'), 'fail_msg': 'oops'})
        assert result['failed'] is True
        message = result['check']['message']
        assert message.startswith("oops (could not evaluate 'missing_var == 1': ")
        assert 'missing_var' in message[len('oops'):] and '\n' not in message

    def test_skip_reason_skips_without_evaluating(self):
        result = run_check({'name': 'rdma', 'category': 'performance', 'skip_reason': 'no RDMA NIC',
                            'that': that('missing_var == 1'), 'figures': {'latency_us': 'n/a', 'ok': 1}})
        assert result['skipped'] is True and not result.get('failed')
        assert result['skip_reason'] == 'no RDMA NIC'
        assert result['check']['status'] == 'skipped'
        assert result['check']['message'] == 'no RDMA NIC'
        assert result['check']['figures'] == {'ok': 1}

    def test_expected_failure_with_the_expected_message_passes(self):
        result = run_check({'name': 'net_vlan_agreement', 'category': 'network', 'that': that('false'),
                            'fail_msg': 'node2 tags network cluster with VLAN 201 (eth1.201), expected 200',
                            'expect_failure': 'with VLAN 201'})
        assert not result.get('failed')
        assert result['check']['status'] == 'passed'
        assert result['check']['message'] == (
            'failed as expected: node2 tags network cluster with VLAN 201 (eth1.201), expected 200')

    def test_expected_failure_with_another_message_fails_and_says_so(self):
        result = run_check({'name': 'c', 'category': 'network', 'that': that('false'), 'fail_msg': 'link down',
                            'expect_failure': 'VLAN 201'})
        assert result['failed'] is True
        assert result['check']['message'] == "failed, but not with 'VLAN 201': link down"

    def test_expected_failure_that_passes_fails(self):
        # A negative test that cannot fail is a defect: holding conditions fail it.
        result = run_check({'name': 'c', 'category': 'network', 'that': that('true'), 'success_msg': '0% loss',
                            'expect_failure': '100% packet loss'})
        assert result['failed'] is True
        assert result['check']['message'] == "expected to fail with '100% packet loss', but passed: 0% loss"

    def test_expected_failure_does_not_turn_a_skip_into_a_result(self):
        result = run_check({'name': 'c', 'category': 'network', 'skip_reason': 'no VLANs',
                            'expect_failure': 'VLAN'})
        assert result['check']['status'] == 'skipped'

    def test_no_conditions_records_a_measurement(self):
        result = run_check({'name': 'iperf3', 'category': 'performance', 'figures': {'gbit_s': 9.41}})
        assert result['check']['status'] == 'passed' and result['check']['message'] == 'Recorded'

    def test_figure_that_is_not_a_number_fails_the_check_naming_it(self):
        result = run_check({'name': 'boot', 'category': 'L1', 'that': that('true'),
                            'figures': {'boot_s': 'abc', 'n': 1}})
        assert result['failed'] is True
        assert result['check']['message'] == "figures.boot_s: 'abc' is not a number"
        assert result['check']['figures'] == {'n': 1}

    def test_failed_condition_wins_over_missing_figures(self):
        result = run_check({'name': 'ping', 'category': 'L2', 'that': that('false'), 'fail_msg': 'no reply',
                            'figures': {'rtt_ms': 'n/a', 'loss_pct': 100}})
        assert result['check']['message'] == 'no reply'
        assert result['check']['figures'] == {'loss_pct': 100}

    def test_description_and_check_mode_are_recorded(self):
        result = run_check({'name': 'c', 'category': 'L1', 'description': 'proves it'}, check_mode=True)
        assert result['check']['description'] == 'proves it'
        assert result['check']['check_mode'] is True
        assert result['changed'] is False


class TestBadInput:
    @pytest.mark.parametrize('args, error', [
        ({'category': 'L1'}, 'name'),
        ({'name': 'c'}, 'category'),
        ({'name': ' ', 'category': 'L1'}, "name: must be a non-empty string, got ' '"),
        ({'name': 'c', 'category': 'L1', 'that': [trust('x'), 5]},
         'that[1]: 5 is not a conditional (expected a string or boolean)'),
        ({'name': 'c', 'category': 'L1', 'figures': 'fast'}, 'figures'),
        ({'name': 'c', 'category': 'L1', 'bogus': 1}, 'bogus'),
    ])
    def test_error_names_the_option(self, args, error):
        with pytest.raises(AnsibleActionFail) as exc:
            run_check(args)
        assert error in str(exc.value)


class TestRecording:
    def test_appends_one_line_per_check_to_the_run_dir(self, tmp_path):
        run_dir = tmp_path / 'results' / 'r1'
        task_vars = {'suite_run_dir': str(run_dir), 'suite_run_id': 'r1'}
        first = run_check({'name': 'a', 'category': 'L1'}, task_vars)
        run_check({'name': 'b', 'category': 'L2', 'that': that('false')}, task_vars)
        records = read_jsonl(str(run_dir / 'checks.jsonl'))
        assert [(r['name'], r['status'], r['run_id']) for r in records] == [('a', 'passed', 'r1'), ('b', 'failed', 'r1')]
        assert records[0] == first['check']
        assert first['record_file'] == str(run_dir / 'checks.jsonl')

    def test_run_dir_and_run_id_are_templated(self, tmp_path):
        task_vars = {'base': str(tmp_path), 'suite_run_id': trust("{{ 'run' ~ 7 }}"),
                     'suite_run_dir': trust('{{ base }}/{{ suite_run_id }}')}
        run_check({'name': 'a', 'category': 'L1'}, task_vars)
        assert read_jsonl(str(tmp_path / 'run7' / 'checks.jsonl'))[0]['run_id'] == 'run7'

    def test_nothing_is_recorded_without_suite_run_dir(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        result = run_check({'name': 'a', 'category': 'L1'})
        assert 'record_file' not in result and result['check']['run_id'] is None
        assert list(tmp_path.iterdir()) == []

    def test_omitted_run_dir_records_nothing(self, tmp_path, monkeypatch):
        # playbooks/validate.yml passes suite_run_dir as `... | default(omit)`.
        monkeypatch.chdir(tmp_path)
        task_vars = {'omit': '__omit_place_holder__test',
                     'suite_run_dir': trust('{{ not_defined | default(omit) }}'),
                     'suite_run_id': trust('{{ not_defined | default(omit) }}')}
        result = run_check({'name': 'a', 'category': 'L1'}, task_vars)
        assert 'record_file' not in result and result['check']['run_id'] is None
        assert list(tmp_path.iterdir()) == []

    def test_unwritable_run_dir_fails_with_the_path(self, tmp_path):
        blocker = tmp_path / 'file'
        blocker.write_text('not a directory')
        with pytest.raises(AnsibleActionFail, match="could not record check 'a' in .*file"):
            run_check({'name': 'a', 'category': 'L1'}, {'suite_run_dir': str(blocker)})


def _append_many(run_dir, writer, count):
    for index in range(count):
        check_action.append_record(run_dir, {'writer': writer, 'index': index, 'padding': 'x' * 3000})


def test_concurrent_appends_never_interleave(tmp_path):
    # Lines longer than a pipe buffer and many writers: the case that breaks buffered writes.
    context = multiprocessing.get_context('fork')
    workers = [context.Process(target=_append_many, args=(str(tmp_path), writer, 200)) for writer in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = read_jsonl(str(tmp_path / 'checks.jsonl'))
    assert len(lines) == 1200
    assert sorted((line['writer'], line['index']) for line in lines) == [
        (writer, index) for writer in range(6) for index in range(200)]


@pytest.mark.skipif(not hasattr(check_action.ActionBase, 'finalize_task_arg'),
                    reason='ansible-core before 2.19 has no task arg finalization hook')
class TestFinalizeTaskArg:
    """On 2.19+ the conditionals must reach run() as written, like assert's."""

    class Engine:
        def resolve_to_container(self, value):
            return [trust('a == 1'), trust('b == 2')]

        def template(self, value):
            return 'templated'

    def test_conditions_are_left_alone(self):
        conditions = that('{{ x }} == 1', 'y')
        assert check_action.ActionModule.finalize_task_arg('that', conditions, self.Engine(), None) is conditions
        assert check_action.ActionModule.finalize_task_arg('that', 'x == 1', self.Engine(), None) == 'x == 1'

    def test_a_whole_template_resolves_to_its_list(self):
        resolved = check_action.ActionModule.finalize_task_arg('that', '{{ my_conditions }}', self.Engine(), None)
        assert resolved == ['a == 1', 'b == 2']

    def test_other_options_are_templated(self):
        assert check_action.ActionModule.finalize_task_arg('fail_msg', '{{ m }}', self.Engine(), None) == 'templated'
