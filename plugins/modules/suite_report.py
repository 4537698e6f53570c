#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: suite_report
short_description: Write the validation report of a suite run
version_added: "0.1.0"
description:
  - Reads the check records that M(aicluster.lab.check) appended to C(checks.jsonl) in
    O(run_dir) and writes three renderings of them next to it, C(report.json),
    C(junit.xml) and C(summary.md).
  - Lines of C(checks.jsonl) that cannot be read are reported as failed checks named
    C(unreadable_record) of host C(controller), with their line number, rather than
    dropped.
  - Each file is written to a temporary file and renamed into place, so a reader never
    sees a half-written report; a file whose content would not change is left alone.
  - The renderings depend only on the records and the options, so running the module
    twice on the same records reports no change.
  - Run it on the controller, for example with C(delegate_to=localhost) and
    C(run_once=true), or in a play on C(localhost).
options:
  run_dir:
    description:
      - The directory of the run, the same path as the C(suite_run_dir) variable that
        M(aicluster.lab.check) records into.
      - A missing C(checks.jsonl) is read as no records, and the directory is created if
        needed.
    type: path
    required: true
  title:
    description:
      - Title of the report, used in C(summary.md) and as the name of the JUnit
        C(testsuites) element.
    type: str
    default: aicluster.lab validation report
  metadata:
    description:
      - Free-form facts about the run, stored under C(metadata) in C(report.json) and
        listed at the top of C(summary.md), for example the inventory, the lab profile
        and the duration of each stage.
    type: dict
    default: {}
  expected_hosts:
    description:
      - Hosts that should have recorded checks, usually C(ansible_play_hosts_all) or
        C(groups['all']).
      - Each host of this list with no record at all gets a failed record named
        C(no_results) in category C(report), so a host that crashed or became
        unreachable cannot drop out of the report unnoticed.
    type: list
    elements: str
    default: []
  fail_on_failed_checks:
    description:
      - Fail the task after the report has been written when any check failed,
        including the C(no_results) and C(unreadable_record) records made up by this
        module.
      - The report files are written either way.
    type: bool
    default: false
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Renders everything and writes nothing; C(changed) tells whether any file would change.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The report layout is described in C(docs/report.md) of the collection.
  - O(run_dir) should be an absolute path; M(aicluster.lab.check) resolves a relative
    C(suite_run_dir) against the directory C(ansible-playbook) was started from.
seealso:
  - module: aicluster.lab.check
author:
  - aicluster.lab developers (@aicluster)
"""

EXAMPLES = r"""
- name: Write the report of this run
  aicluster.lab.suite_report:
    run_dir: "{{ suite_run_dir }}"
    title: "aicluster.lab full suite ({{ lab_profile }})"
    expected_hosts: "{{ groups['cluster'] }}"
    metadata:
      inventory: "{{ ansible_inventory_sources }}"
      profile: "{{ lab_profile }}"
      stage_seconds:
        provision: 312.4
        validate: 95.0
  delegate_to: localhost
  run_once: true

- name: Write the report and make the run fail when a check failed
  aicluster.lab.suite_report:
    run_dir: /srv/aicluster/results/20260101T120000Z
    fail_on_failed_checks: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
msg:
  description: Counts, the path of C(summary.md) and the first failed checks.
  returned: always
  type: str
  sample: "5 check(s): 3 passed, 1 failed, 1 skipped; report: /srv/aicluster/results/r1/summary.md; failed: node2: l2_trunk_ping"
summary:
  description: Counts of checks per status, overall, per category and per host.
  returned: always
  type: dict
  sample:
    passed: 3
    failed: 1
    skipped: 1
    total: 5
    by_category:
      L1: {passed: 2, failed: 0, skipped: 0, total: 2}
      L2: {passed: 1, failed: 1, skipped: 1, total: 3}
    by_host:
      node1: {passed: 2, failed: 0, skipped: 1, total: 3}
      node2: {passed: 1, failed: 1, skipped: 0, total: 2}
files:
  description: Paths of the report files (written, or that would be written in check mode).
  returned: always
  type: dict
  contains:
    json:
      description: Path of C(report.json).
      type: str
      returned: always
      sample: /srv/aicluster/results/20260101T120000Z/report.json
    junit:
      description: Path of C(junit.xml).
      type: str
      returned: always
      sample: /srv/aicluster/results/20260101T120000Z/junit.xml
    markdown:
      description: Path of C(summary.md).
      type: str
      returned: always
      sample: /srv/aicluster/results/20260101T120000Z/summary.md
failed_checks:
  description: The failed checks, in report order.
  returned: always
  type: list
  elements: dict
  sample:
    - host: node2
      name: l2_trunk_ping
      category: L2
      message: node2 cannot reach node1 on VLAN 20
load_errors:
  description: Lines of C(checks.jsonl) that could not be read, with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - line: 7
      error: "status: 'ok' is not one of passed, failed, skipped"
run_id:
  description: The run id the records agree on, else the name of O(run_dir).
  returned: always
  type: str
  sample: 20260101T120000Z
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.aicluster.lab.plugins.module_utils.suite_report import (
    RECORDS_FILE,
    REPORT_FILES,
    build_report,
    failed_checks,
    load_error_records,
    load_records,
    missing_host_records,
    render_all,
    run_id_of,
)

MESSAGE_NAMES = 10


def read_records(run_dir, expected_hosts):
    """Records of the run, with made-up failed ones for unreadable lines and silent hosts."""
    records, errors = load_records(os.path.join(run_dir, RECORDS_FILE))
    run_id = run_id_of(records, os.path.basename(run_dir))
    records = records + load_error_records(errors, run_id)
    records = records + missing_host_records(records, expected_hosts, run_id)
    return records, errors


def _current_content(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _file_mode():
    # mkstemp creates 0600; a report is meant to be read by others, so honour the
    # umask like any other newly created file.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path, data):
    """Replace path with data so that readers see the old or the new file, never half."""
    fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.%s.' % os.path.basename(path))
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def changed_files(run_dir, rendered):
    """Return {kind: (path, bytes)} for the report files whose content would change."""
    changes = {}
    for kind, text in rendered.items():
        path = os.path.join(run_dir, REPORT_FILES[kind])
        data = to_bytes(text, errors='surrogate_or_strict')
        if _current_content(path) != data:
            changes[kind] = (path, data)
    return changes


def outcome_message(summary, failed, markdown_path):
    message = '%d check(s): %d passed, %d failed, %d skipped; report: %s' % (
        summary['total'], summary['passed'], summary['failed'], summary['skipped'], markdown_path)
    if failed:
        # The full list is in failed_checks; a message with hundreds of names is unreadable.
        names = ['%s: %s' % (check['host'], check['name']) for check in failed[:MESSAGE_NAMES]]
        if len(failed) > MESSAGE_NAMES:
            names.append('and %d more' % (len(failed) - MESSAGE_NAMES))
        message += '; failed: ' + ', '.join(names)
    return message


def run_module(module):
    params = module.params
    run_dir = os.path.abspath(params['run_dir'])
    try:
        records, errors = read_records(run_dir, params['expected_hosts'])
    except OSError as exc:
        module.fail_json(msg='could not read the check records of %s: %s' % (run_dir, to_native(exc)))
    report = build_report(
        records, params['title'], run_dir=run_dir, metadata=params['metadata'],
        load_errors=errors, fallback_run_id=os.path.basename(run_dir))
    try:
        rendered = render_all(report)
    except ValueError as exc:
        module.fail_json(msg='could not render the report of %s: %s' % (run_dir, to_native(exc)))

    try:
        changes = changed_files(run_dir, rendered)
        if changes and not module.check_mode:
            os.makedirs(run_dir, exist_ok=True)
            for path, data in changes.values():
                write_atomically(path, data)
    except OSError as exc:
        module.fail_json(msg='could not write the report in %s: %s' % (run_dir, to_native(exc)))

    failed = failed_checks(records)
    result = dict(
        changed=bool(changes),
        summary=report['summary'],
        files=dict((kind, os.path.join(run_dir, name)) for kind, name in REPORT_FILES.items()),
        failed_checks=failed,
        load_errors=errors,
        run_id=report['run_id'],
    )
    if errors:
        module.warn('%d line(s) of %s could not be read; they are reported as failed checks'
                    % (len(errors), os.path.join(run_dir, RECORDS_FILE)))
    message = outcome_message(report['summary'], failed, result['files']['markdown'])
    if params['fail_on_failed_checks'] and failed:
        module.fail_json(msg=message, **result)
    module.exit_json(msg=message, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type='path', required=True),
            title=dict(type='str', default='aicluster.lab validation report'),
            metadata=dict(type='dict', default={}),
            expected_hosts=dict(type='list', elements='str', default=[]),
            fail_on_failed_checks=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == '__main__':
    main()
