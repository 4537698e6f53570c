# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bond_failover_probe in-process: check mode, refused options and failures, and a short run with
a fake ping, all against a fake /sys/class/net in a temp directory."""

from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

from ansible_collections.aicluster.lab.plugins.module_utils import failover_probe as fp
from ansible_collections.aicluster.lab.plugins.modules import bond_failover_probe
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.test_failover_probe import (
    FAKE_PING,
    fake_bond,
)

ARGS = {'target': '192.168.200.12', 'interface': 'bond0.200', 'bond': 'bond0', 'duration_s': 12}


@pytest.fixture
def sysfs(tmp_path, monkeypatch):
    root = fake_bond(tmp_path / 'sys')
    monkeypatch.setattr(fp, 'SYS_CLASS_NET', root)
    # A ping that leaves a trace: nothing may run unless a test says so.
    trace = str(tmp_path / 'ran')
    monkeypatch.setattr(fp, 'PING', ['sh', '-c', 'touch %s; exit 2' % trace, 'ping'])
    return {'root': root, 'trace': trace, 'tmp': tmp_path}


@pytest.fixture
def probe(sysfs, run_module):
    def _run(check_mode=False, **args):
        return run_module(bond_failover_probe, dict(ARGS, **args), check_mode=check_mode)
    return _run


def test_check_mode_runs_nothing(sysfs, probe):
    result = probe(check_mode=True)
    assert result.get('failed') is None and result['changed'] is False and result['skipped'] is True
    assert result['msg'] == 'check mode: would ping 192.168.200.12 every 10 ms for 12 s while watching bond0'
    assert result['cmd'][-7:] == ['-i', '0.01', '-c', '1200', '-I', 'bond0.200', '192.168.200.12']
    assert result['bond']['active'] == 'eth1' and result['bond']['members'] == ['eth1', 'eth2']
    assert not os.path.exists(sysfs['trace'])


def test_check_mode_still_checks_the_bond(sysfs, probe):
    result = probe(check_mode=True, bond='bond7')
    assert result['failed'] is True
    assert result['msg'] == "bond: 'bond7' is not a bond on this host (no %s/bond7/bonding)" % sysfs['root']


@pytest.mark.parametrize('args, message', [
    ({'bond': 'bond7'}, "bond: 'bond7' is not a bond on this host (no {root}/bond7/bonding)"),
    ({'interval_ms': 0}, 'interval_ms: 0 is below 1: ping cannot send at a shorter interval (0 would make it flood)'),
    ({'interval_ms': 20000}, 'interval_ms: 20000 leaves fewer than 2 packets in duration_s 12;'),
    ({'duration_s': -1}, 'duration_s: -1.0 must be a number of seconds greater than 0'),
    ({'target': 'node2'}, "target: 'node2' is not an IP address"),
    ({'interface': 'bond0.999'}, "interface: 'bond0.999' is not a network interface on this host (no {root}/bond0.999)"),
])
def test_refused_options_name_the_option_and_the_value(sysfs, probe, args, message):
    result = probe(**args)
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith(message.format(root=sysfs['root']))
    assert not os.path.exists(sysfs['trace'])


def test_interval_below_what_ping_allows_a_user(sysfs, probe, monkeypatch):
    monkeypatch.setattr(fp.os, 'getuid', lambda: 1000)
    result = probe(interval_ms=1)
    assert result['failed'] is True
    assert result['msg'] == ('interval_ms: 1 is below 2, the shortest interval ping allows a user other than root '
                             '(uid 1000)')


def test_ping_that_fails_fails_the_module_with_what_was_measured(sysfs, probe, monkeypatch):
    monkeypatch.setattr(fp, 'PING', ['sh', '-c', 'echo "ping: SO_BINDTODEVICE bond0.200: No such device" >&2; exit 2',
                                     'ping'])
    result = probe(duration_s=0.5)
    assert result['failed'] is True
    assert result['msg'] == 'ping failed (rc 2): ping: SO_BINDTODEVICE bond0.200: No such device'
    assert result['ping_rc'] == 2 and result['bond']['name'] == 'bond0' and result['outages'] == []


def test_run_returns_every_documented_key(sysfs, probe, monkeypatch):
    monkeypatch.setattr(fp, 'PING', [sys.executable, str(_script(sysfs['tmp']))])
    result = probe(interval_ms=5, duration_s=0.3)
    assert result.get('failed') is None and result['changed'] is False, result
    assert (result['sent'], result['received'], result['lost'], result['outages']) == (60, 60, 0, [])
    assert result['failover'] is None and result['failback'] is None and result['transitions'] == []
    assert result['interval_ms'] == 5 and result['duration_s'] == 0.3
    documented = yaml.safe_load(bond_failover_probe.RETURN)
    check_mode_only = {'msg', 'skipped'}
    assert set(documented) - check_mode_only == set(result) - {'invocation', '_stderr', 'changed'}
    for key in ('failover', 'outages', 'transitions', 'bond', 'poll'):
        assert documented[key]['contains'], key
    assert set(documented['failover']['contains']) == set(fp.attribute_events(
        [{'time': 1.0, 'kind': 'active', 'link': 'bond0', 'from': 'eth1', 'to': 'eth2'}], [], {}, 'eth1')[0])
    assert set(documented['bond']['contains']) == set(result['bond'])


def test_a_bond_without_active_member_warns(sysfs, probe, monkeypatch):
    with open(os.path.join(sysfs['root'], 'bond0', 'bonding', 'mode'), 'w') as handle:
        handle.write('balance-rr 0\n')
    result = probe(check_mode=True)
    # ansible-core 2.19 returns warnings as structured events (older ones as strings); once
    # controller code is loaded (other tests), it prints them to stderr instead.
    seen = ' '.join((json.dumps(result.get('warnings', [])) + result['_stderr']).split())
    assert 'bond0 is in mode balance-rr, which has no active member: failover and failback stay null' in seen


def _script(tmp):
    path = tmp / 'fake_ping.py'
    path.write_text(FAKE_PING)
    return path
