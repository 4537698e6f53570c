# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""aicluster.lab.check: evaluate named validation checks and record their outcomes.

One check per task (name, category, that, ...), or a batch of them (checks): a role that
judged a host into a list of records records them all in one task, instead of paying
Ansible's per-item cost of a loop for each.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.aicluster.lab.plugins.module_utils.suite_report import (
    RECORDS_FILE,
    format_figures,
    normalize_figures,
    validate_record,
)

# `default(omit)` is how a play says "not set" (playbooks/validate.yml does so for
# suite_run_dir): 2.19+ raises this when such a value is templated, older versions
# return the placeholder string held in the `omit` variable instead.
try:
    from ansible.errors import AnsibleValueOmittedError as _OmittedError
except ImportError:
    class _OmittedError(Exception):
        """Never raised: ansible-core before 2.19 has no such error."""

ARGUMENT_SPEC = dict(
    name=dict(type='str', required=True),
    category=dict(type='str', required=True),
    # Checked by _conditions(): the 'list' type would split a bare string on commas,
    # which breaks conditions such as "x in [1, 2]".
    that=dict(type='raw'),
    figures=dict(type='dict'),
    skip_reason=dict(type='str', default=''),
    expect_failure=dict(type='str', default=''),
    fail_msg=dict(type='str'),
    success_msg=dict(type='str'),
    description=dict(type='str'),
)
# The batch form: each entry of `checks` takes the options above, validated the same way.
BATCH_OPTION = 'checks'
STATUSES = ('passed', 'failed', 'skipped')


def _is_whole_template(value):
    stripped = value.strip()
    return stripped.startswith('{{') and stripped.endswith('}}')


def _utc_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def _non_empty(args, key, where=''):
    value = (args.get(key) or '').strip()
    if not value:
        raise AnsibleActionFail('%s%s: must be a non-empty string, got %r' % (where, key, args.get(key)))
    return value


def _conditions(that, where=''):
    """Return `that` as a list of conditionals (str or bool), as assert accepts them."""
    if that is None:
        return []
    items = that if isinstance(that, list) else [that]
    for index, item in enumerate(items):
        if not isinstance(item, (str, bool)):
            raise AnsibleActionFail('%sthat[%d]: %r is not a conditional (expected a string or boolean)'
                                    % (where, index, item))
    return items


def _figures(figures):
    """Split figures into (valid numbers, error messages naming each bad key)."""
    if figures is None:
        return {}, []
    valid, errors = {}, []
    for key in sorted(figures, key=str):
        try:
            valid.update(normalize_figures({key: figures[key]}))
        except ValueError as exc:
            errors.append(to_text(exc))
    return valid, errors


def _with_cause(fail_msg, cause):
    """The author's fail_msg, keeping the error that a reader needs to act on it."""
    return '%s (%s)' % (fail_msg, cause) if fail_msg else cause


def _as_expected(status, message, expected):
    """The outcome of a negative check: it passes when it failed with the expected message."""
    if status == 'failed' and expected in message:
        return 'passed', 'failed as expected: %s' % message
    if status == 'failed':
        return 'failed', 'failed, but not with %r: %s' % (expected, message)
    return 'failed', 'expected to fail with %r, but passed: %s' % (expected, message)


def _normalized(args, where=''):
    """The validated options of one check, normalized; `where` prefixes error messages
    (`checks[3].` for an entry of a batch)."""
    args['name'] = _non_empty(args, 'name', where)
    args['category'] = _non_empty(args, 'category', where)
    args['that'] = _conditions(args['that'], where)
    args['figures'], args['figure_errors'] = _figures(args['figures'])
    args['skip_reason'] = (args['skip_reason'] or '').strip()
    args['expect_failure'] = (args['expect_failure'] or '').strip()
    return args


def _entry_arguments(index, entry):
    """Validate the entry `checks[index]` of a batch as the options of one check."""
    where = '%s[%d]' % (BATCH_OPTION, index)
    if not isinstance(entry, Mapping):
        raise AnsibleActionFail('%s: must be a dict with the options of one check, got %r' % (where, entry))
    validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(entry))
    if validation.error_messages:
        first = validation.errors[0]
        message = validation.error_messages[0]
        if isinstance(first, UnsupportedError):
            message = 'unsupported option(s) %s' % message
        raise AnsibleActionFail('%s: %s' % (where, message))
    args = dict(entry)
    args.update(validation.validated_parameters)
    return _normalized(args, where + '.')


def _finalize_that(value, templar):
    """Like assert, leave conditionals untemplated so evaluating them sees the
    expressions as written; only a `that` that is one whole template (a variable holding
    a list of conditions) is resolved, and only down to that list."""
    if isinstance(value, str) and _is_whole_template(value):
        try:
            resolved = templar.resolve_to_container(value)
        except AnsibleError:
            return value
        if isinstance(resolved, list):
            return resolved
    return value


def _finalize_entry(entry, templar):
    """An entry of `checks` templated as the single form's options are: all but `that`."""
    if isinstance(entry, str) and _is_whole_template(entry):
        entry = templar.resolve_to_container(entry)
    if not isinstance(entry, Mapping):
        return templar.template(entry)
    # One dict, so that an option set to omit is left out as a task arg would be.
    finalized = templar.template({key: value for key, value in entry.items() if key != 'that'})
    if 'that' in entry:
        finalized['that'] = _finalize_that(entry['that'], templar)
    return finalized


def _status_counts(records):
    counts = {status: 0 for status in STATUSES}
    for record in records:
        counts[record['status']] += 1
    return counts


def check_line(record):
    """One line saying how a check went, as its task's msg says it."""
    figures = format_figures(record['figures'])
    return '%s %s/%s on %s: %s%s' % (
        record['status'].upper(), record['category'], record['name'], record['host'], record['message'],
        ' [%s]' % figures if figures else '')


def append_record(run_dir, record):
    """Append record as one JSON line to <run_dir>/checks.jsonl.

    Several forks record at once: a single write() to a file opened with O_APPEND
    lands as a whole line at the end, so lines never interleave.
    """
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, RECORDS_FILE)
    line = (json.dumps(record, sort_keys=True) + '\n').encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):
        raise OSError('short write to %s: %d of %d bytes' % (path, written, len(line)))
    return path


class ActionModule(ActionBase):
    """Evaluate a check's conditions like assert, then append its record to the run;
    with `checks`, each entry's in turn."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC) | {BATCH_OPTION}

    @classmethod
    def finalize_task_arg(cls, name, value, templar, context):
        # ansible-core 2.19+ templates task args before run() through this hook: `that`,
        # and the `that` of each entry of `checks`, are left for run() to evaluate.
        # Before 2.19 every arg is templated, which leaves a condition without {{ }} as it is.
        if name == 'that':
            return _finalize_that(value, templar)
        if name == BATCH_OPTION:
            checks = templar.resolve_to_container(value) if isinstance(value, str) else value
            if isinstance(checks, list):
                return [_finalize_entry(entry, templar) for entry in checks]
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # unused: nothing runs on the host

        batch = BATCH_OPTION in self._task.args
        # Every entry is validated before any is evaluated: a batch is recorded whole or not at all.
        entries = self._batch_arguments() if batch else [self._arguments()]
        run_id = self._template_var(task_vars, 'suite_run_id')
        run_dir = self._run_dir(task_vars)
        records = []
        for args in entries:
            record = self._evaluate(args, task_vars, run_id)
            if run_dir:
                try:
                    result['record_file'] = append_record(run_dir, record)
                except OSError as exc:
                    raise AnsibleActionFail('could not record check %r in %s: %s' % (record['name'], run_dir, to_text(exc)))
            records.append(record)

        result.update(self._batch_result(records, task_vars) if batch else self._task_result(records[0]))
        return result

    def _arguments(self):
        """Validate the options; errors name the option and the value."""
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        return _normalized(args)

    def _batch_arguments(self):
        """Validate the batch form; errors name the entry, the option and the value."""
        single = sorted(set(self._task.args) & set(ARGUMENT_SPEC))
        if single:
            raise AnsibleActionFail('%s: mutually exclusive with %s; give each check its options in its entry'
                                    % (BATCH_OPTION, ', '.join(single)))
        checks = self._task.args[BATCH_OPTION]
        if not isinstance(checks, list):
            raise AnsibleActionFail('%s: must be a list of dicts, one per check, got %r' % (BATCH_OPTION, checks))
        return [_entry_arguments(index, entry) for index, entry in enumerate(checks)]

    def _evaluate(self, args, task_vars, run_id):
        status, message, condition = self._outcome(args, task_vars)
        if args['expect_failure'] and status != 'skipped':
            status, message = _as_expected(status, message, args['expect_failure'])
        return validate_record({
            'run_id': run_id,
            'name': args['name'],
            'host': to_text(task_vars.get('inventory_hostname', 'localhost')),
            'category': args['category'],
            'status': status,
            'message': message,
            'figures': args['figures'],
            'description': args['description'],
            'condition': condition,
            'check_mode': bool(self._task.check_mode),
            'time': _utc_now(),
        })

    def _outcome(self, args, task_vars):
        """Return (status, message, failed condition or None)."""
        # A skipped check measured nothing, and a failed condition is the real cause of
        # a failure (a ping that got no reply has no round-trip time): in both cases a
        # figure that is not a number is expected, so it is left out, not reported.
        if args['skip_reason']:
            return 'skipped', args['skip_reason'], None
        for conditional in args['that']:
            outcome, error = self._test(conditional, task_vars)
            if error:
                return 'failed', _with_cause(args['fail_msg'], error), to_text(conditional)
            if not outcome:
                return 'failed', args['fail_msg'] or 'Condition failed: %s' % conditional, to_text(conditional)
        if args['figure_errors']:
            # Conditions held but a measurement yielded no number (an unparsed iperf3
            # line, say): that is a failed check, and recording it keeps it in the report.
            return 'failed', _with_cause(args['fail_msg'], '; '.join(args['figure_errors'])), None
        default = 'All conditions passed' if args['that'] else 'Recorded'
        return 'passed', args['success_msg'] or default, None

    def _test(self, conditional, task_vars):
        """Return (truth, error text); a condition that cannot be evaluated fails the
        check instead of aborting the task, so the report still shows it."""
        try:
            return bool(self._evaluate_conditional(conditional, task_vars)), None
        except AnsibleError as exc:
            # Before 2.19 the message goes on to quote the playbook source, which is
            # noise in a report; its first paragraph is the error itself.
            cause = to_text(exc.message).strip().split('\n\n')[0]
            return False, 'could not evaluate %r: %s' % (to_text(conditional), cause)

    def _evaluate_conditional(self, conditional, task_vars):
        # 2.19 moved conditional evaluation onto the templar and removed
        # Conditional.evaluate_conditional; 2.17 and 2.18 only have the latter.
        evaluate = getattr(self._templar, 'evaluate_conditional', None)
        if evaluate is not None:
            return evaluate(conditional)
        from ansible.playbook.conditional import Conditional  # pylint: disable=import-outside-toplevel
        holder = Conditional(loader=self._loader)
        holder.when = [conditional]
        return holder.evaluate_conditional(templar=self._templar, all_vars=task_vars)

    def _template_var(self, task_vars, key):
        """The text of a task var, or None when it is unset, empty or omitted."""
        # Task vars arrive untemplated: suite_run_dir is usually built from other vars.
        value = task_vars.get(key)
        if value is None:
            return None
        try:
            value = self._templar.template(value)
        except _OmittedError:
            return None
        if value in (None, '') or value == task_vars.get('omit'):
            return None
        return to_text(value)

    def _run_dir(self, task_vars):
        run_dir = self._template_var(task_vars, 'suite_run_dir')
        return os.path.abspath(os.path.expanduser(run_dir)) if run_dir else None

    @staticmethod
    def _task_result(record):
        result = {
            'changed': False,
            'check': record,
            'msg': check_line(record),
            # Show the outcome at default verbosity, as assert does: watching the
            # run is how people follow which check is running and how it went.
            '_ansible_verbose_always': True,
        }
        if record['status'] == 'failed':
            result['failed'] = True
            result['assertion'] = record['condition']
            result['evaluated_to'] = False
        elif record['status'] == 'skipped':
            result['skipped'] = True
            result['skip_reason'] = record['message']
        return result

    @staticmethod
    def _batch_result(records, task_vars):
        counts = _status_counts(records)
        host = to_text(task_vars.get('inventory_hostname', 'localhost'))
        summary = '%d check%s on %s: %d passed, %d failed, %d skipped' % (
            len(records), '' if len(records) == 1 else 's', host, counts['passed'], counts['failed'], counts['skipped'])
        result = {
            'changed': False,
            'checks': records,
            # The summary, then the line of each failed check as the single form's msg has it
            # (every record is in `checks`; shown as the error of a failed task, 28 lines
            # would bury the one that failed).
            'msg': '\n'.join([summary] + [check_line(record) for record in records if record['status'] == 'failed']),
            '_ansible_verbose_always': True,
        }
        if counts['failed']:
            result['failed'] = True
        elif counts['skipped'] == len(records):
            # Only when every check was skipped (or there was none), as a loop whose items all skip.
            reasons = list(dict.fromkeys(record['message'] for record in records))
            result['skipped'] = True
            result['skip_reason'] = '; '.join(reasons) if reasons else 'no checks to record'
        return result
