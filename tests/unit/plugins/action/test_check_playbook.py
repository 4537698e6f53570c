# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""aicluster.lab.check and aicluster.lab.suite_report in real ansible-playbook runs.

Each test writes a small playbook under tmp_path and runs it against localhost with the
local connection, then reads the report files the run produced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.normpath(os.path.join(HERE, '..', '..', '..', '..'))
COLLECTIONS = os.path.join(CHECKOUT, '.collections')
COLLECTION_LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'aicluster', 'lab')


def _ansible_playbook():
    beside_python = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return beside_python if os.path.exists(beside_python) else shutil.which('ansible-playbook')


def _skip_reason():
    if not os.path.isdir(COLLECTION_LINK):
        return '%s is missing: run ./lab setup to link the checkout as the installed collection' % COLLECTION_LINK
    if os.path.realpath(COLLECTION_LINK) != os.path.realpath(CHECKOUT):
        return '%s does not point at this checkout (%s)' % (COLLECTION_LINK, CHECKOUT)
    if not _ansible_playbook():
        return 'ansible-playbook is not installed'
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or '')

CHECKS_PLAYBOOK = """
- name: Validate
  hosts: all
  gather_facts: false
  vars:
    suite_run_id: "{{ run_id }}"
    suite_run_dir: "{{ results_dir }}/{{ suite_run_id }}"
    boot_seconds: 12.5
    ping_loss: 20
  tasks:
    - name: "Check: node booted"
      aicluster.lab.check:
        name: node_booted
        category: L1
        description: The node came up in time.
        that:
          - boot_seconds | float < 60
        figures:
          boot_s: "{{ boot_seconds }}"

    - name: "Check: L2 trunk ping"
      aicluster.lab.check:
        name: l2_trunk_ping
        category: L2
        that:
          - ping_loss | int == 0
        fail_msg: "trunk ping lost {{ ping_loss }}% of its packets"
        figures:
          loss_pct: "{{ ping_loss }}"
      ignore_errors: true

    - name: "Check: RDMA latency"
      aicluster.lab.check:
        name: rdma_latency
        category: performance
        skip_reason: no RDMA NIC on this host
        that:
          - rdma_latency_us < 5

- name: Report
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Write the report
      aicluster.lab.suite_report:
        run_dir: "{{ results_dir }}/{{ run_id }}"
        title: Unit test run
        expected_hosts: "{{ groups['all'] }}"
        metadata:
          profile: unit-test
        fail_on_failed_checks: true
"""

CONCURRENT_PLAYBOOK = """
- name: Validate
  hosts: all
  gather_facts: false
  vars:
    suite_run_id: "{{ run_id }}"
    suite_run_dir: "{{ results_dir }}/{{ suite_run_id }}"
  tasks:
    - name: "Check: many checks per host"
      aicluster.lab.check:
        name: "probe_{{ item }}"
        category: network
        that:
          - item is number
        figures:
          index: "{{ item }}"
      loop: "{{ range(40) | list }}"

- name: Report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the report
      aicluster.lab.suite_report:
        run_dir: "{{ results_dir }}/{{ run_id }}"
        expected_hosts: "{{ groups['all'] + ['c'] }}"
"""


BATCH_PLAYBOOK = """
- name: Validate
  hosts: all
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    x: 1
    # What a verdict filter returns for a host.
    verdict:
      - {name: l1_hostname, category: L1, description: the hostname, passed: true, message: hostname ok, figures: {}}
      - {name: net_mtu, category: network, description: the MTU, passed: false, message: mtu 1400, figures: {mtu: 1400}}
      - {name: net_vlan, category: network, description: VLANs, passed: false, message: VLAN 201 on eth1, figures: {}}
      - {name: net_ping, category: network, description: ping, passed: true, message: no reply, figures: {},
         skip_reason: the peer does not answer}
  tasks:
    - name: Start the run
      ansible.builtin.file:
        path: "{{ results_dir }}/{{ run_id }}"
        state: directory
        mode: "0755"
      run_once: true

    - name: Remember the run
      ansible.builtin.set_fact:
        suite_run_id: "{{ run_id }}"
        suite_run_dir: "{{ results_dir }}/{{ run_id }}"

    - name: Record the verdict's checks
      aicluster.lab.check:
        checks: "{{ verdict | aicluster.lab.check_batch('_v', {'net_vlan': 'VLAN 201'}) }}"
      register: from_verdict
      ignore_errors: true

    - name: Record checks written out
      aicluster.lab.check:
        checks:
          - name: node_booted
            category: L1
            description: The node came up in time.
            that:
              - x == 1
              - x in [1, 2]
            figures:
              boot_s: "{{ x * 12.5 }}"
            success_msg: "up in {{ x * 12.5 }} s"
          - name: rdma_latency
            category: performance
            skip_reason: no RDMA NIC on this host
            that: rdma_latency_us < 5

    - name: Record checks that are all skipped
      aicluster.lab.check:
        checks: "{{ verdict | selectattr('skip_reason', 'defined') | aicluster.lab.check_batch }}"
      register: all_skipped

    - name: The registered results
      ansible.builtin.assert:
        that:
          - from_verdict is failed
          - from_verdict.checks | map(attribute='status') | list == ['passed', 'failed', 'passed', 'skipped']
          - all_skipped is skipped
          - all_skipped.checks | length == 1

- name: Report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the report
      aicluster.lab.suite_report:
        run_dir: "{{ results_dir }}/{{ run_id }}"
        expected_hosts: ['a', 'b']
"""


def run_playbook(tmp_path, playbook, inventory, *options, **settings):
    (tmp_path / 'playbook.yml').write_text(playbook)
    env = dict(os.environ)
    # The checkout's ansible.cfg (exported by ./lab) sets inventory, forks and output
    # format; this run must depend on nothing but its own command line.
    env.pop('ANSIBLE_CONFIG', None)
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0', **settings)
    command = [_ansible_playbook(), '-i', inventory, '-e', 'results_dir=%s' % (tmp_path / 'results'),
               '-e', 'run_id=run1'] + list(options) + ['playbook.yml']
    # check=False: the exit code is part of what the tests assert.
    process = subprocess.run(command, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, check=False,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    return process.returncode, process.stdout, tmp_path / 'results' / 'run1'


def read_records(run_dir):
    with open(str(run_dir / 'checks.jsonl')) as handle:
        return [json.loads(line) for line in handle]


def test_pass_fail_skip_and_report(tmp_path):
    rc, output, run_dir = run_playbook(tmp_path, CHECKS_PLAYBOOK, 'localhost,', '-c', 'local')

    assert rc == 2, output  # fail_on_failed_checks turns the failed check into a failed run
    # A person watching the run sees each check and its outcome.
    assert 'PASSED L1/node_booted on localhost: All conditions passed [boot_s=12.5]' in output
    assert 'FAILED L2/l2_trunk_ping on localhost: trunk ping lost 20% of its packets [loss_pct=20]' in output
    assert 'skipping: [localhost]' in output and 'no RDMA NIC on this host' in output

    records = {record['name']: record for record in read_records(run_dir)}
    assert {name: record['status'] for name, record in records.items()} == {
        'node_booted': 'passed', 'l2_trunk_ping': 'failed', 'rdma_latency': 'skipped'}
    assert records['node_booted']['figures'] == {'boot_s': 12.5}
    assert all(record['run_id'] == 'run1' and record['host'] == 'localhost' for record in records.values())

    junit = ET.parse(str(run_dir / 'junit.xml')).getroot()
    assert (junit.get('tests'), junit.get('failures'), junit.get('skipped')) == ('3', '1', '1')
    assert [suite.get('name') for suite in junit] == ['L1', 'L2', 'performance']
    failure = junit.find(".//testcase[@name='localhost: l2_trunk_ping']/failure")
    assert failure.get('message') == 'trunk ping lost 20% of its packets'
    skipped = junit.find(".//testcase[@name='localhost: rdma_latency']/skipped")
    assert skipped.get('message') == 'no RDMA NIC on this host'
    boot = junit.find(".//testcase[@name='localhost: node_booted']")
    assert boot.get('classname') == 'aicluster.lab.L1'
    assert boot.find("properties/property[@name='boot_s']").get('value') == '12.5'

    report = json.loads((run_dir / 'report.json').read_text())
    assert report['run_id'] == 'run1' and report['metadata'] == {'profile': 'unit-test'}
    assert (report['summary']['passed'], report['summary']['failed'], report['summary']['skipped']) == (1, 1, 1)

    summary = (run_dir / 'summary.md').read_text()
    assert '| localhost | l2_trunk_ping | **FAILED** | loss_pct=20 | trunk ping lost 20% of its packets |' in summary
    assert '| localhost | rdma_latency | skipped |  | no RDMA NIC on this host |' in summary
    assert '| **all** | 1 | 1 | 1 | 3 |' in summary


def test_check_mode_records_checks_but_writes_no_report(tmp_path):
    rc, output, run_dir = run_playbook(tmp_path, CHECKS_PLAYBOOK, 'localhost,', '-c', 'local', '--check', '--diff')

    assert rc == 2, output  # the report is still rendered, so its failed check still fails the run
    assert all(record['check_mode'] is True for record in read_records(run_dir))
    assert sorted(os.listdir(str(run_dir))) == ['checks.jsonl']


def test_two_hosts_record_concurrently(tmp_path):
    rc, output, run_dir = run_playbook(tmp_path, CONCURRENT_PLAYBOOK, 'a,b,', '-e', 'ansible_connection=local',
                                       '-f', '2')

    assert rc == 0, output
    records = read_records(run_dir)  # every line parses: no interleaved writes
    assert sorted((record['host'], record['figures']['index']) for record in records) == [
        (host, index) for host in ('a', 'b') for index in range(40)]

    report = json.loads((run_dir / 'report.json').read_text())
    assert report['summary']['by_host']['a'] == {'passed': 40, 'failed': 0, 'skipped': 0, 'total': 40}
    assert report['summary']['by_host']['b']['passed'] == 40
    # c never ran a check: it is reported, not lost.
    assert report['summary']['by_host']['c'] == {'passed': 0, 'failed': 1, 'skipped': 0, 'total': 1}
    assert report['checks'][0]['name'] == 'no_results' and report['checks'][0]['host'] == 'c'
    ET.parse(str(run_dir / 'junit.xml'))


def test_batches_are_recorded_in_order_and_shown_one_line_per_check(tmp_path):
    rc, output, run_dir = run_playbook(
        tmp_path, BATCH_PLAYBOOK, 'a,b,', '-e', 'ansible_connection=local', '-f', '2',
        ANSIBLE_STDOUT_CALLBACK='aicluster.lab.progress', ANSIBLE_CALLBACKS_ENABLED='aicluster.lab.run_state')

    assert rc == 0, output
    names = ['l1_hostname_v', 'net_mtu_v', 'net_vlan_v', 'net_ping_v', 'node_booted', 'rdma_latency', 'net_ping']
    records = read_records(run_dir)
    for host in ('a', 'b'):
        mine = [record for record in records if record['host'] == host]
        assert [record['name'] for record in mine] == names  # each batch in its order
        assert [record['status'] for record in mine] == [
            'passed', 'failed', 'passed', 'skipped', 'passed', 'skipped', 'skipped']
        assert mine[2]['message'] == 'failed as expected: VLAN 201 on eth1'
        assert mine[4]['figures'] == {'boot_s': 12.5} and mine[4]['message'] == 'up in 12.5 s'
        assert all(record['run_id'] == 'run1' for record in mine)

    # The compact view: one line per check, and the counts of the report.
    lines = [line.split('] ', 1)[1] for line in output.splitlines() if re.match(r'^\[ *\d+:\d\d\] ', line)]
    check_lines = [line for line in lines if line[:4] in ('ok  ', 'FAIL', 'skip')]
    assert len(check_lines) == 14, output
    assert any(line.startswith('FAIL network/net_mtu_v on a (') and line.endswith('): mtu 1400') for line in check_lines)
    report = json.loads((run_dir / 'report.json').read_text())
    assert (report['summary']['passed'], report['summary']['failed'], report['summary']['skipped']) == (6, 2, 6)
    assert lines[-1].startswith('done: 14 checks (6 passed, 2 failed, 6 skipped); full output in'), output

    state = json.loads((run_dir / 'state.json').read_text())
    assert state['status'] == 'finished'
    assert state['checks'] == {'passed': 6, 'failed': 2, 'skipped': 6, 'total': 14}
    assert sorted((check['host'], check['name']) for check in state['failed_checks']) == [
        ('a', 'net_mtu_v'), ('b', 'net_mtu_v')]
