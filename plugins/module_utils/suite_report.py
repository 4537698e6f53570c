# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Records of validation checks and the reports rendered from them.

Apart from load_records() reading its file, everything here is a pure function of its
arguments (no clock, no environment), so the same checks.jsonl always renders
byte-identical reports: the report module relies on that to tell whether a report
changed.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

SCHEMA_VERSION = 1
RECORDS_FILE = 'checks.jsonl'
REPORT_FILES = {
    'json': 'report.json',
    'junit': 'junit.xml',
    'markdown': 'summary.md',
}

STATUSES = ('passed', 'failed', 'skipped')
RECORD_FIELDS = (
    'run_id', 'name', 'host', 'category', 'status', 'message', 'figures',
    'description', 'condition', 'check_mode', 'time',
)

# The order the suite runs its stages in, so a report reads like the run; categories
# added later that are not listed here follow in alphabetical order. 'report' holds
# the records this module makes up itself (missing hosts, unreadable lines): problems
# with the run come before anything measured in it.
CATEGORY_ORDER = ('report', 'L1', 'L2', 'network', 'rdma', 'hardware', 'failover', 'performance', 'chaos')
REPORT_CATEGORY = 'report'

# XML 1.0 cannot carry most control characters, not even escaped; command output that
# ends up in a message (colour codes, NUL) would otherwise make junit.xml unparseable.
_XML_ILLEGAL = re.compile('[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')


# Records -----------------------------------------------------------------------

def _describe(value):
    """Quote a bad value for an error message the way YAML users wrote it."""
    return repr(value) if isinstance(value, str) else str(value)


def to_number(value, label):
    """Return value as an int or float, or raise ValueError naming label.

    Numeric strings are accepted because ansible-core before 2.19 may hand a templated
    number over as text. Booleans are refused although Python counts them as ints: a
    figure of True is a mistake, not a measurement.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError('%s: %s is not a number' % (label, _describe(value)))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        number = float(value)
    elif isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError('%s: %s is not a number' % (label, _describe(value)))
    else:
        raise ValueError('%s: %s is not a number' % (label, _describe(value)))
    # JSON has no NaN or Infinity; a report that other tools cannot parse is worse
    # than a check that fails to record.
    if math.isnan(number) or math.isinf(number):
        raise ValueError('%s: %s is not a finite number' % (label, _describe(value)))
    return number


def normalize_figures(figures, option='figures'):
    """Return figures as a plain dict of name -> number, or raise ValueError."""
    if figures is None:
        return {}
    if not isinstance(figures, dict):
        raise ValueError('%s: expected a dict of name -> number, got %s' % (option, _describe(figures)))
    result = {}
    for key in sorted(figures, key=str):
        if not isinstance(key, str) or not key.strip():
            raise ValueError('%s: figure names must be non-empty strings, got %s' % (option, _describe(key)))
        result[str(key)] = to_number(figures[key], '%s.%s' % (option, key))
    return result


def _required_text(record, key):
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError('%s: expected a non-empty string, got %s' % (key, _describe(value)))
    return str(value)


def _optional_text(record, key):
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError('%s: expected a string, got %s' % (key, _describe(value)))
    return str(value)


def validate_record(record):
    """Return a record with every field of RECORD_FIELDS, or raise ValueError.

    Fields written by older or newer versions of the check plugin that this version
    does not know are dropped, so the report schema stays what the docs say.
    """
    if not isinstance(record, dict):
        raise ValueError('expected a JSON object, got %s' % type(record).__name__)
    status = record.get('status')
    if status not in STATUSES:
        raise ValueError('status: %s is not one of %s' % (_describe(status), ', '.join(STATUSES)))
    return {
        'run_id': _optional_text(record, 'run_id'),
        'name': _required_text(record, 'name'),
        'host': _required_text(record, 'host'),
        'category': _required_text(record, 'category'),
        'status': status,
        'message': _optional_text(record, 'message') or '',
        'figures': normalize_figures(record.get('figures')),
        'description': _optional_text(record, 'description'),
        'condition': _optional_text(record, 'condition'),
        'check_mode': bool(record.get('check_mode', False)),
        'time': _optional_text(record, 'time'),
    }


def parse_records(data):
    """Parse the bytes of a checks.jsonl file.

    Returns (records, errors); errors is a list of {'line': n, 'error': text} for the
    lines that could not be used, so one bad line never hides the others.
    """
    records = []
    errors = []
    for number, raw in enumerate(data.split(b'\n'), start=1):
        if not raw.strip():
            continue
        try:
            record = validate_record(json.loads(raw.decode('utf-8')))
        except UnicodeDecodeError as exc:
            errors.append({'line': number, 'error': 'not UTF-8: %s' % exc})
        except ValueError as exc:
            # json.JSONDecodeError is a ValueError too, so this covers syntax and schema.
            errors.append({'line': number, 'error': str(exc)})
        else:
            records.append(record)
    return records, errors


def load_records(path):
    """Read records from a checks.jsonl path; a missing file holds no records."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except FileNotFoundError:
        return [], []
    return parse_records(data)


def _report_record(host, name, message, run_id, figures=None):
    return validate_record({
        'run_id': run_id, 'name': name, 'host': host, 'category': REPORT_CATEGORY,
        'status': 'failed', 'message': message, 'figures': figures or {},
    })


def missing_host_records(records, expected_hosts, run_id=None):
    """Return a failed 'no_results' record for each expected host without records.

    A host that crashed or became unreachable records nothing; without this it would
    silently vanish from a report that then looks all green.
    """
    seen = set(record['host'] for record in records)
    missing = []
    for host in expected_hosts or []:
        if host not in seen:
            seen.add(host)
            missing.append(_report_record(
                host, 'no_results',
                'no check recorded a result for this host: it was unreachable, failed '
                'before its checks ran, or its play never ran',
                run_id))
    return missing


def load_error_records(errors, run_id=None, host='controller'):
    """Turn unreadable checks.jsonl lines into failed records so they are counted."""
    return [
        _report_record(host, 'unreadable_record',
                       '%s line %d: %s' % (RECORDS_FILE, error['line'], error['error']),
                       run_id, {'line': error['line']})
        for error in errors
    ]


# Ordering --------------------------------------------------------------------------

def natural_key(text):
    """Sort key that puts node2 before node10."""
    return tuple(int(part) if part.isdecimal() else part for part in re.split(r'(\d+)', text))


def category_key(category):
    if category in CATEGORY_ORDER:
        return (0, CATEGORY_ORDER.index(category), '')
    return (1, 0, category)


def record_key(record):
    return (
        category_key(record['category']),
        natural_key(record['host']),
        natural_key(record['name']),
        record['time'] or '',
        record['message'],
    )


def sort_records(records):
    return sorted(records, key=record_key)


# Summary ---------------------------------------------------------------------------

def _empty_counts():
    counts = dict((status, 0) for status in STATUSES)
    counts['total'] = 0
    return counts


def _count_into(counts, status):
    counts[status] += 1
    counts['total'] += 1


def summarise(records):
    """Count records per status overall, per category and per host."""
    total = _empty_counts()
    by_category = {}
    by_host = {}
    for record in records:
        _count_into(total, record['status'])
        _count_into(by_category.setdefault(record['category'], _empty_counts()), record['status'])
        _count_into(by_host.setdefault(record['host'], _empty_counts()), record['status'])
    summary = dict(total)
    summary['by_category'] = dict((key, by_category[key]) for key in sorted(by_category, key=category_key))
    summary['by_host'] = dict((key, by_host[key]) for key in sorted(by_host, key=natural_key))
    return summary


def failed_checks(records):
    return [
        {'host': record['host'], 'name': record['name'], 'category': record['category'],
         'message': record['message']}
        for record in sort_records(records) if record['status'] == 'failed'
    ]


def run_id_of(records, fallback=None):
    """The run id the checks agree on most, else fallback (the run directory's name)."""
    counts = {}
    for record in records:
        if record['run_id']:
            counts[record['run_id']] = counts.get(record['run_id'], 0) + 1
    if not counts:
        return fallback
    return sorted(counts, key=lambda run_id: (-counts[run_id], run_id))[0]


def _sorted_keys(value):
    # Metadata comes from the play in whatever order its author wrote it; sorting keeps
    # report.json identical across runs that differ only in that order.
    if isinstance(value, dict):
        return dict((key, _sorted_keys(value[key])) for key in sorted(value, key=str))
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def build_report(records, title, run_dir=None, metadata=None, load_errors=None, fallback_run_id=None):
    """Assemble the report document that all three renderings are made from."""
    records = sort_records(records)
    times = sorted(record['time'] for record in records if record['time'])
    return {
        'schema_version': SCHEMA_VERSION,
        'title': title,
        'run_id': run_id_of(records, fallback_run_id),
        'run_dir': run_dir,
        'first_check': times[0] if times else None,
        'last_check': times[-1] if times else None,
        'metadata': _sorted_keys(metadata or {}),
        'summary': summarise(records),
        'load_errors': list(load_errors or []),
        'checks': records,
    }


# Rendering -------------------------------------------------------------------------

def format_number(value):
    """Short, stable text for a figure: 0.30000000000000004 reads as 0.3."""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def format_figures(figures, separator=', '):
    return separator.join('%s=%s' % (key, format_number(figures[key])) for key in sorted(figures))


def render_json(report):
    return json.dumps(report, indent=2, ensure_ascii=False) + '\n'


def _xml_text(value):
    return _XML_ILLEGAL.sub('\ufffd', '%s' % value)


def _indent(element, level=0):
    """Pretty-print in place (ElementTree.indent needs Python 3.9)."""
    padding = '\n' + '  ' * level
    children = list(element)
    if children:
        if not (element.text or '').strip():
            element.text = padding + '  '
        for child in children:
            _indent(child, level + 1)
        if not (children[-1].tail or '').strip():
            children[-1].tail = padding
    if level and not (element.tail or '').strip():
        element.tail = padding


def _system_out(record):
    lines = []
    if record['description']:
        lines.append(record['description'])
    lines.append('status: %s' % record['status'])
    if record['message']:
        lines.append('message: %s' % record['message'])
    if record['condition']:
        lines.append('condition: %s' % record['condition'])
    for key in sorted(record['figures']):
        lines.append('figure %s = %s' % (key, format_number(record['figures'][key])))
    return '\n'.join(lines)


def _testcase(parent, record):
    case = ET.SubElement(parent, 'testcase', {
        'name': _xml_text('%s: %s' % (record['host'], record['name'])),
        'classname': _xml_text('aicluster.lab.%s' % record['category']),
    })
    if record['figures']:
        properties = ET.SubElement(case, 'properties')
        for key in sorted(record['figures']):
            ET.SubElement(properties, 'property', {
                'name': _xml_text(key), 'value': format_number(record['figures'][key]),
            })
    if record['status'] == 'failed':
        failure = ET.SubElement(case, 'failure', {'message': _xml_text(record['message']), 'type': 'check_failed'})
        failure.text = _xml_text(record['message'])
    elif record['status'] == 'skipped':
        ET.SubElement(case, 'skipped', {'message': _xml_text(record['message'])})
    ET.SubElement(case, 'system-out').text = _xml_text(_system_out(record))


def _suite_attributes(name, counts):
    return {
        'name': _xml_text(name),
        'tests': str(counts['total']),
        'failures': str(counts['failed']),
        'errors': '0',
        'skipped': str(counts['skipped']),
    }


def render_junit(report):
    """JUnit XML with one testsuite per category; raises ValueError if it would not parse."""
    summary = report['summary']
    root = ET.Element('testsuites', _suite_attributes(report['title'], summary))
    for category, counts in summary['by_category'].items():
        suite = ET.SubElement(root, 'testsuite', _suite_attributes(category, counts))
        for record in report['checks']:
            if record['category'] == category:
                _testcase(suite, record)
    _indent(root)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding='unicode') + '\n'
    # CI systems reject the whole file on one bad byte; fail here, where the cause is known.
    try:
        ET.fromstring(text.encode('utf-8'))
    except ET.ParseError as exc:
        raise ValueError('rendered junit.xml does not parse: %s' % exc)
    return text


def _md_cell(value):
    """Escape text for one Markdown table cell: a | or newline would break the row."""
    text = '%s' % value
    return text.replace('\\', '\\\\').replace('|', '\\|').replace('\r', '').replace('\n', '<br>')


def _md_row(cells):
    """A table row from cells that are already escaped (so markup can be added)."""
    return '| ' + ' | '.join(cells) + ' |'


def _md_status(status):
    return '**FAILED**' if status == 'failed' else status


def _md_metadata(metadata):
    lines = []
    for key in sorted(metadata, key=str):
        value = metadata[key]
        if isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        lines.append('- %s: %s' % (_md_cell(key), _md_cell(value)))
    return lines


def _md_counts_table(summary):
    lines = [
        '| Category | Passed | Failed | Skipped | Total |',
        '| --- | ---: | ---: | ---: | ---: |',
    ]
    rows = [(_md_cell(name), counts) for name, counts in summary['by_category'].items()]
    rows.append(('**all**', summary))
    for name, counts in rows:
        lines.append(_md_row([name] + [str(counts[key]) for key in ('passed', 'failed', 'skipped', 'total')]))
    return lines


def _md_category(category, records):
    lines = [
        '## %s' % _md_cell(category), '',
        '| Host | Check | Status | Figures | Message |',
        '| --- | --- | --- | --- | --- |',
    ]
    for record in sorted(records, key=lambda record: (record['status'] != 'failed', record_key(record))):
        lines.append(_md_row([
            _md_cell(record['host']), _md_cell(record['name']), _md_status(record['status']),
            _md_cell(format_figures(record['figures'])), _md_cell(record['message']),
        ]))
    return lines + ['']


def render_markdown(report):
    summary = report['summary']
    verdict = 'FAILED' if summary['failed'] else 'PASSED'
    lines = ['# %s' % report['title'], '']
    lines.append('- Run: `%s`' % (report['run_id'] or '-'))
    lines.append('- Result: **%s**: %d failed, %d passed, %d skipped, %d checks in all' % (
        verdict, summary['failed'], summary['passed'], summary['skipped'], summary['total']))
    if report['first_check']:
        lines.append('- Checks recorded from %s to %s' % (report['first_check'], report['last_check']))
    lines.extend(_md_metadata(report['metadata']))
    lines.extend(['', '## Summary', ''])
    lines.extend(_md_counts_table(summary))
    lines.append('')
    for category in summary['by_category']:
        lines.extend(_md_category(category, [r for r in report['checks'] if r['category'] == category]))
    return '\n'.join(lines).rstrip('\n') + '\n'


def render_all(report):
    """Return {kind: text} for every file in REPORT_FILES."""
    return {
        'json': render_json(report),
        'junit': render_junit(report),
        'markdown': render_markdown(report),
    }
