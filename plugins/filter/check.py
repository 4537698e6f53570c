# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of aicluster.lab.check's batch form: a verdict's records as the entries of its
``checks`` option, so that a role records a host's checks in one task, not one loop item each."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def check_batch(records, suffix='', expect_failure=None):
    """Each record (name, category, description, passed, message, figures, skip_reason) as
    the options of one check: ``that`` is ``passed``, ``message`` both messages, the name
    ends in ``suffix``; ``expect_failure`` maps record names to the message a negative check
    must fail with."""
    if not isinstance(records, list):
        raise AnsibleFilterError('check_batch: expects a list of check records, got %r' % (records,))
    expected = expect_failure or {}
    if not isinstance(expected, Mapping):
        raise AnsibleFilterError('check_batch: expect_failure must map check names to messages, got %r' % (expected,))
    entries = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or not record.get('name'):
            raise AnsibleFilterError('check_batch: record %d must be a dict with a name, got %r' % (index, record))
        name = record['name']
        entry = {'name': '%s%s' % (name, suffix or ''), 'category': record.get('category'),
                 'description': record.get('description'), 'figures': record.get('figures'),
                 'skip_reason': record.get('skip_reason') or ''}
        if 'passed' in record:
            if not isinstance(record['passed'], bool):
                raise AnsibleFilterError('check_batch: record %d (%s): passed must be true or false, got %r'
                                         % (index, name, record['passed']))
            entry['that'] = record['passed']
        if 'message' in record:
            entry['success_msg'] = entry['fail_msg'] = record['message']
        if expected.get(name):
            entry['expect_failure'] = expected[name]
        entries.append(entry)
    return entries


class FilterModule:
    def filters(self):
        return {'check_batch': check_batch}
