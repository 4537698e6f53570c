# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The check runs entirely in its action plugin (plugins/action/check.py) on the
# controller; this file only carries its documentation, as ansible.builtin.assert does.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check
short_description: Evaluate named validation checks and record their outcomes for the report
version_added: "0.1.0"
description:
  - Evaluates conditions the way M(ansible.builtin.assert) does and records the outcome
    as one check of the suite report, with its name, host, category, status and
    figures.
  - With O(checks), records a batch of checks in one task, each entry taking the options
    of one check; this saves Ansible's cost per loop item when a role has judged a host
    into a list of records (filter P(aicluster.lab.check_batch#filter)).
  - The status is V(skipped) when O(skip_reason) is set, V(failed) when a condition is
    false or cannot be evaluated, or when all conditions hold but a figure is not a
    number, and V(passed) otherwise. A failed check fails the task.
  - A condition that cannot be evaluated (an undefined variable, say) fails the check
    with the error as its message instead of aborting the task, so the check still
    reaches the report.
  - When the task variables define C(suite_run_dir), one JSON line with the check's
    record is appended to C(<suite_run_dir>/checks.jsonl), which
    M(aicluster.lab.suite_report) turns into the report. Several hosts can record at
    the same time; each record is a single append.
  - Without C(suite_run_dir) nothing is recorded and the check behaves like an
    assertion with a name, which is how molecule C(verify) playbooks use it.
  - The record carries C(suite_run_id) as its run id when that variable is set.
  - Runs on the controller only; nothing is changed on the managed host.
options:
  name:
    description:
      - Name of the check, the same for every host that runs it, for example
        V(l2_trunk_ping).
      - Required, unless O(checks) is given.
    type: str
  category:
    description:
      - Category the check is reported under, for example V(L1), V(L2), V(network),
        V(performance) or V(chaos). Each category becomes a JUnit testsuite and a
        section of C(summary.md).
      - Required, unless O(checks) is given.
    type: str
  that:
    description:
      - Conditions of the same form as in C(when) and in M(ansible.builtin.assert), all
        of which must be true for the check to pass. Evaluation stops at the first
        false one.
      - A single condition may be given as a string.
      - Without conditions the check passes and records its figures, which suits a
        pure measurement.
    type: list
    elements: raw
  figures:
    description:
      - Measured numbers to record with the check, as name -> number, for example
        C(boot_s), C(rtt_ms) or C(throughput_gbit_s). Put the unit in the name.
      - "Numeric strings are converted. A value that is not a finite number fails the
        check with a message naming it, such as C(figures.boot_s: 'abc' is not a number).
        When the check is skipped, or fails on a condition anyway, such values are left
        out instead."
    type: dict
  skip_reason:
    description:
      - When not empty, the check is recorded as V(skipped) with this reason and O(that)
        is not evaluated.
    type: str
    default: ''
  expect_failure:
    description:
      - Makes the check a negative test. When not empty, the check V(passed) only when its
        conditions fail with a message that contains this text; its message then starts with
        C(failed as expected:). A check that holds, or fails with another message, is V(failed)
        and its message says which.
      - A negative scenario (a deliberately broken profile) proves that the validation names
        the cause this way, and its report still passes only when every check behaved as expected.
    type: str
    default: ''
    version_added: 0.3.0
  fail_msg:
    description:
      - Message of a failed check. Without it the message names the failed condition.
      - When a condition cannot be evaluated, or a figure is not a number, the error is
        added in parentheses.
    type: str
  success_msg:
    description:
      - Message of a passed check.
      - Defaults to C(All conditions passed), or C(Recorded) when there are no conditions.
    type: str
  description:
    description:
      - One line saying what the check proves, shown in C(report.json) and C(junit.xml).
    type: str
  checks:
    description:
      - A batch of checks, each a dict of the options of one check. Mutually exclusive
        with all the other options, which each entry takes instead.
      - "Each entry is validated as one check is; an error names the entry, as in
        C(checks[2].name: must be a non-empty string). No check is recorded when an entry
        is not valid."
      - Each entry is evaluated and recorded exactly as the same options would be in a
        task of its own, in the order of the list, one append to C(checks.jsonl) each.
      - The task fails when any check failed, after recording them all, and is skipped
        only when every check was skipped (or the list is empty).
      - The entries' conditions in O(checks[].that) are left for the check to evaluate, as
        O(that) is; a boolean, such as the C(passed) of a verdict filter's record, is taken
        as it is.
    type: list
    elements: dict
    version_added: 0.7.0
    suboptions:
      name:
        description: As O(name).
        type: str
        required: true
      category:
        description: As O(category).
        type: str
        required: true
      that:
        description: As O(that).
        type: list
        elements: raw
      figures:
        description: As O(figures).
        type: dict
      skip_reason:
        description: As O(skip_reason).
        type: str
        default: ''
      expect_failure:
        description: As O(expect_failure).
        type: str
        default: ''
      fail_msg:
        description: As O(fail_msg).
        type: str
      success_msg:
        description: As O(success_msg).
        type: str
      description:
        description: As O(description).
        type: str
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.conn
  - action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - Conditions are evaluated and the check is recorded in check mode too (the record
        has C(check_mode=true)); nothing changes on any host and C(changed) is always false.
  connection:
    support: none
  delegation:
    support: none
    details: The record names C(inventory_hostname) whatever the task is delegated to.
  diff_mode:
    support: none
    details: There is nothing to diff.
  platform:
    platforms: all
notes:
  - C(suite_run_dir) should be an absolute path; a relative one is taken from the
    directory C(ansible-playbook) was started in.
  - A failed check fails its task like M(ansible.builtin.assert). To run the remaining
    checks of a host anyway, set C(ignore_errors=true) on the check tasks; hosts that
    stop recording are still listed by M(aicluster.lab.suite_report) through its
    O(aicluster.lab.suite_report#module:expected_hosts) option.
  - The record format is described in C(docs/report.md) of the collection.
seealso:
  - module: aicluster.lab.suite_report
  - module: ansible.builtin.assert
author:
  - aicluster.lab developers (@aicluster)
"""

EXAMPLES = r"""
- name: "Check: node booted"
  aicluster.lab.check:
    name: node_booted
    category: L1
    description: The node answers over SSH after boot.
    that:
      - boot_wait is succeeded
    figures:
      boot_s: "{{ boot_wait.elapsed }}"
    fail_msg: "{{ inventory_hostname }} did not come up within {{ boot_timeout }} s"

- name: "Check: L2 trunk ping"
  aicluster.lab.check:
    name: l2_trunk_ping
    category: L2
    that:
      - trunk_ping.rc == 0
      - "'0% packet loss' in trunk_ping.stdout"
    figures:
      rtt_ms: "{{ trunk_ping.stdout | regex_findall('= [0-9.]+/([0-9.]+)/') | first }}"
  ignore_errors: true

- name: "Check: RDMA latency (skipped without an RDMA NIC)"
  aicluster.lab.check:
    name: rdma_latency
    category: performance
    skip_reason: "{{ '' if rdma_nics | length > 0 else 'no RDMA NIC on this host' }}"
    that:
      - rdma_latency_us | float < 5
    figures:
      latency_us: "{{ rdma_latency_us | default('n/a') }}"

- name: Record a measurement without a pass/fail condition
  aicluster.lab.check:
    name: iperf3_throughput
    category: performance
    figures:
      throughput_gbit_s: "{{ (iperf3.end.sum_received.bits_per_second / 1e9) | round(2) }}"

- name: Record every check a verdict filter judged, in one task
  aicluster.lab.check:
    checks: "{{ rdma_records | aicluster.lab.check_batch(rdma_check_suffix) }}"
  ignore_errors: true

- name: A batch written out
  aicluster.lab.check:
    checks:
      - name: node_booted
        category: L1
        that:
          - boot_wait is succeeded
        figures:
          boot_s: "{{ boot_wait.elapsed }}"
      - name: l1_hostname
        category: L1
        that: ansible_facts.hostname == inventory_hostname
        fail_msg: "the host calls itself {{ ansible_facts.hostname }}"
"""

RETURN = r"""
msg:
  description:
    - One line with the status, category, name, host, message and figures.
    - With O(checks), a first line counting the checks by status, then that line for each failed check.
  returned: always
  type: str
  sample: "FAILED L2/l2_trunk_ping on node2: Condition failed: trunk_ping.rc == 0 [rtt_ms=0.41]"
check:
  description: The check's record, as appended to C(checks.jsonl).
  returned: without O(checks)
  type: dict
  contains:
    run_id:
      description: Value of C(suite_run_id), or V(null).
      type: str
      returned: always
    name:
      description: O(name).
      type: str
      returned: always
    host:
      description: C(inventory_hostname) of the host the check ran for.
      type: str
      returned: always
    category:
      description: O(category).
      type: str
      returned: always
    status:
      description: V(passed), V(failed) or V(skipped).
      type: str
      returned: always
    message:
      description: O(success_msg), O(fail_msg) or O(skip_reason), or a default explaining the outcome.
      type: str
      returned: always
    figures:
      description: The figures that are numbers, name -> int or float.
      type: dict
      returned: always
    description:
      description: O(description), or V(null).
      type: str
      returned: always
    condition:
      description: The condition that failed or could not be evaluated, else V(null).
      type: str
      returned: always
    check_mode:
      description: Whether the check ran in check mode.
      type: bool
      returned: always
    time:
      description: When the check was evaluated, UTC, ISO 8601.
      type: str
      returned: always
      sample: "2026-01-01T12:00:03.412Z"
  sample:
    run_id: 20260101T120000Z
    name: l2_trunk_ping
    host: node2
    category: L2
    status: passed
    message: All conditions passed
    figures: {rtt_ms: 0.41}
    description: null
    condition: null
    check_mode: false
    time: "2026-01-01T12:00:03.412Z"
checks:
  description:
    - With O(checks), the record of each check, in the order of O(checks); each as RV(check).
  returned: with O(checks)
  type: list
  elements: dict
  version_added: 0.7.0
  sample:
    - run_id: 20260101T120000Z
      name: l1_hostname
      host: node2
      category: L1
      status: passed
      message: hostname node2
      figures: {}
      description: The hostname is the inventory name.
      condition: null
      check_mode: false
      time: "2026-01-01T12:00:03.412Z"
record_file:
  description: Path of the C(checks.jsonl) the record was appended to.
  returned: when C(suite_run_dir) is set (and O(checks) is not empty)
  type: str
  sample: /srv/aicluster/results/20260101T120000Z/checks.jsonl
assertion:
  description:
    - The condition that failed, as in M(ansible.builtin.assert).
    - V(null) when the check failed because a figure is not a number.
  returned: when the check failed, without O(checks)
  type: str
  sample: trunk_ping.rc == 0
evaluated_to:
  description: Always V(false); present for compatibility with M(ansible.builtin.assert).
  returned: when the check failed, without O(checks)
  type: bool
  sample: false
skip_reason:
  description:
    - O(skip_reason), when the check was skipped.
    - With O(checks), the distinct reasons of the checks, joined with C(; ), when every check was skipped.
  returned: when the check was skipped, or with O(checks) every check
  type: str
  sample: no RDMA NIC on this host
"""
