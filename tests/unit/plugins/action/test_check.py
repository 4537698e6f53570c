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


def record_of(result, index=0):
    return result['checks'][index]


class TestBatch:
    """The checks option: each entry evaluated and recorded as a task of its own would be."""

    def test_each_entry_is_evaluated_as_the_single_form_would(self):
        entries = [
            {'name': 'node_booted', 'category': 'L1', 'that': that('x == 1', 'x in [1, 2]'), 'figures': {'boot_s': '12.5'}},
            {'name': 'ping', 'category': 'L2', 'that': that('x == 1', 'x == 2'), 'fail_msg': 'node2 lost'},
            {'name': 'rdma', 'category': 'performance', 'skip_reason': 'no RDMA NIC', 'that': that('missing == 1'),
             'figures': {'latency_us': 'n/a'}},
            {'name': 'neg', 'category': 'network', 'that': that('false'), 'fail_msg': 'VLAN 201 seen',
             'expect_failure': 'VLAN 201'},
            {'name': 'iperf3', 'category': 'performance', 'figures': {'gbit_s': 9.41}, 'description': 'proves it'},
        ]
        result = run_check({'checks': entries}, {'x': 1})
        singles = [run_check(entry, {'x': 1}) for entry in entries]
        ignore = ('time',)
        assert [{k: v for k, v in r.items() if k not in ignore} for r in result['checks']] == [
            {k: v for k, v in single['check'].items() if k not in ignore} for single in singles]
        assert [r['status'] for r in result['checks']] == ['passed', 'failed', 'skipped', 'passed', 'passed']

    def test_the_task_fails_when_a_check_failed_and_says_which(self):
        result = run_check({'checks': [{'name': 'a', 'category': 'L1', 'that': [True]},
                                       {'name': 'b', 'category': 'L2', 'that': [False], 'fail_msg': 'b broke'},
                                       {'name': 'c', 'category': 'L2', 'skip_reason': 'not here'}]})
        assert result['failed'] is True and not result.get('skipped') and result['changed'] is False
        assert result['msg'].splitlines() == ['3 checks on node1: 1 passed, 1 failed, 1 skipped',
                                              'FAILED L2/b on node1: b broke']
        assert result['_ansible_verbose_always'] is True
        assert 'check' not in result and 'assertion' not in result

    def test_passed_and_skipped_checks_pass_the_task(self):
        result = run_check({'checks': [{'name': 'a', 'category': 'L1', 'that': [True]},
                                       {'name': 'c', 'category': 'L2', 'skip_reason': 'not here'}]})
        assert not result.get('failed') and not result.get('skipped')
        assert result['msg'] == '2 checks on node1: 1 passed, 0 failed, 1 skipped'

    def test_the_task_is_skipped_only_when_every_check_is(self):
        result = run_check({'checks': [{'name': 'a', 'category': 'L1', 'skip_reason': 'no GPU'},
                                       {'name': 'b', 'category': 'L1', 'skip_reason': 'no GPU'},
                                       {'name': 'c', 'category': 'L1', 'skip_reason': 'no driver'}]})
        assert result['skipped'] is True and not result.get('failed')
        assert result['skip_reason'] == 'no GPU; no driver'

    def test_an_empty_batch_records_nothing_and_is_skipped(self, tmp_path):
        result = run_check({'checks': []}, {'suite_run_dir': str(tmp_path / 'r')})
        assert result['skipped'] is True and result['checks'] == [] and 'record_file' not in result
        assert not (tmp_path / 'r').exists()

    def test_a_verdict_record_through_check_batch(self):
        # What the roles pass: records of a verdict filter, `passed` a boolean.
        from ansible_collections.aicluster.lab.plugins.filter.check import check_batch
        records = [
            {'name': 'gpu_device', 'category': 'hardware', 'description': 'a GPU', 'passed': True, 'message': '1 GPU',
             'figures': {'gpus': 1}},
            {'name': 'gpu_driver', 'category': 'hardware', 'description': 'its driver', 'passed': False,
             'message': 'no driver', 'figures': {}},
            {'name': 'gpu_reboot', 'category': 'hardware', 'description': 'a reboot', 'passed': True,
             'message': 'no reboot needed', 'figures': {}, 'skip_reason': 'no reboot needed'},
        ]
        result = run_check({'checks': check_batch(records, '_after')})
        assert [(r['name'], r['status'], r['message'], r['condition']) for r in result['checks']] == [
            ('gpu_device_after', 'passed', '1 GPU', None),
            ('gpu_driver_after', 'failed', 'no driver', 'False'),
            ('gpu_reboot_after', 'skipped', 'no reboot needed', None)]
        assert result['checks'][0]['figures'] == {'gpus': 1} and result['checks'][1]['description'] == 'its driver'
        # The same record through the single form, as the roles' loops passed it.
        single = run_check({'name': 'gpu_driver_after', 'category': 'hardware', 'description': 'its driver',
                            'that': trust('item.passed'), 'figures': {}, 'success_msg': 'no driver',
                            'fail_msg': 'no driver'}, {'item': records[1]})
        assert single['check']['message'] == 'no driver' and single['check']['status'] == 'failed'

    def test_a_condition_that_cannot_be_evaluated_fails_its_check_only(self):
        result = run_check({'checks': [{'name': 'a', 'category': 'L1', 'that': that('missing_var == 1')},
                                       {'name': 'b', 'category': 'L1', 'that': that('x == 1')}]}, {'x': 1})
        assert record_of(result, 0)['status'] == 'failed'
        assert record_of(result, 0)['message'].startswith("could not evaluate 'missing_var == 1': ")
        assert record_of(result, 1)['status'] == 'passed'

    def test_a_single_condition_string_is_not_split_on_commas(self):
        result = run_check({'checks': [{'name': 'c', 'category': 'L1', 'that': trust('x in [1, 2]')}]}, {'x': 2})
        assert record_of(result)['status'] == 'passed'

    def test_check_mode_is_recorded(self):
        result = run_check({'checks': [{'name': 'c', 'category': 'L1'}]}, check_mode=True)
        assert record_of(result)['check_mode'] is True and result['changed'] is False


class TestBatchBadInput:
    @pytest.mark.parametrize('args, error', [
        ({'checks': 'x'}, "checks: must be a list of dicts, one per check, got 'x'"),
        ({'checks': [{'name': 'a', 'category': 'L1'}, 5]},
         'checks[1]: must be a dict with the options of one check, got 5'),
        ({'checks': [{'name': 'a', 'category': 'L1'}, {'name': 'b'}]},
         'checks[1]: missing required arguments: category'),
        ({'checks': [{'category': 'L1'}]}, 'checks[0]: missing required arguments: name'),
        ({'checks': [{'name': ' ', 'category': 'L1'}]}, "checks[0].name: must be a non-empty string, got ' '"),
        ({'checks': [{'name': 'a', 'category': ''}]}, "checks[0].category: must be a non-empty string, got ''"),
        ({'checks': [{'name': 'a', 'category': 'L1'}, {'name': 'c', 'category': 'L1', 'that': [trust('x'), 5]}]},
         'checks[1].that[1]: 5 is not a conditional (expected a string or boolean)'),
        ({'checks': [{'name': 'c', 'category': 'L1', 'figures': 'fast'}]},
         "checks[0]: argument 'figures' is of type"),
        ({'checks': [{'name': 'c', 'category': 'L1', 'bogus': 1}]}, 'checks[0]: unsupported option(s) bogus.'),
        ({'checks': [], 'name': 'c', 'fail_msg': 'x'},
         'checks: mutually exclusive with fail_msg, name; give each check its options in its entry'),
    ])
    def test_error_names_the_entry_and_the_option(self, args, error):
        with pytest.raises(AnsibleActionFail) as exc:
            run_check(args)
        assert error in str(exc.value)

    def test_nothing_is_recorded_when_an_entry_is_not_valid(self, tmp_path):
        with pytest.raises(AnsibleActionFail):
            run_check({'checks': [{'name': 'a', 'category': 'L1'}, {'name': 'b'}]},
                      {'suite_run_dir': str(tmp_path)})
        assert list(tmp_path.iterdir()) == []


class TestBatchRecording:
    def test_one_line_per_check_in_order(self, tmp_path):
        run_dir = tmp_path / 'results' / 'r1'
        task_vars = {'suite_run_dir': str(run_dir), 'suite_run_id': 'r1'}
        run_check({'name': 'first', 'category': 'L1'}, task_vars)
        result = run_check({'checks': [{'name': 'a', 'category': 'L1'},
                                       {'name': 'b', 'category': 'L2', 'that': that('false')},
                                       {'name': 'c', 'category': 'L2', 'skip_reason': 'later'}]}, task_vars)
        records = read_jsonl(str(run_dir / 'checks.jsonl'))
        assert [(r['name'], r['status'], r['run_id']) for r in records] == [
            ('first', 'passed', 'r1'), ('a', 'passed', 'r1'), ('b', 'failed', 'r1'), ('c', 'skipped', 'r1')]
        assert records[1:] == result['checks']
        assert result['record_file'] == str(run_dir / 'checks.jsonl')

    def test_each_record_is_one_append(self, tmp_path, monkeypatch):
        appended = []
        real = check_action.append_record
        monkeypatch.setattr(check_action, 'append_record', lambda run_dir, record: appended.append(record['name'])
                            or real(run_dir, record))
        run_check({'checks': [{'name': 'a', 'category': 'L1'}, {'name': 'b', 'category': 'L1'}]},
                  {'suite_run_dir': str(tmp_path)})
        assert appended == ['a', 'b']

    def test_nothing_is_recorded_without_suite_run_dir(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        result = run_check({'checks': [{'name': 'a', 'category': 'L1'}]})
        assert 'record_file' not in result and record_of(result)['run_id'] is None
        assert list(tmp_path.iterdir()) == []

    def test_unwritable_run_dir_fails_with_the_check_and_the_path(self, tmp_path):
        blocker = tmp_path / 'file'
        blocker.write_text('not a directory')
        with pytest.raises(AnsibleActionFail, match="could not record check 'a' in .*file"):
            run_check({'checks': [{'name': 'a', 'category': 'L1'}]}, {'suite_run_dir': str(blocker)})


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


@pytest.mark.skipif(not hasattr(check_action.ActionBase, 'finalize_task_arg'),
                    reason='ansible-core before 2.19 has no task arg finalization hook')
class TestFinalizeBatch:
    """Each entry of checks is templated as the single form's options are: all but `that`."""

    @staticmethod
    def finalize(value, variables):
        templar = Templar(loader=DataLoader(), variables=variables)
        return check_action.ActionModule.finalize_task_arg('checks', value, templar._engine, None)

    def test_an_entry_is_templated_but_its_conditions(self):
        conditions = that('x == 1', "x in [1, 2]")
        finalized = self.finalize([{'name': trust('c_{{ x }}'), 'category': 'L1', 'that': conditions,
                                    'figures': {'n': trust('{{ x }}')}, 'fail_msg': trust('{{ m | default(omit) }}')}],
                                  {'x': 1})
        assert finalized == [{'name': 'c_1', 'category': 'L1', 'that': ['x == 1', 'x in [1, 2]'], 'figures': {'n': 1}}]
        assert finalized[0]['that'] is conditions

    def test_a_whole_template_resolves_to_the_entries(self):
        records = [{'name': 'a', 'category': 'L1', 'that': True}, {'name': 'b', 'category': 'L1', 'that': False}]
        assert self.finalize(trust('{{ batch }}'), {'batch': records}) == records

    def test_a_condition_list_held_by_a_variable_resolves_to_its_list(self):
        finalized = self.finalize([{'name': 'a', 'category': 'L1', 'that': trust('{{ conds }}')}],
                                  {'conds': that('x == 1')})
        assert finalized[0]['that'] == ['x == 1']
