# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""network_apply run in-process with its real logic against temp directories.

The reload commands are real programs writing a marker; the networkctl and ip the rollback
and the netdev handling use are swapped for logging stand-ins through module_utils' defaults."""

import json
import os
import stat
import time

import pytest

from ansible_collections.aicluster.lab.plugins.modules import network_apply, network_confirm

P = '10-aicluster-'
ETH1 = '[Match]\nName=eth1\n\n[Network]\nAddress=192.168.200.11/24\n'
ETH1_DHCP = '[Match]\nName=eth1\n\n[Network]\nDHCP=yes\n'


@pytest.fixture
def env(network_env):
    return network_env


@pytest.fixture
def apply(env, run_module):
    def _run(files, check_mode=False, diff=False, **extra):
        return run_module(network_apply, dict(env['args'], files=files, **extra), check_mode=check_mode, diff=diff)
    return _run


def confirm(run_module, env, change_id, **extra):
    return run_module(network_confirm, dict(change_id=change_id, state_dir=env['state'], **extra))


def listing(env):
    result = {}
    for name in sorted(os.listdir(env['network'])):
        path = os.path.join(env['network'], name)
        with open(path) as handle:
            result[name] = (handle.read(), '%04o' % stat.S_IMODE(os.stat(path).st_mode))
    return result


def log_lines(env):
    with open(env['log']) as handle:
        return handle.read().splitlines()


def test_apply_confirm_then_idempotent(env, apply, run_module):
    first = apply({P + 'eth1.network': ETH1})
    assert first['changed'] is True and first['armed'] is True, first
    assert first['files_added'] == [P + 'eth1.network'] and first['reconfigured'] == ['eth1']
    assert first['rollback_deadline'] > time.time() + 50
    assert listing(env) == {P + 'eth1.network': (ETH1, '0644')}
    assert log_lines(env) == ['reloaded']
    assert confirm(run_module, env, first['change_id'])['changed'] is True
    second = apply({P + 'eth1.network': ETH1})
    assert second['changed'] is False and second['armed'] is False and second['change_id'] is None
    assert log_lines(env) == ['reloaded']  # not reloaded again


def test_check_mode_with_diff_changes_nothing(env, apply):
    with open(os.path.join(env['network'], P + 'eth1.network'), 'w') as handle:
        handle.write(ETH1)
    os.chmod(os.path.join(env['network'], P + 'eth1.network'), 0o644)
    result = apply({P + 'eth1.network': ETH1_DHCP}, check_mode=True, diff=True)
    assert result['changed'] is True and result['armed'] is False and result['change_id'] is None
    assert result['diff'] == [{
        'before_header': os.path.join(env['network'], P + 'eth1.network') + ' (mode 0644)',
        'after_header': os.path.join(env['network'], P + 'eth1.network') + ' (mode 0644)',
        'before': ETH1, 'after': ETH1_DHCP}]
    assert 'check mode' in result['msg']
    assert listing(env) == {P + 'eth1.network': (ETH1, '0644')}
    assert log_lines(env) == [] and not os.path.exists(env['state'])


def test_only_owned_files_are_touched(env, apply):
    for name in ('99-default.network', '20-other.netdev', P + 'stale.network'):
        with open(os.path.join(env['network'], name), 'w') as handle:
            handle.write('[Match]\nName=x\n')
    result = apply({P + 'eth1.network': ETH1}, mode='0600')
    assert result['files_removed'] == [P + 'stale.network']
    assert listing(env) == {'20-other.netdev': ('[Match]\nName=x\n', '0644'),
                            '99-default.network': ('[Match]\nName=x\n', '0644'),
                            P + 'eth1.network': (ETH1, '0600')}


@pytest.mark.parametrize('extra, message', [
    ({'files': {'eth1.network': ETH1}},
     "files: 'eth1.network' does not start with the prefix '10-aicluster-'"),
    ({'files': {P + 'x.network': ETH1}, 'prefix': '20-lab-'},
     "files: '10-aicluster-x.network' does not start with the prefix '20-lab-'"),
    ({'reload': ['networkctl reload']},
     "reload[0]: ['networkctl reload'] names a program with a space in it"),
    ({'rollback_timeout': 0}, 'rollback_timeout: 0 must be a number of seconds from 1 to 86400'),
    ({'mode': 'rw-r--r--'}, "mode: 'rw-r--r--' is not an octal file mode such as '0644'"),
])
def test_bad_input_fails_naming_field_and_value(env, run_module, extra, message):
    args = dict(env['args'], files={P + 'eth1.network': ETH1})
    args.update(extra)
    result = run_module(network_apply, args)
    assert result.get('failed') is True and message in result['msg'], result
    assert os.listdir(env['network']) == [] and not os.path.exists(env['state'])


def test_pending_change_is_refused(env, apply, run_module):
    first = apply({P + 'eth1.network': ETH1})
    refused = apply({P + 'eth1.network': ETH1_DHCP})
    assert refused.get('failed') is True and refused['pending_change'] == first['change_id']
    assert 'still pending' in refused['msg'] and 'network_confirm change_id=%s' % first['change_id'] in refused['msg']
    assert listing(env) == {P + 'eth1.network': (ETH1, '0644')}
    # Even a run that would change nothing: the pending rollback would undo its files.
    assert apply({P + 'eth1.network': ETH1}).get('failed') is True
    confirm(run_module, env, first['change_id'])
    assert apply({P + 'eth1.network': ETH1_DHCP})['changed'] is True


def test_unconfirmed_change_rolls_back_by_itself(env, apply):
    with open(os.path.join(env['network'], P + 'eth1.network'), 'w') as handle:
        handle.write(ETH1)
    os.chmod(os.path.join(env['network'], P + 'eth1.network'), 0o640)
    open(os.path.join(env['sys'], 'eth1'), 'w').close()
    before = listing(env)
    result = apply({P + 'eth1.network': ETH1_DHCP, P + 'eth2.network': '[Match]\nName=eth2\n'},
                   rollback_timeout=1)
    assert result['changed'] is True and listing(env) != before
    rolled_back = os.path.join(result['change_dir'], 'rolled_back')
    end = time.monotonic() + 15
    while not os.path.exists(rolled_back):
        assert time.monotonic() < end, 'no rollback record'
        time.sleep(0.1)
    assert listing(env) == before
    record = json.load(open(rolled_back))
    assert record['restored'] == [P + 'eth1.network'] and record['removed'] == [P + 'eth2.network']
    # eth2 does not exist on this host, so only eth1 is reconfigured by name.
    assert log_lines(env) == ['reloaded', 'reloaded', 'networkctl reconfigure eth1']


def test_failing_reload_restores_and_fails(env, apply):
    result = apply({P + 'eth1.network': ETH1}, reload=[['sh', '-c', 'exit 1']])
    assert result.get('failed') is True
    assert 'failed while running sh -c exit 1' in result['msg'] and 'no rollback timer is left armed' in result['msg']
    assert result['armed'] is False and result['rollback']['removed'] == [P + 'eth1.network']
    assert os.listdir(env['network']) == []


# The action's quick look (plugins/action/network_apply.py): plain sh on the same directories,
# read on the controller. It may answer "no change" only where the module would.

def _looks_unchanged(env, files, mode=0o644):
    import subprocess  # pylint: disable=import-outside-toplevel
    from ansible_collections.aicluster.lab.plugins.module_utils.network_commit import look_script, look_unchanged
    script = look_script(env['network'], P, env['state'])
    out = subprocess.run(['sh', '-c', script], check=True, capture_output=True, text=True).stdout
    return look_unchanged(out, files, mode)


def test_the_look_answers_no_change_only_where_the_module_would(env, apply, run_module):
    files = {P + 'eth1.network': ETH1, P + 'bond0 x.netdev': '[NetDev]\nName=bond0\n'}
    assert not _looks_unchanged(env, files)
    first = apply(files)
    # Pending: the module refuses even when the files are as wanted, so the look steps aside.
    assert not _looks_unchanged(env, files)
    confirm(run_module, env, first['change_id'])
    assert _looks_unchanged(env, files) and apply(files, check_mode=True)['changed'] is False
    eth1 = os.path.join(env['network'], P + 'eth1.network')
    for spoil, undo in [
            (lambda: os.chmod(eth1, 0o600), lambda: os.chmod(eth1, 0o644)),
            (lambda: open(eth1, 'a').write('#\n'), lambda: open(eth1, 'w').write(ETH1)),
            (lambda: open(os.path.join(env['network'], P + 'extra.network'), 'w').close(),
             lambda: os.unlink(os.path.join(env['network'], P + 'extra.network'))),
            (lambda: os.symlink('/dev/null', os.path.join(env['network'], P + 'eth9.network')),
             lambda: os.unlink(os.path.join(env['network'], P + 'eth9.network')))]:
        spoil()
        assert not _looks_unchanged(env, files)
        assert apply(files, check_mode=True)['changed'] is True
        undo()
        assert _looks_unchanged(env, files)
    # A file of another owner's prefix, or a drop-in directory, is not the module's: still no change.
    open(os.path.join(env['network'], '99-other.network'), 'w').close()
    os.mkdir(os.path.join(env['network'], P + 'eth1.network.d'))
    assert _looks_unchanged(env, files) and apply(files, check_mode=True)['changed'] is False
    # Another mode asked for is a difference; a missing wanted file too.
    assert not _looks_unchanged(env, files, mode=0o600)
    assert not _looks_unchanged(env, dict(files, **{P + 'eth2.network': ETH1}))
    # A stale change (rollback gone, never confirmed) is the module's to mark: the look steps aside.
    stale = os.path.join(env['state'], '20260101T000000.000Z-abcdef')
    os.makedirs(stale)
    open(os.path.join(stale, 'plan.json'), 'w').write('{}')
    assert not _looks_unchanged(env, files)
