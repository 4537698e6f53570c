# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""network_commit: parsing and planning as pure functions, then the real apply, rollback and
confirm against temp directories. networkctl, ip and the networkd restart are shell stand-ins
that log their arguments; /sys/class/net and networkd's /run/systemd/netif/links are temp
directories holding the host's "links" and their states."""

import json
import os
import re
import signal
import stat
import time

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import network_commit as nc
from ansible_collections.aicluster.lab.plugins.module_utils import network_units as nu

P = '10-aicluster-'


def entry(text, mode=0o644):
    return {'symlink': None, 'data': text.encode(), 'mode': mode}


def network(name, extra=''):
    return '[Match]\nName=%s\n\n[Network]\n%s' % (name, extra)


NETDEV_BOND = '[NetDev]\nName=bond0\nKind=bond\n\n[Bond]\nMode=active-backup\n'
NETDEV_VLAN = '[NetDev]\nName=bond0.200\nKind=vlan\n\n[VLAN]\nId=200\n'


class Host:
    """A fake host: config dir, state dir, link dir, and a log of every command run."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.dir = str(tmp_path / 'network')
        self.state = str(tmp_path / 'state')
        self.sys = str(tmp_path / 'sys')
        self.netif = str(tmp_path / 'netif')
        self.log = str(tmp_path / 'commands.log')
        for path in (self.dir, self.sys, self.netif):
            os.makedirs(path)
        open(self.log, 'w').close()
        # ip link delete NAME removes the link's entry, as the kernel would.
        self.ip = ['sh', '-c', 'echo "ip $*" >> %s; rm -rf %s/"$3"' % (self.log, self.sys), 'ip']
        self.networkctl = ['sh', '-c', 'echo "networkctl $*" >> %s' % self.log, 'networkctl']
        self.restart = ['sh', '-c', 'echo restart-networkd >> %s' % self.log]
        self.reload = [['sh', '-c', 'echo reload >> %s' % self.log]]
        self.ifindex = 1

    def links(self, *names, **states):
        """Links as /sys/class/net/<name>/ifindex, networkd's state as ADMIN_STATE."""
        for name in list(names) + list(states):
            self.ifindex += 1
            os.makedirs(os.path.join(self.sys, name))
            with open(os.path.join(self.sys, name, 'ifindex'), 'w') as handle:
                handle.write('%d\n' % self.ifindex)
            with open(os.path.join(self.netif, str(self.ifindex)), 'w') as handle:
                handle.write('ADMIN_STATE=%s\nOPER_STATE=routable\n' % states.get(name, 'configured'))

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as handle:
            handle.write(text)
        os.chmod(path, mode)

    def snapshot(self):
        """Every entry of the config dir: content, mode, or symlink target."""
        result = {}
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if os.path.islink(path):
                result[name] = ('link', os.readlink(path))
            elif os.path.isdir(path):
                result[name] = ('dir', sorted(os.listdir(path)))
            else:
                with open(path, 'rb') as handle:
                    result[name] = (handle.read(), stat.S_IMODE(os.stat(path).st_mode))
        return result

    def commands(self):
        with open(self.log) as handle:
            return handle.read().splitlines()

    def apply(self, files, **kwargs):
        args = dict(directory=self.dir, state_dir=self.state, reload=self.reload, rollback_timeout=30,
                    networkctl=self.networkctl, ip=self.ip, restart=self.restart, sys_class_net=self.sys,
                    netif_links=self.netif, settle=0)
        args.update(kwargs)
        return nc.apply_change(files, **args)


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    yield h
    # Never leave a sleeping rollback behind a test.
    for name in nc._change_dirs(h.state):
        nc._kill_rollback(os.path.join(h.state, name))


def wait_for(path, timeout=15.0):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < end, '%s did not appear' % path
        time.sleep(0.1)


# ---------------------------------------------------------------- parsing

def test_parse_unit_sections_comments_continuations():
    text = '# c\n[Match]\nName=eth1 \\\n  eth2\n; c\n[Network]\nVLAN=bond0.200\nVLAN=bond0.100\nBond = bond0\n'
    assert nu.parse_unit(text) == [('Match', 'Name', 'eth1  eth2'), ('Network', 'VLAN', 'bond0.200'),
                                   ('Network', 'VLAN', 'bond0.100'), ('Network', 'Bond', 'bond0')]
    assert nu.match_names(text) == ['eth1', 'eth2']
    assert nu.netdev_refs(text) == {'bond0.200', 'bond0.100', 'bond0'}
    assert nu.netdev_refs(text, nu.STACKED_REF_KEYS) == {'bond0.200', 'bond0.100'}


@pytest.mark.parametrize('text, stacked', [
    (NETDEV_VLAN, True),
    (NETDEV_BOND, False),
    ('[NetDev]\nName=mv0\nKind=macvlan\n', True),
    ('[NetDev]\nName=vx0\nKind=vxlan\n[VXLAN]\nVNI=5\nIndependent=yes\n', False),
    ('[NetDev]\nName=gre1\nKind=gre\n', True),
])
def test_netdev_stacked(text, stacked):
    assert nu.netdev_stacked(text) is stacked


def test_match_name_empty_assignment_resets():
    assert nu.match_names('[Match]\nName=eth1\nName=\nName=eth3 en*\n') == ['eth3', 'en*']


def test_netdev_names_last_wins():
    assert nu.netdev_names(NETDEV_BOND) == ['bond0']
    assert nu.netdev_names('[NetDev]\nName=a\nName=b\n') == ['b']
    assert nu.netdev_names('[Match]\nName=a\n') == []


def test_netplan_model():
    text = ('network:\n  version: 2\n  ethernets:\n    nic1: {match: {macaddress: "52:54:00:00:00:01"}, set-name: eth1}\n'
            '    eth2: {}\n  bonds:\n    bond0: {interfaces: [eth1, eth2], parameters: {mode: active-backup}}\n'
            '  vlans:\n    bond0.200: {id: 200, link: bond0, addresses: [192.168.200.11/24]}\n')
    model = nu.netplan_model(text)
    assert model['links'] == {'eth1', 'eth2', 'bond0', 'bond0.200'}
    assert sorted(model['virtual']) == ['bond0', 'bond0.200']
    assert model['stacked'] == {'bond0': {'bond0.200'}}


# ---------------------------------------------------------------- planning

def test_plan_added_changed_removed_and_mode_only_change():
    old = {P + 'a.network': entry(network('eth1')), P + 'b.network': entry(network('eth2')),
           P + 'c.network': entry(network('eth3'))}
    new = {P + 'a.network': entry(network('eth1')), P + 'b.network': entry(network('eth2'), 0o600),
           P + 'd.network': entry(network('eth4'))}
    plan = nu.plan_change(old, new, ['eth1', 'eth2', 'eth3', 'eth4'])
    assert plan['added'] == [P + 'd.network']
    assert plan['changed'] == [P + 'b.network']
    assert plan['removed'] == [P + 'c.network']
    # Only the links of the differing files: eth1's file is the same, the reload leaves it alone.
    assert plan['reconfigured'] == ['eth2', 'eth3', 'eth4']
    assert plan['delete'] == [] and plan['refresh'] == []


def test_plan_changed_bond_is_deleted_and_its_dependents_rebuilt():
    members = {P + 'eth1.network': entry(network('eth1', 'Bond=bond0\n')),
               P + 'eth2.network': entry(network('eth2', 'Bond=bond0\n')),
               P + 'eth3.network': entry(network('eth3', 'Address=10.0.0.1/24\n')),
               P + 'bond0.network': entry(network('bond0', 'VLAN=bond0.200\n')),
               P + 'bond0.200.netdev': entry(NETDEV_VLAN),
               P + 'bond0.200.network': entry(network('bond0.200', 'Address=192.168.200.11/24\n'))}
    old = dict(members, **{P + 'bond0.netdev': entry(NETDEV_BOND)})
    new = dict(members, **{P + 'bond0.netdev': entry(NETDEV_BOND.replace('active-backup', '802.3ad'))})
    plan = nu.plan_change(old, new, ['eth1', 'eth2', 'eth3', 'bond0', 'bond0.200'])
    assert plan['changed'] == [P + 'bond0.netdev']
    # Deleting bond0 takes its VLAN with it; the .network files naming either keep stale
    # netdev pointers in networkd unless rewritten.
    assert plan['delete'] == ['bond0']
    assert plan['refresh'] == [P + 'bond0.network', P + 'eth1.network', P + 'eth2.network']
    assert plan['reconfigured'] == ['bond0', 'eth1', 'eth2']
    assert plan['redefined'] == ['bond0'] and plan['created'] == []
    # Bond members and the parent of the vanished VLAN may be left failed by networkd.
    assert plan['at_risk'] == ['bond0', 'eth1', 'eth2']
    assert plan['restart'] == []  # a bond is independent: the reload recreates it


def test_plan_redefined_vlan_needs_a_networkd_restart():
    old = {P + 'v.netdev': entry(NETDEV_VLAN), P + 'bond0.network': entry(network('bond0', 'VLAN=bond0.200\n'))}
    new = dict(old, **{P + 'v.netdev': entry(NETDEV_VLAN.replace('Id=200', 'Id=201'))})
    plan = nu.plan_change(old, new, ['bond0', 'bond0.200'])
    assert plan['delete'] == ['bond0.200'] and plan['restart'] == ['bond0.200']
    assert plan['refresh'] == [P + 'bond0.network'] and plan['at_risk'] == ['bond0']
    # A VLAN under a new name is a new netdev object: no restart.
    renamed = {P + 'v.netdev': entry(NETDEV_VLAN.replace('bond0.200', 'bond0.201').replace('Id=200', 'Id=201')),
               P + 'bond0.network': entry(network('bond0', 'VLAN=bond0.201\n'))}
    assert nu.plan_change(old, renamed, ['bond0', 'bond0.200'])['restart'] == []


def test_plan_new_netdev_for_an_existing_foreign_device_does_not_delete_it():
    new = {P + 'br0.netdev': entry('[NetDev]\nName=br0\nKind=bridge\n')}
    plan = nu.plan_change({}, new, ['br0'])
    assert plan['delete'] == [] and plan['created'] == ['br0']


def test_plan_removed_netdev_deletes_existing_device():
    plan = nu.plan_change({P + 'bond0.netdev': entry(NETDEV_BOND)}, {}, ['bond0'])
    assert plan['delete'] == ['bond0'] and plan['removed'] == [P + 'bond0.netdev']


def test_plan_globs_resolve_against_links_and_negations_are_skipped():
    plan = nu.plan_change({}, {P + 'en.network': entry(network('en* !enp9s0 eth7'))},
                          ['enp1s0', 'enp2s0', 'lo'])
    assert plan['reconfigured'] == ['enp1s0', 'enp2s0', 'eth7']


def test_plan_netplan_changed_bond_is_deleted():
    def yaml(mode):
        return ('network:\n  ethernets: {eth1: {}, eth2: {}, eth3: {}}\n'
                '  bonds: {bond0: {interfaces: [eth1, eth2], parameters: {mode: %s}}}\n'
                '  vlans: {bond0.200: {id: 200, link: bond0}}\n' % mode)
    old = {'60-aicluster-lab.yaml': entry(yaml('active-backup'), 0o600)}
    new = {'60-aicluster-lab.yaml': entry(yaml('802.3ad'), 0o600)}
    plan = nu.plan_change(old, new, ['eth1', 'eth2', 'bond0', 'bond0.200'])
    assert plan['delete'] == ['bond0']
    assert plan['reconfigured'] == ['bond0', 'bond0.200', 'eth1', 'eth2', 'eth3']
    assert plan['at_risk'] == ['bond0', 'eth1', 'eth2'] and plan['restart'] == []


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize('kwargs, message', [
    ({'files': {'eth1.network': ''}}, "files: 'eth1.network' does not start with the prefix '10-aicluster-'"),
    ({'files': {'10-aicluster-../x': ''}}, "files: '10-aicluster-../x' is not a plain file name"),
    ({'files': {P + 'a.network': 3}}, 'files.10-aicluster-a.network: the content must be a string, got int'),
    ({'reload': [['networkctl reload']]}, "reload[0]: ['networkctl reload'] names a program with a space"),
    ({'reload': [[]]}, 'reload[0]: [] must be a non-empty list'),
    ({'rollback_timeout': 0}, 'rollback_timeout: 0 must be a number of seconds from 1 to 86400'),
    ({'mode': '06x4'}, "mode: '06x4' is not an octal file mode"),
    ({'prefix': ''}, "prefix: '' must be a non-empty"),
    ({'directory': 'etc/net'}, "directory: 'etc/net' is not an absolute path"),
])
def test_bad_input_names_field_and_value(host, kwargs, message):
    files = kwargs.pop('files', {P + 'a.network': network('eth1')})
    with pytest.raises(nc.CommitError) as err:
        host.apply(files, **kwargs)
    assert message in err.value.msg
    assert host.snapshot() == {} and not os.path.exists(host.state)


def test_mode_accepts_octal_strings_and_yaml_integers():
    assert nc._mode('0600') == 0o600 and nc._mode('644') == 0o644 and nc._mode(0o640) == 0o640


# ---------------------------------------------------------------- apply, rollback, confirm

def test_no_difference_changes_nothing(host):
    host.write(P + 'a.network', network('eth1'))
    result = host.apply({P + 'a.network': network('eth1')})
    assert result['changed'] is False and result['armed'] is False and result['change_id'] is None
    assert host.commands() == [] and not os.path.exists(host.state)


def test_check_mode_reports_diff_and_changes_nothing(host):
    host.write(P + 'a.network', network('eth1'))
    host.write(P + 'old.network', network('eth9'))
    before = host.snapshot()
    result = host.apply({P + 'a.network': network('eth1', 'DHCP=yes\n'), P + 'b.netdev': NETDEV_BOND},
                        check_mode=True, diff=True)
    assert result['changed'] is True and result['armed'] is False and result['change_id'] is None
    assert [d['after_header'] for d in result['diff']] == [
        os.path.join(host.dir, P + 'a.network') + ' (mode 0644)',
        os.path.join(host.dir, P + 'b.netdev') + ' (mode 0644)',
        os.path.join(host.dir, P + 'old.network') + ' (absent)']
    assert result['diff'][0]['after'].endswith('DHCP=yes\n') and result['diff'][2]['after'] == ''
    assert host.snapshot() == before and host.commands() == [] and not os.path.exists(host.state)


def test_real_detached_rollback_restores_everything_exactly(host):
    host.links('eth1', 'eth2', 'lo')
    host.write(P + 'eth1.network', network('eth1', 'Address=10.0.0.1/24\n'), 0o600)
    host.write(P + 'gone.network', network('eth2'))
    os.symlink('/dev/null', os.path.join(host.dir, P + 'masked.network'))
    host.write('99-foreign.network', network('eth0'))
    os.mkdir(os.path.join(host.dir, P + 'eth1.network.d'))
    before = host.snapshot()

    result = host.apply({P + 'eth1.network': network('eth1', 'Bond=bond0\n'),
                         P + 'masked.network': network('eth3'),
                         P + 'bond0.netdev': NETDEV_BOND}, rollback_timeout=1)
    change_dir = result['change_dir']
    assert result['armed'] is True and result['files_added'] == [P + 'bond0.netdev']
    assert result['files_changed'] == [P + 'eth1.network', P + 'masked.network']
    assert result['files_removed'] == [P + 'gone.network']
    assert nc._proc_alive(result['rollback_pid'], change_dir)
    assert os.stat(os.path.join(host.dir, P + 'eth1.network')).st_mode & 0o777 == 0o644
    host.links('bond0')  # what networkd's reload would have created

    wait_for(os.path.join(change_dir, 'rolled_back'))
    record = json.load(open(os.path.join(change_dir, 'rolled_back')))
    assert host.snapshot() == before  # contents, modes, the symlink, the foreign file
    assert os.path.isdir(os.path.join(host.dir, P + 'eth1.network.d'))
    assert record['trigger'] == 'timeout' and 1.0 <= record['seconds_after_arming'] < 10
    assert record['removed'] == [P + 'bond0.netdev']
    assert record['restored'] == [P + 'eth1.network', P + 'gone.network', P + 'masked.network']
    assert record['devices_deleted'] == ['bond0'] and record['errors'] == []
    assert host.commands() == ['reload', 'ip link delete bond0', 'reload',
                               'networkctl reconfigure eth1 eth2']
    time.sleep(0.2)
    assert not nc._proc_alive(result['rollback_pid'], change_dir)
    assert nc.change_status(change_dir) == 'rolled_back'

    with pytest.raises(nc.CommitError) as err:
        nc.confirm_change(result['change_id'], state_dir=host.state)
    # The window counts from the change taking effect (the reload returned), not from arming.
    assert re.match(r'change %s was rolled back by the host \d+ s after it was applied \(\d+ s after it took effect\): '
                    r'no new connection from the controller confirmed it within 1 s of the change taking effect$'
                    % result['change_id'], err.value.msg), err.value.msg
    assert err.value.result['rollback']['seconds_after_effective'] >= 1
    assert err.value.result['rollback']['removed'] == [P + 'bond0.netdev']


def test_confirm_in_time_keeps_the_change_and_stops_the_process(host):
    host.write(P + 'a.network', network('eth1'))
    files = {P + 'a.network': network('eth1', 'DHCP=yes\n')}
    result = host.apply(files, rollback_timeout=2)
    pid, change_dir = result['rollback_pid'], result['change_dir']
    confirmed = nc.confirm_change(result['change_id'], state_dir=host.state)
    assert confirmed['changed'] is True and confirmed['status'] == 'confirmed'
    assert 0 <= confirmed['confirmed_after_s'] < 2 and confirmed['rollback_pid'] == pid
    assert not nc._proc_alive(pid, change_dir)
    time.sleep(2.5)
    assert not os.path.exists(os.path.join(change_dir, 'rolled_back'))
    assert host.snapshot()[P + 'a.network'][0] == files[P + 'a.network'].encode()
    assert host.commands() == ['reload']
    again = nc.confirm_change(result['change_id'], state_dir=host.state)
    assert again['changed'] is False and again['confirmed_after_s'] == confirmed['confirmed_after_s']
    assert host.apply(files)['changed'] is False


def test_changed_bond_is_deleted_before_reload_and_dependents_rewritten(host):
    host.links('eth1', 'eth2', 'bond0', 'bond0.200')
    common = {P + 'eth1.network': network('eth1', 'Bond=bond0\n'),
              P + 'bond0.network': network('bond0', 'VLAN=bond0.200\n'),
              P + 'bond0.200.netdev': NETDEV_VLAN}
    for name, text in common.items():
        host.write(name, text)
    host.write(P + 'bond0.netdev', NETDEV_BOND)
    inode = os.stat(os.path.join(host.dir, P + 'eth1.network')).st_ino
    result = host.apply(dict(common, **{P + 'bond0.netdev': NETDEV_BOND.replace('active-backup', 'balance-rr')}))
    assert result['devices_deleted'] == ['bond0']
    assert result['files_refreshed'] == [P + 'bond0.network', P + 'eth1.network']
    assert result['reconfigured'] == ['bond0', 'eth1']
    assert os.stat(os.path.join(host.dir, P + 'eth1.network')).st_ino != inode
    # eth1 may be left failed by the deletion, which the reload would skip; the recreated
    # bond0 is a new link that networkd configures by itself.
    assert result['reconfigured_explicitly'] == ['eth1'] and result['networkd_restarted'] is False
    assert host.commands() == ['ip link delete bond0', 'reload', 'networkctl reconfigure eth1']
    # The rollback deletes the redefined bond again so the reload makes the old one.
    plan = json.load(open(os.path.join(result['change_dir'], 'plan.json')))
    assert plan['rollback']['delete'] == ['bond0']
    assert plan['rollback']['refresh'] == [P + 'bond0.network', P + 'eth1.network']


def test_a_failed_link_is_reconfigured_by_name_the_others_by_the_reload(host):
    host.links('eth2', eth1='failed')
    host.write(P + 'eth1.network', network('eth1'))
    host.write(P + 'eth2.network', network('eth2'))
    result = host.apply({P + 'eth1.network': network('eth1', 'DHCP=yes\n'),
                         P + 'eth2.network': network('eth2', 'DHCP=yes\n')})
    assert result['reconfigured'] == ['eth1', 'eth2'] and result['reconfigured_explicitly'] == ['eth1']
    assert host.commands() == ['reload', 'networkctl reconfigure eth1']


def test_redefined_vlan_restarts_networkd_and_so_does_its_rollback(host):
    host.links('bond0', 'bond0.200')
    host.write(P + 'bond0.network', network('bond0', 'VLAN=bond0.200\n'))
    host.write(P + 'v.netdev', NETDEV_VLAN)
    before = host.snapshot()
    result = host.apply({P + 'bond0.network': network('bond0', 'VLAN=bond0.200\n'),
                         P + 'v.netdev': NETDEV_VLAN.replace('Id=200', 'Id=201')}, rollback_timeout=1)
    assert result['devices_deleted'] == ['bond0.200'] and result['networkd_restarted'] is True
    assert result['reconfigured_explicitly'] == []
    assert host.commands() == ['ip link delete bond0.200', 'reload', 'restart-networkd']
    host.links('bond0.200')  # networkd made it again after the restart
    wait_for(os.path.join(result['change_dir'], 'rolled_back'))
    assert host.snapshot() == before
    assert host.commands()[3:] == ['ip link delete bond0.200', 'reload', 'restart-networkd']


def test_failed_reload_rolls_back_at_once_and_disarms(host):
    host.write(P + 'a.network', network('eth1'))
    before = host.snapshot()
    failing = [['sh', '-c', 'echo reload >> %s; test -e %s/ok || { echo broken >&2; exit 3; }'
                % (host.log, host.root)]]
    with pytest.raises(nc.CommitError) as err:
        host.apply({P + 'a.network': network('eth1', 'DHCP=yes\n'), P + 'b.network': network('eth2')},
                   reload=failing)
    msg = err.value.msg
    assert 'failed while running sh -c' in msg and 'rc 3' in msg and 'broken' in msg
    assert 'the previous files were restored' in msg and 'no rollback timer is left armed' in msg
    assert host.snapshot() == before
    result = err.value.result
    assert result['armed'] is False and result['rollback']['trigger'] == 'apply-failed'
    assert not nc._proc_alive(result['rollback_pid'], result['change_dir'])
    assert nc.change_status(result['change_dir']) == 'rolled_back'
    # Nothing pending is left: the next apply goes ahead.
    open(os.path.join(host.root, 'ok'), 'w').close()
    assert host.apply({P + 'a.network': network('eth1', 'DHCP=yes\n')}, reload=failing)['changed'] is True


def test_pending_change_refuses_another_until_confirmed(host):
    first = host.apply({P + 'a.network': network('eth1')})
    for files in ({P + 'a.network': network('eth2')}, {P + 'a.network': network('eth1')}):
        with pytest.raises(nc.CommitError) as err:
            host.apply(files)
        assert 'change %s in %s is still pending' % (first['change_id'], host.state) in err.value.msg
        assert 'aicluster.lab.network_confirm change_id=%s' % first['change_id'] in err.value.msg
        assert err.value.result['pending_change'] == first['change_id']
    nc.confirm_change(first['change_id'], state_dir=host.state)
    assert host.apply({P + 'a.network': network('eth2')})['changed'] is True


def test_stale_change_is_marked_abandoned_with_a_warning(host):
    first = host.apply({P + 'a.network': network('eth1')})
    os.kill(first['rollback_pid'], signal.SIGKILL)  # as a reboot would
    time.sleep(0.2)
    assert nc.change_status(first['change_dir']) == 'stale'
    second = host.apply({P + 'a.network': network('eth2')})
    assert second['changed'] is True
    assert any(first['change_id'] in w and 'rollback process is gone' in w for w in second['warnings'])
    assert nc.change_status(first['change_dir']) == 'abandoned'


def test_wait_rolled_back_reports_the_rollback(host):
    result = host.apply({P + 'a.network': network('eth1')}, rollback_timeout=1)
    with pytest.raises(nc.CommitError) as err:
        nc.confirm_change(result['change_id'], state_dir=host.state, wait_rolled_back=True, poll=0.1)
    assert 'within 1 s of the change taking effect' in err.value.msg
    assert err.value.result['status'] == 'rolled_back'
    assert host.snapshot() == {}


def test_confirm_unknown_or_malformed_change(host):
    with pytest.raises(nc.CommitError, match=r"change_id: '\.\./etc' is not a change id"):
        nc.confirm_change('../etc', state_dir=host.state)
    with pytest.raises(nc.CommitError, match='change_id: no change 20250101T000000.000Z-abcdef in '):
        nc.confirm_change('20250101T000000.000Z-abcdef', state_dir=host.state)


def test_prune_keeps_the_last_five_finished_and_every_pending(host):
    ids = []
    for index in range(7):
        result = host.apply({P + 'a.network': network('eth%d' % index)})
        ids.append(result['change_id'])
        if index < 6:
            nc.confirm_change(result['change_id'], state_dir=host.state)
    assert nc._change_dirs(host.state) == ids[1:]
    assert nc.prune(host.state, keep=2) == ids[1:4]
    assert nc._change_dirs(host.state) == ids[4:]


def test_failed_device_deletion_rolls_back_before_any_reload(host):
    host.links('bond0')
    host.write(P + 'bond0.netdev', NETDEV_BOND)
    before = host.snapshot()
    broken_ip = ['sh', '-c', 'echo "ip $*" >> %s; echo "RTNETLINK answers: Operation not permitted" >&2; exit 2'
                 % host.log, 'ip']
    with pytest.raises(nc.CommitError) as err:
        host.apply({P + 'bond0.netdev': NETDEV_BOND.replace('active-backup', '802.3ad')}, ip=broken_ip)
    assert err.value.msg.startswith('network change %s failed while deleting device bond0: rc 2: RTNETLINK '
                                    'answers: Operation not permitted; the previous files were restored'
                                    % err.value.result['change_id'])
    assert host.snapshot() == before
    # The rollback tries the deletion too (the same ip fails again, and its record says so);
    # the only reload is the rollback's.
    assert err.value.result['rollback']['errors'] == ['deleting device bond0: rc 2']
    assert 'restored with errors: deleting device bond0: rc 2' in err.value.msg
    assert host.commands() == ['ip link delete bond0', 'ip link delete bond0', 'reload']


def test_the_confirm_window_starts_when_the_change_took_effect_not_when_the_rollback_was_armed(host):
    # A reload that takes longer than the whole window, as on a loaded emulated guest: the
    # old deadline (armed + 2 s) passes during the apply, yet the change is confirmed,
    # because the window counts from the moment the reload returned.
    host.reload = [['sh', '-c', 'sleep 3; echo reload >> %s' % host.log]]
    result = host.apply({P + 'a.network': network('eth1')}, rollback_timeout=2)
    plan = json.loads(open(os.path.join(result['change_dir'], 'plan.json')).read())
    effective = json.loads(open(os.path.join(result['change_dir'], 'effective')).read())
    assert effective['at'] - plan['armed_at'] >= 3 and result['rollback_deadline'] >= plan['armed_at'] + 5 - 0.1
    confirmed = nc.confirm_change(result['change_id'], state_dir=host.state)
    assert confirmed['status'] == 'confirmed' and confirmed['confirmed_after_s'] >= 3
    assert 0 <= confirmed['confirmed_after_effective_s'] <= confirmed['confirmed_after_s'] - 3
    assert host.snapshot() != {}  # the new file stayed


def fake_proc(tmp_path, processes, btime=1700000000):
    """A /proc with the given (pid, comm, ppid, starttime) and a boot time."""
    for pid, comm, ppid, start in processes:
        os.makedirs(tmp_path / str(pid))
        fields = ['S', str(ppid)] + ['0'] * 17 + [str(start)] + ['0'] * 30
        (tmp_path / str(pid) / 'stat').write_text('%d (%s) %s\n' % (pid, comm, ' '.join(fields)))
    (tmp_path / 'stat').write_text('cpu  1 2 3\nbtime %d\nprocesses 9\n' % btime)
    return str(tmp_path)


# As on the Debian 12 guests: listener, per-connection [priv], user@notty, shell, module.
SSH_CHAIN = [(900, 'python3', 899, 5000), (899, 'sh', 850, 4990), (850, 'sshd', 849, 4200),
             (849, 'sshd', 400, 4100), (400, 'sshd', 1, 300)]


@pytest.mark.parametrize('chain, expected', [
    (SSH_CHAIN, 1700000000 + 41.0),
    # OpenSSH 9.8+ names the per-connection processes sshd-session.
    ([(900, 'python3', 850, 5000), (850, 'sshd-session', 849, 4200), (849, 'sshd-session', 400, 4100),
      (400, 'sshd', 1, 300)], 1700000000 + 41.0),
    # A comm with spaces and parentheses does not shift the fields.
    ([(900, 'a) (b', 849, 5000), (849, 'sshd', 400, 4150), (400, 'sshd', 1, 300)], 1700000000 + 41.5),
    ([(900, 'python3', 899, 5000), (899, 'bash', 1, 10)], None),  # not under sshd (a console)
])
def test_connection_started_at_is_the_start_of_the_connection_sshd_forked(tmp_path, chain, expected):
    started = nc.connection_started_at(pid=900, proc=fake_proc(tmp_path, chain))
    assert started == (pytest.approx(expected) if expected else None)


def test_connection_started_at_without_proc_is_none(tmp_path):
    assert nc.connection_started_at(pid=900, proc=str(tmp_path)) is None


def test_a_connection_that_arrived_before_the_rollback_is_a_late_confirm_not_a_cut_off(host):
    result = host.apply({P + 'a.network': network('eth1')}, rollback_timeout=1)
    effective = json.loads(open(os.path.join(result['change_dir'], 'effective')).read())['at']
    wait_for(os.path.join(result['change_dir'], 'rolled_back'))
    with pytest.raises(nc.CommitError) as late:
        nc.confirm_change(result['change_id'], state_dir=host.state, connected_at=effective + 0.5)
    assert late.value.result['late_confirm'] is True
    assert late.value.result['connected_after_effective_s'] == pytest.approx(0.5, abs=0.01)
    assert 'although this new connection reached the host 0.5 s after the change took effect' in late.value.msg
    assert 'too slow to run the confirm within the 1 s window' in late.value.msg
    # Arriving after the rollback fired, or from no SSH connection at all, is the cut-off verdict.
    for connected_at in (time.time(), None):
        with pytest.raises(nc.CommitError) as cut:
            nc.confirm_change(result['change_id'], state_dir=host.state, connected_at=connected_at)
        assert cut.value.result['late_confirm'] is False
        assert 'no new connection from the controller confirmed it within 1 s' in cut.value.msg
