# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the aicluster.lab.suite_report module, run through AnsibleModule itself."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import xml.etree.ElementTree as ET

import pytest

from ansible.module_utils import basic

from ansible_collections.aicluster.lab.plugins.modules import suite_report


@contextlib.contextmanager
def module_args(args):
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core before 2.19 reads the arguments from this global
        original = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode('utf-8')
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = original
    else:
        with patch_module_args(args):
            yield


def call_module(capsys, **args):
    """Run the module's main() and return the result it printed, with 'failed' set on failure."""
    with module_args(args):
        with pytest.raises(SystemExit) as exc:
            suite_report.main()
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert bool(exc.value.code) == bool(result.get('failed'))
    # Warnings are part of the result, except on ansible-core 2.19+ once controller code
    # has been imported (other tests do): then they are displayed on stderr instead.
    result['_seen_warnings'] = ' '.join((json.dumps(result.get('warnings', [])) + captured.err).split())
    result['failed'] = bool(result.get('failed'))
    return result


def write_records(run_dir, *records, extra=b''):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(dict({'run_id': 'r1', 'category': 'L1', 'message': '', 'figures': {}}, **r)) for r in records]
    (run_dir / 'checks.jsonl').write_bytes(('\n'.join(lines) + '\n').encode('utf-8') + extra)


PASSED = {'name': 'node_booted', 'host': 'node1', 'status': 'passed', 'figures': {'boot_s': 10.5}}
FAILED = {'name': 'l2_trunk_ping', 'host': 'node2', 'category': 'L2', 'status': 'failed', 'message': 'no reply'}
SKIPPED = {'name': 'rdma_latency', 'host': 'node1', 'category': 'performance', 'status': 'skipped',
           'message': 'no RDMA NIC'}


def test_writes_the_three_files(tmp_path, capsys):
    run_dir = tmp_path / 'r1'
    write_records(run_dir, PASSED, FAILED, SKIPPED)
    result = call_module(capsys, run_dir=str(run_dir), title='Lab', metadata={'profile': 'small'})
    assert not result['failed'] and result['changed'] is True
    assert result['files'] == {
        'json': str(run_dir / 'report.json'), 'junit': str(run_dir / 'junit.xml'),
        'markdown': str(run_dir / 'summary.md')}
    assert (result['summary']['passed'], result['summary']['failed'], result['summary']['skipped']) == (1, 1, 1)
    assert result['failed_checks'] == [{'host': 'node2', 'name': 'l2_trunk_ping', 'category': 'L2',
                                        'message': 'no reply'}]
    assert result['run_id'] == 'r1'
    assert result['msg'].startswith('3 check(s): 1 passed, 1 failed, 1 skipped; report: ')
    assert result['msg'].endswith('; failed: node2: l2_trunk_ping')

    report = json.loads((run_dir / 'report.json').read_text())
    assert report['title'] == 'Lab' and report['metadata'] == {'profile': 'small'}
    assert [c['name'] for c in report['checks']] == ['node_booted', 'l2_trunk_ping', 'rdma_latency']
    junit = ET.parse(str(run_dir / 'junit.xml')).getroot()
    assert junit.find(".//testcase[@name='node2: l2_trunk_ping']/failure").get('message') == 'no reply'
    assert '| node2 | l2_trunk_ping | **FAILED** |  | no reply |' in (run_dir / 'summary.md').read_text()


def test_files_are_readable_and_no_temp_files_are_left(tmp_path, capsys):
    write_records(tmp_path, PASSED)
    call_module(capsys, run_dir=str(tmp_path))
    assert sorted(os.listdir(str(tmp_path))) == ['checks.jsonl', 'junit.xml', 'report.json', 'summary.md']
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(str(tmp_path / 'report.json')).st_mode) == 0o666 & ~umask


def test_second_run_changes_nothing(tmp_path, capsys):
    write_records(tmp_path, PASSED, FAILED)
    call_module(capsys, run_dir=str(tmp_path))
    before = (tmp_path / 'report.json').stat().st_mtime_ns
    result = call_module(capsys, run_dir=str(tmp_path))
    assert result['changed'] is False
    assert (tmp_path / 'report.json').stat().st_mtime_ns == before


def test_new_record_changes_the_report(tmp_path, capsys):
    write_records(tmp_path, PASSED)
    call_module(capsys, run_dir=str(tmp_path))
    write_records(tmp_path, PASSED, SKIPPED)
    result = call_module(capsys, run_dir=str(tmp_path))
    assert result['changed'] is True and result['summary']['total'] == 2


def test_check_mode_renders_but_writes_nothing(tmp_path, capsys):
    write_records(tmp_path, PASSED, FAILED)
    result = call_module(capsys, run_dir=str(tmp_path), fail_on_failed_checks=True, _ansible_check_mode=True)
    assert result['failed'] and result['changed'] is True
    assert result['summary']['total'] == 2
    assert os.listdir(str(tmp_path)) == ['checks.jsonl']


def test_check_mode_after_a_real_run_reports_no_change(tmp_path, capsys):
    write_records(tmp_path, PASSED)
    call_module(capsys, run_dir=str(tmp_path))
    result = call_module(capsys, run_dir=str(tmp_path), _ansible_check_mode=True)
    assert result['changed'] is False


def test_expected_host_without_records_is_a_failed_check(tmp_path, capsys):
    write_records(tmp_path, PASSED, FAILED)
    result = call_module(capsys, run_dir=str(tmp_path), expected_hosts=['node1', 'node2', 'node3'])
    assert result['summary']['failed'] == 2
    assert {'host': 'node3', 'name': 'no_results', 'category': 'report'}.items() <= result['failed_checks'][0].items()
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['checks'][0]['run_id'] == 'r1'


def test_missing_records_file_with_expected_hosts(tmp_path, capsys):
    run_dir = tmp_path / 'never-ran'
    result = call_module(capsys, run_dir=str(run_dir), expected_hosts=['node1'])
    assert result['summary']['failed'] == 1 and result['run_id'] == 'never-ran'
    assert (run_dir / 'junit.xml').exists()


def test_unreadable_lines_are_reported_and_warned_about(tmp_path, capsys):
    write_records(tmp_path, PASSED, extra=b'{"truncated": \n')
    result = call_module(capsys, run_dir=str(tmp_path))
    assert result['load_errors'][0]['line'] == 2
    assert result['failed_checks'][0]['name'] == 'unreadable_record'
    assert '1 line(s) of %s could not be read' % (tmp_path / 'checks.jsonl') in result['_seen_warnings']


def test_fail_on_failed_checks_fails_after_writing(tmp_path, capsys):
    write_records(tmp_path, PASSED, FAILED)
    result = call_module(capsys, run_dir=str(tmp_path), fail_on_failed_checks=True)
    assert result['failed'] and 'node2: l2_trunk_ping' in result['msg']
    assert (tmp_path / 'summary.md').exists()


def test_fail_on_failed_checks_passes_without_failures(tmp_path, capsys):
    write_records(tmp_path, PASSED, SKIPPED)
    result = call_module(capsys, run_dir=str(tmp_path), fail_on_failed_checks=True)
    assert not result['failed'] and result['failed_checks'] == []


def test_long_failure_lists_are_shortened_in_msg(tmp_path, capsys):
    write_records(tmp_path, *[dict(FAILED, host='node%d' % index) for index in range(15)])
    result = call_module(capsys, run_dir=str(tmp_path))
    assert result['msg'].endswith('and 5 more') and len(result['failed_checks']) == 15


def test_run_dir_that_cannot_be_used_fails_clearly(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    result = call_module(capsys, run_dir=str(blocker / 'run'))
    assert result['failed'] and result['msg'].startswith('could not read the check records of %s: ' % (blocker / 'run'))


def test_report_file_that_cannot_be_replaced_fails_clearly(tmp_path, capsys):
    write_records(tmp_path, PASSED)
    (tmp_path / 'report.json').mkdir()
    result = call_module(capsys, run_dir=str(tmp_path))
    assert result['failed'] and result['msg'].startswith('could not write the report in %s: ' % tmp_path)
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith('.')]


def test_bad_option_is_named(tmp_path, capsys):
    result = call_module(capsys, run_dir=str(tmp_path), expected_hosts='node1', metadata='nope')
    assert result['failed'] and 'metadata' in result['msg']
