# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the pure record and report functions behind aicluster.lab.suite_report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import suite_report as sr


def record(name='node_booted', host='node1', category='L1', status='passed', **extra):
    data = {
        'run_id': 'r1', 'name': name, 'host': host, 'category': category, 'status': status,
        'message': extra.pop('message', '%s %s' % (name, status)), 'figures': {},
        'time': '2026-01-01T00:00:00.000Z',
    }
    data.update(extra)
    return sr.validate_record(data)


def jsonl(*items):
    return b''.join(json.dumps(item).encode('utf-8') + b'\n' for item in items)


def report_of(records, **kwargs):
    kwargs.setdefault('title', 'Lab report')
    return sr.build_report(records, **kwargs)


class TestFigures:
    def test_numbers_and_numeric_strings_become_numbers(self):
        assert sr.normalize_figures({'boot_s': 12, 'rtt_ms': 0.4, 'gbit_s': ' 9.41 ', 'n': '3'}) == {
            'boot_s': 12, 'gbit_s': 9.41, 'n': 3, 'rtt_ms': 0.4}

    def test_none_is_no_figures(self):
        assert sr.normalize_figures(None) == {}

    @pytest.mark.parametrize('value, shown', [
        ('abc', "'abc'"), ('', "''"), (True, 'True'), (None, 'None'), ([1], '[1]'),
    ])
    def test_error_names_key_and_value(self, value, shown):
        with pytest.raises(ValueError) as exc:
            sr.normalize_figures({'boot_s': value})
        assert str(exc.value) == 'figures.boot_s: %s is not a number' % shown

    @pytest.mark.parametrize('value', [float('nan'), float('inf'), 'nan', '-inf'])
    def test_non_finite_numbers_are_refused(self, value):
        with pytest.raises(ValueError, match='figures.x: .* is not a finite number'):
            sr.normalize_figures({'x': value})

    def test_figures_must_be_a_dict(self):
        with pytest.raises(ValueError, match="figures: expected a dict of name -> number, got 'fast'"):
            sr.normalize_figures('fast')

    def test_figure_names_must_be_text(self):
        with pytest.raises(ValueError, match='figure names must be non-empty strings'):
            sr.normalize_figures({1: 2})


class TestRecords:
    def test_validate_fills_every_field(self):
        result = sr.validate_record({'name': 'a', 'host': 'h', 'category': 'L1', 'status': 'skipped'})
        assert sorted(result) == sorted(sr.RECORD_FIELDS)
        assert result['message'] == '' and result['figures'] == {} and result['check_mode'] is False

    def test_validate_drops_unknown_fields(self):
        result = sr.validate_record({'name': 'a', 'host': 'h', 'category': 'L1', 'status': 'passed', 'extra': 1})
        assert 'extra' not in result

    @pytest.mark.parametrize('change, error', [
        ({'status': 'ok'}, "status: 'ok' is not one of passed, failed, skipped"),
        ({'name': ''}, "name: expected a non-empty string, got ''"),
        ({'host': None}, 'host: expected a non-empty string, got None'),
        ({'message': 5}, 'message: expected a string, got 5'),
        ({'figures': {'x': 'y'}}, "figures.x: 'y' is not a number"),
    ])
    def test_validate_names_the_bad_field(self, change, error):
        data = {'name': 'a', 'host': 'h', 'category': 'L1', 'status': 'passed'}
        data.update(change)
        with pytest.raises(ValueError) as exc:
            sr.validate_record(data)
        assert str(exc.value) == error

    def test_parse_flags_bad_lines_with_their_number_and_keeps_the_rest(self):
        good = {'name': 'a', 'host': 'h', 'category': 'L1', 'status': 'passed'}
        data = (jsonl(good) + b'\n' + b'{"name": \n' + b'[1, 2]\n' + b'\xff\xfe\n'
                + jsonl(dict(good, status='bogus')) + jsonl(dict(good, name='b')))
        records, errors = sr.parse_records(data)
        assert [r['name'] for r in records] == ['a', 'b']
        assert [e['line'] for e in errors] == [3, 4, 5, 6]
        assert 'expected a JSON object, got list' in errors[1]['error']
        assert errors[2]['error'].startswith('not UTF-8')
        assert "'bogus'" in errors[3]['error']

    def test_last_line_without_newline_is_read(self):
        records, errors = sr.parse_records(b'{"name": "a", "host": "h", "category": "L1", "status": "failed"}')
        assert len(records) == 1 and errors == []

    def test_load_missing_file_is_no_records(self, tmp_path):
        assert sr.load_records(str(tmp_path / 'checks.jsonl')) == ([], [])

    def test_load_reads_file(self, tmp_path):
        path = tmp_path / 'checks.jsonl'
        path.write_bytes(jsonl(record()) + b'oops\n')
        records, errors = sr.load_records(str(path))
        assert len(records) == 1 and errors[0]['line'] == 2

    def test_missing_hosts_get_a_failed_no_results_record(self):
        records = [record(host='node1')]
        missing = sr.missing_host_records(records, ['node1', 'node2', 'node2'], 'r1')
        assert [(m['host'], m['name'], m['status'], m['category']) for m in missing] == [
            ('node2', 'no_results', 'failed', 'report')]
        assert missing[0]['run_id'] == 'r1'

    def test_load_errors_become_failed_records(self):
        made = sr.load_error_records([{'line': 7, 'error': 'bad'}], 'r1')
        assert made[0]['status'] == 'failed'
        assert made[0]['message'] == 'checks.jsonl line 7: bad'
        assert made[0]['figures'] == {'line': 7}


class TestOrderAndSummary:
    def test_hosts_sort_naturally_and_categories_in_suite_order(self):
        records = [
            record(host='node10', category='performance'), record(host='node2', category='zeta'),
            record(host='node10', category='L1'), record(host='node2', category='L1'),
            record(host='node1', category='alpha'), record(host='x', category='report', status='failed'),
        ]
        ordered = [(r['category'], r['host']) for r in sr.sort_records(records)]
        assert ordered == [('report', 'x'), ('L1', 'node2'), ('L1', 'node10'), ('performance', 'node10'),
                           ('alpha', 'node1'), ('zeta', 'node2')]

    def test_summary_counts_per_status_category_and_host(self):
        records = [
            record('a', 'n1', 'L1', 'passed'), record('b', 'n1', 'L2', 'failed'),
            record('c', 'n2', 'L2', 'skipped'), record('d', 'n2', 'L2', 'passed'),
        ]
        summary = sr.summarise(records)
        assert (summary['total'], summary['passed'], summary['failed'], summary['skipped']) == (4, 2, 1, 1)
        assert summary['by_category'] == {
            'L1': {'passed': 1, 'failed': 0, 'skipped': 0, 'total': 1},
            'L2': {'passed': 1, 'failed': 1, 'skipped': 1, 'total': 3},
        }
        assert summary['by_host']['n2'] == {'passed': 1, 'failed': 0, 'skipped': 1, 'total': 2}

    def test_failed_checks_lists_host_and_name(self):
        records = [record('a', status='failed', message='boom'), record('b')]
        assert sr.failed_checks(records) == [{'host': 'node1', 'name': 'a', 'category': 'L1', 'message': 'boom'}]

    def test_run_id_is_the_one_most_records_carry(self):
        records = [record(run_id='x'), record(run_id='y'), record(run_id='y'), record(run_id=None)]
        assert sr.run_id_of(records, 'dir') == 'y'
        assert sr.run_id_of([record(run_id=None)], 'dir') == 'dir'

    def test_report_does_not_depend_on_record_order(self):
        records = [record('a', 'n2'), record('b', 'n1', status='failed'), record('c', 'n1', 'L2', 'skipped')]
        first = sr.render_all(report_of(records, metadata={'b': 1, 'a': [2]}))
        second = sr.render_all(report_of(list(reversed(records)), metadata={'a': [2], 'b': 1}))
        assert first['json'] == second['json']
        assert first['junit'] == second['junit']


class TestJson:
    def test_holds_metadata_summary_and_checks(self):
        records = [record(figures={'boot_s': 1.5}, time='2026-01-01T00:00:02Z'),
                   record('other', time='2026-01-01T00:00:01Z')]
        report = report_of(records, run_dir='/r', metadata={'profile': 'small'},
                           load_errors=[{'line': 3, 'error': 'x'}])
        document = json.loads(sr.render_json(report))
        assert document['schema_version'] == 1
        assert document['run_id'] == 'r1' and document['run_dir'] == '/r'
        assert document['metadata'] == {'profile': 'small'}
        assert document['summary']['total'] == 2
        assert document['first_check'] == '2026-01-01T00:00:01Z'
        assert document['last_check'] == '2026-01-01T00:00:02Z'
        assert document['load_errors'] == [{'line': 3, 'error': 'x'}]
        assert document['checks'][0]['figures'] == {'boot_s': 1.5}


class TestJunit:
    def render(self, records):
        return ET.fromstring(sr.render_junit(report_of(records)).encode('utf-8'))

    def test_one_testsuite_per_category_with_counts(self):
        root = self.render([record('a', category='L1'), record('b', category='L2', status='failed'),
                            record('c', category='L2', status='skipped')])
        assert root.tag == 'testsuites'
        assert (root.get('tests'), root.get('failures'), root.get('skipped')) == ('3', '1', '1')
        assert [(s.get('name'), s.get('tests'), s.get('failures'), s.get('skipped')) for s in root] == [
            ('L1', '1', '0', '0'), ('L2', '2', '1', '1')]

    def test_testcase_name_classname_failure_and_skip(self):
        root = self.render([
            record('l2_trunk_ping', 'node2', 'L2', 'failed', message='no reply from node1'),
            record('rdma_latency', 'node2', 'performance', 'skipped', message='no RDMA NIC'),
        ])
        failed = root.find(".//testcase[@name='node2: l2_trunk_ping']")
        assert failed.get('classname') == 'aicluster.lab.L2'
        assert failed.find('failure').get('message') == 'no reply from node1'
        skipped = root.find(".//testcase[@name='node2: rdma_latency']")
        assert skipped.find('skipped').get('message') == 'no RDMA NIC'
        assert skipped.find('failure') is None

    def test_figures_are_properties_and_in_system_out(self):
        root = self.render([record(figures={'boot_s': 12.3000001, 'n': 3})])
        case = root.find('.//testcase')
        assert {p.get('name'): p.get('value') for p in case.find('properties')} == {'boot_s': '12.3', 'n': '3'}
        assert 'figure boot_s = 12.3' in case.find('system-out').text

    def test_control_characters_do_not_break_the_xml(self):
        root = self.render([record(status='failed', message='red \x1b[31mFAIL\x00 & <done>')])
        assert root.find('.//failure').get('message') == 'red \ufffd[31mFAIL\ufffd & <done>'

    def test_no_records_is_still_valid(self):
        root = self.render([])
        assert root.get('tests') == '0' and list(root) == []


class TestMarkdown:
    def test_counts_table_then_failed_first_per_category(self):
        text = sr.render_markdown(report_of([
            record('a_ok', 'node1', 'L2'), record('z_bad', 'node2', 'L2', 'failed', message='lost'),
            record('boot', 'node1', 'L1', figures={'boot_s': 4}), record('skip', 'node1', 'L2', 'skipped'),
        ], metadata={'profile': 'small'}))
        lines = text.splitlines()
        assert lines[0] == '# Lab report'
        assert '- Result: **FAILED**: 1 failed, 2 passed, 1 skipped, 4 checks in all' in lines
        assert '- profile: small' in lines
        assert '| L2 | 1 | 1 | 1 | 3 |' in lines
        assert '| **all** | 2 | 1 | 1 | 4 |' in lines
        assert text.index('## L1') < text.index('## L2')
        l2 = lines[lines.index('## L2'):]
        assert l2[4] == '| node2 | z_bad | **FAILED** |  | lost |'
        assert '| node1 | boot | passed | boot_s=4 | boot passed |' in lines

    def test_cells_are_escaped(self):
        text = sr.render_markdown(report_of([record(status='failed', message='a | b\nc')]))
        assert '| a \\| b<br>c |' in text

    def test_passed_run_says_so(self):
        assert '- Result: **PASSED**' in sr.render_markdown(report_of([record()]))
