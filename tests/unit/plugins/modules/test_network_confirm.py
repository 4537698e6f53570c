# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""network_confirm in-process against changes network_apply really armed in temp directories."""

import os
import time

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import network_commit as nc
from ansible_collections.aicluster.lab.plugins.modules import network_apply, network_confirm

P = '10-aicluster-'
ETH1 = '[Match]\nName=eth1\n\n[Network]\nDHCP=yes\n'


@pytest.fixture
def env(network_env):
    return network_env


@pytest.fixture
def apply(env, run_module):
    def _run(files, timeout=30):
        return run_module(network_apply, {'files': files, 'directory': env['network'], 'state_dir': env['state'],
                                          'reload': [['true']], 'rollback_timeout': timeout})
    return _run


@pytest.fixture
def confirm(env, run_module):
    def _run(change_id, check_mode=False, **extra):
        return run_module(network_confirm, dict(change_id=change_id, state_dir=env['state'], **extra),
                          check_mode=check_mode)
    return _run


def wait_rollback(change_dir):
    end = time.monotonic() + 15
    while not os.path.exists(os.path.join(change_dir, 'rolled_back')):
        assert time.monotonic() < end, 'no rollback record'
        time.sleep(0.1)


def test_confirm_in_time_stops_the_rollback(env, apply, confirm):
    applied = apply({P + 'eth1.network': ETH1}, timeout=2)
    pid = applied['rollback_pid']
    result = confirm(applied['change_id'])
    assert result['changed'] is True and result['status'] == 'confirmed', result
    assert 0 <= result['confirmed_after_s'] < 2 and result['rollback_pid'] == pid
    assert not nc._proc_alive(pid, applied['change_dir'])
    assert not os.path.exists('/proc/%d' % pid) or open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[0] == 'Z'
    time.sleep(2.5)
    assert os.listdir(env['network']) == [P + 'eth1.network']
    assert not os.path.exists(os.path.join(applied['change_dir'], 'rolled_back'))
    again = confirm(applied['change_id'])
    assert again['changed'] is False and again['status'] == 'confirmed'


def test_rolled_back_change_fails_with_the_record(env, apply, confirm):
    applied = apply({P + 'eth1.network': ETH1}, timeout=1)
    wait_rollback(applied['change_dir'])
    result = confirm(applied['change_id'])
    assert result.get('failed') is True and result['status'] == 'rolled_back'
    assert result['msg'].startswith('change %s was rolled back by the host ' % applied['change_id'])
    assert result['msg'].endswith('no new connection from the controller confirmed it within 1 s of the change taking effect')
    assert result['rollback']['trigger'] == 'timeout' and result['rollback']['removed'] == [P + 'eth1.network']
    assert os.listdir(env['network']) == []


def test_check_mode_confirms_nothing(env, apply, confirm):
    applied = apply({P + 'eth1.network': ETH1})
    result = confirm(applied['change_id'], check_mode=True)
    assert result['changed'] is True and 'would confirm' in result['msg']
    assert not os.path.exists(os.path.join(applied['change_dir'], 'confirmed'))
    assert nc._proc_alive(applied['rollback_pid'], applied['change_dir'])


def test_wait_rolled_back_waits_for_the_record(env, apply, confirm):
    applied = apply({P + 'eth1.network': ETH1}, timeout=1)
    result = confirm(applied['change_id'], wait_rolled_back=True)
    assert result.get('failed') is True and result['status'] == 'rolled_back'
    assert 'within 1 s of the change taking effect' in result['msg']
    assert result['rollback']['seconds_after_effective'] >= 1 and result['rollback']['seconds_after_arming'] >= 1


def test_wait_rolled_back_on_a_confirmed_change_succeeds_without_confirming_anything(env, apply, confirm):
    applied = apply({P + 'eth1.network': ETH1})
    confirm(applied['change_id'])
    result = confirm(applied['change_id'], wait_rolled_back=True)
    assert result['changed'] is False and result['status'] == 'confirmed'


@pytest.mark.parametrize('change_id, message', [
    ('../../etc', "change_id: '../../etc' is not a change id"),
    ('20250101T000000.000Z-abcdef', 'change_id: no change 20250101T000000.000Z-abcdef in '),
])
def test_bad_or_unknown_change_id(env, confirm, change_id, message):
    result = confirm(change_id)
    assert result.get('failed') is True and message in result['msg']


def test_old_changes_are_pruned_to_five(env, apply, confirm):
    ids = []
    for index in range(7):
        # Alternate the content so that every run is a change.
        applied = apply({P + 'eth1.network': ETH1.replace('yes', 'ipv4') if index % 2 else ETH1})
        ids.append(applied['change_id'])
        result = confirm(applied['change_id'])
    assert result['pruned'] == ids[1:2]
    assert sorted(os.listdir(env['state'])) == sorted(ids[2:] + ['lock'])
