# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""aicluster.lab.check: evaluate one named validation check and record its outcome."""

from __future__ import annotations

import datetime
import json
import os

from ansible.errors import AnsibleActionFail, AnsibleError
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


def _is_whole_template(value):
    stripped = value.strip()
    return stripped.startswith('{{') and stripped.endswith('}}')


def _utc_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def _non_empty(args, key):
    value = (args.get(key) or '').strip()
    if not value:
        raise AnsibleActionFail('%s: must be a non-empty string, got %r' % (key, args.get(key)))
    return value


def _conditions(that):
    """Return `that` as a list of conditionals (str or bool), as assert accepts them."""
    if that is None:
        return []
    items = that if isinstance(that, list) else [that]
    for index, item in enumerate(items):
        if not isinstance(item, (str, bool)):
            raise AnsibleActionFail('that[%d]: %r is not a conditional (expected a string or boolean)' % (index, item))
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
    """Evaluate a check's conditions like assert, then append its record to the run."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    @classmethod
    def finalize_task_arg(cls, name, value, templar, context):
        # ansible-core 2.19+ templates task args before run() through this hook. Like
        # assert, leave the conditionals untemplated so evaluating them sees the
        # expressions as written; only a `that` that is one whole template (a variable
        # holding a list of conditions) is resolved, and only down to that list.
        if name != 'that':
            return super().finalize_task_arg(name, value, templar, context)
        if isinstance(value, str) and _is_whole_template(value):
            try:
                resolved = templar.resolve_to_container(value)
            except AnsibleError:
                return value
            if isinstance(resolved, list):
                return resolved
        return value

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # unused: nothing runs on the host

        args = self._arguments()
        record = self._evaluate(args, task_vars)
        run_dir = self._run_dir(task_vars)
        if run_dir:
            try:
                result['record_file'] = append_record(run_dir, record)
            except OSError as exc:
                raise AnsibleActionFail('could not record check %r in %s: %s' % (record['name'], run_dir, to_text(exc)))

        result.update(self._task_result(record))
        return result

    def _arguments(self):
        """Validate the options; errors name the option and the value."""
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        args['name'] = _non_empty(args, 'name')
        args['category'] = _non_empty(args, 'category')
        args['that'] = _conditions(args['that'])
        args['figures'], args['figure_errors'] = _figures(args['figures'])
        args['skip_reason'] = (args['skip_reason'] or '').strip()
        args['expect_failure'] = (args['expect_failure'] or '').strip()
        return args

    def _evaluate(self, args, task_vars):
        status, message, condition = self._outcome(args, task_vars)
        if args['expect_failure'] and status != 'skipped':
            status, message = _as_expected(status, message, args['expect_failure'])
        return validate_record({
            'run_id': self._template_var(task_vars, 'suite_run_id'),
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
        figures = format_figures(record['figures'])
        summary = '%s %s/%s on %s: %s' % (
            record['status'].upper(), record['category'], record['name'], record['host'], record['message'])
        result = {
            'changed': False,
            'check': record,
            'msg': summary + (' [%s]' % figures if figures else ''),
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
