# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bond failover probe: ping output parsing, outages and events on real output from the lab,
edge cases on small synthetic runs, and the whole probe against a fake sysfs and a fake ping.

fixtures/failover/ (see its README.md) was captured on node1 of a bonding-vlans lab
(Debian 12, iputils ping 20221126), node1's eth1 cut from the host with virsh domif-setlink.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import threading
import time

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import failover_probe as fp

ROOT = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = ROOT / 'tests' / 'unit' / 'fixtures' / 'failover'
TARGET = '192.168.200.12'

# A stand-in for ping: the options the probe passes, one line per packet every -i seconds,
# with the [time] stamps of -D. While the file $FAKE_PING_CUT exists, packets get no answer
# ("no answer yet" when the next one is sent, as -O reports it).
FAKE_PING = r'''
import os, signal, sys, time
args = sys.argv[1:]
interval = float(args[args.index('-i') + 1])
count = int(args[args.index('-c') + 1])
target = args[-1]
cut = os.environ.get('FAKE_PING_CUT', '')
out = sys.stdout
out.write('PING %s (%s) 56(84) bytes of data.\n' % (target, target))
received, pending, sent = 0, None, 0


def summary(*ignored):
    # SIGINT, like ping: the summary (the packet in flight counted as sent), then exit.
    out.write('\n--- %s ping statistics ---\n%d packets transmitted, %d received, time 1ms\n'
              % (target, sent, received))
    out.flush()
    sys.exit(0)


signal.signal(signal.SIGINT, summary)
for seq in range(1, count + 1):
    sent = seq
    if pending:
        out.write('[%.6f] no answer yet for icmp_seq=%d\n' % (time.time(), pending))
    if cut and os.path.exists(cut):
        pending = seq
    else:
        pending = None
        received += 1
        out.write('[%.6f] 64 bytes from %s: icmp_seq=%d ttl=64 time=0.5 ms\n' % (time.time(), target, seq))
    out.flush()
    if seq < count:
        time.sleep(interval)
out.write('\n--- %s ping statistics ---\n%d packets transmitted, %d received, %d%% packet loss, time 1ms\n'
          % (target, count, received, 100 * (count - received) // count))
sys.exit(0 if received else 1)
'''


def fake_bond(root, name='bond0', members=('eth1', 'eth2'), active='eth1', primary='eth1',
              mode='active-backup 1', miimon=100, updelay=0, downdelay=0):
    """A /sys/class/net look-alike under root with one bond, its members and bond0.200."""
    base = os.path.join(str(root), name, 'bonding')
    os.makedirs(base)
    values = {'mode': mode, 'miimon': miimon, 'updelay': updelay, 'downdelay': downdelay,
              'primary': primary or '', 'active_slave': active or '', 'slaves': ' '.join(members)}
    for key, value in values.items():
        write(os.path.join(base, key), value)
    for member in members:
        os.makedirs(os.path.join(str(root), member))
        write(os.path.join(str(root), member, 'carrier'), 1)
    os.makedirs(os.path.join(str(root), name + '.200'))
    return str(root)


def write(path, value):
    """Write in place, without truncating first: the poller in another thread never reads an
    empty file (sysfs would never show one) when the length stays the same."""
    data = ('%s\n' % value).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


@pytest.fixture
def sysfs(tmp_path, monkeypatch):
    root = fake_bond(tmp_path / 'sys')
    monkeypatch.setattr(fp, 'SYS_CLASS_NET', root)
    return root


def fixture_text(name):
    return (FIXTURES / name).read_text()


def reply(seq, when):
    return '[%.6f] 64 bytes from %s: icmp_seq=%d ttl=64 time=0.5 ms' % (when, TARGET, seq)


def output(lines, sent, received, errors=0):
    extra = ', +%d errors' % errors if errors else ''
    return '\n'.join(['PING %s (%s) 56(84) bytes of data.' % (TARGET, TARGET)] + lines + [
        '', '--- %s ping statistics ---' % TARGET,
        '%d packets transmitted, %d received%s, %d%% packet loss, time 1ms'
        % (sent, received, extra, 100 * (sent - received) // sent if sent else 0), ''])


def run_of(seqs, sent, start=1000.0, interval=0.01):
    """ping output in which exactly ``seqs`` (of 1..sent) were answered, one every interval."""
    lines = [reply(seq, start + seq * interval) for seq in seqs]
    return output(lines, sent, len(seqs))


def active(when, old, new, bond='bond0'):
    return {'time': when, 'kind': 'active', 'link': bond, 'from': old, 'to': new}


def carrier(when, link, old, new):
    return {'time': when, 'kind': 'carrier', 'link': link, 'from': old, 'to': new}


# ---------------------------------------------------------------- real output from the lab

def test_normal_run_has_every_reply_and_no_outage():
    text = fixture_text('node1-ping-normal.txt')
    parsed = fp.parse_ping(text)
    assert parsed['sent'] == parsed['received'] == 280
    assert sorted(parsed['replies']) == list(range(1, 281))
    assert parsed['unanswered'] == {} and parsed['errors'] == {} and parsed['duplicates'] == 0
    assert parsed['replies'][1] == 1795329381.270904 and parsed['replies'][280] == 1795329384.245279
    assert fp.find_outages(parsed['replies'], parsed['sent']) == []
    result = fp.analyse(text, [], {'active': 'eth1'})
    assert result['lost'] == 0 and result['outages'] == [] and result['failover'] is None
    # 10 ms apart, with the guest's jitter: no outage, but max_gap_ms is not 0.
    assert 10 < result['max_gap_ms'] < 100
    assert result['stdout_tail'][-1].startswith('rtt min/avg/max/mdev')


def test_manual_cut_loses_one_packet():
    text = fixture_text('node1-ping-eth1-cut-manual.txt')
    parsed = fp.parse_ping(text)
    assert (parsed['sent'], parsed['received']) == (700, 699)
    assert parsed['unanswered'] == {143: 1795329392.695929}
    assert fp.find_outages(parsed['replies'], parsed['sent']) == [{
        'first_seq': 143, 'last_seq': 143, 'lost': 1, 'start': 1795329392.65663, 'end': 1795329392.697828,
        'gap_ms': 41.198, 'resumed': True}]


def test_probe_result_is_what_its_output_and_transitions_give():
    """The module's result captured on the lab, computed again from its ping output."""
    recorded = json.loads(fixture_text('node1-probe-eth1-cut.json'))
    text = fixture_text('node1-probe-eth1-cut.txt')
    again = fp.analyse(text, recorded['transitions'], recorded['bond'],
                       started=recorded['start_time'], ended=recorded['end_time'])
    assert again.pop('summary') is True
    for key, value in again.items():
        assert recorded[key] == value, key


def test_probe_result_figures():
    recorded = json.loads(fixture_text('node1-probe-eth1-cut.json'))
    assert recorded['bond'] == {'name': 'bond0', 'mode': 'active-backup', 'miimon': 100, 'updelay': 0,
                                'downdelay': 0, 'primary': 'eth1', 'active': 'eth1',
                                'members': ['eth1', 'eth2'], 'carrier': {'eth1': 1, 'eth2': 1}}
    assert [(t['kind'], t['link'], t['from'], t['to']) for t in recorded['transitions']] == [
        ('carrier', 'eth1', 1, 0), ('active', 'bond0', 'eth1', 'eth2'),
        ('carrier', 'eth1', 0, 1), ('active', 'bond0', 'eth2', 'eth1')]
    failover, failback = recorded['failover'], recorded['failback']
    assert (failover['from'], failover['to'], failover['lost']) == ('eth1', 'eth2', 6)
    assert failover['carrier_lost_at'] == recorded['transitions'][0]['time']
    assert failover['detect_ms'] == pytest.approx((failover['time'] - failover['carrier_lost_at']) * 1000, abs=0.001)
    # miimon is 100 ms: the bond notices the loss at its next MII poll.
    assert 0 < failover['detect_ms'] <= 100 + recorded['poll']['max_gap_ms']
    assert failover['gap_ms'] == recorded['outages'][0]['gap_ms'] == recorded['max_gap_ms']
    assert (failback['from'], failback['to'], failback['lost'], failback['carrier_lost_at']) == ('eth2', 'eth1', 1, None)
    assert failback['carrier_up_at'] == recorded['transitions'][2]['time']
    assert recorded['lost'] == sum(o['lost'] for o in recorded['outages']) == recorded['sent'] - recorded['received']
    assert recorded['changed'] is False and recorded['ping_stopped'] is False


# ---------------------------------------------------------------- synthetic edge cases

def test_no_reply_at_all_is_one_outage_that_never_resumed():
    text = output(['[1000.500000] no answer yet for icmp_seq=1'], 5, 0)
    result = fp.analyse(text, [], {'active': 'eth1'}, started=1000.0, ended=1001.0)
    assert result['outages'] == [{'first_seq': 1, 'last_seq': 5, 'lost': 5, 'start': 1000.0, 'end': 1001.0,
                                  'gap_ms': 1000.0, 'resumed': False}]
    assert (result['sent'], result['received'], result['lost']) == (5, 0, 5)
    assert result['max_gap_ms'] == 1000.0


def test_outage_at_the_end_never_resumed():
    outages = fp.find_outages({1: 10.0, 2: 10.01, 3: 10.02}, 6, ended=10.5)
    assert outages == [{'first_seq': 4, 'last_seq': 6, 'lost': 3, 'start': 10.02, 'end': 10.5,
                        'gap_ms': 480.0, 'resumed': False}]
    # Without an end time the gap is unknown.
    assert fp.find_outages({1: 10.0}, 2)[0]['gap_ms'] is None


def test_outage_at_the_start_counts_from_the_start_of_the_run():
    assert fp.find_outages({3: 10.03, 4: 10.04}, 4, started=10.0) == [{
        'first_seq': 1, 'last_seq': 2, 'lost': 2, 'start': 10.0, 'end': 10.03, 'gap_ms': 30.0, 'resumed': True}]


def test_two_outages():
    text = run_of([1, 2, 3, 6, 7, 8, 9, 10, 14, 15], 15)
    outages = fp.analyse(text, [], {'active': 'eth1'})['outages']
    assert [(o['first_seq'], o['last_seq'], o['lost'], o['gap_ms'], o['resumed']) for o in outages] == [
        (4, 5, 2, 30.0, True), (11, 13, 3, 40.0, True)]


def test_no_transitions_no_events():
    text = run_of([1, 2, 4, 5], 5)
    result = fp.analyse(text, [], {'active': 'eth1'})
    assert result['failover'] is None and result['failback'] is None and result['lost'] == 1


def test_failover_and_failback_with_their_outages():
    # Replies every 10 ms from t=1000.01; eth1 loses carrier at 1000.045, the bond moves at
    # 1000.095, packets 5..9 are lost; eth1 returns at 1000.5, the bond moves back at 1000.56
    # without a loss.
    answered = [seq for seq in range(1, 101) if not 5 <= seq <= 9]
    text = run_of(answered, 100)
    transitions = [carrier(1000.045, 'eth1', 1, 0), active(1000.095, 'eth1', 'eth2'),
                   carrier(1000.5, 'eth1', 0, 1), active(1000.56, 'eth2', 'eth1')]
    result = fp.analyse(text, transitions, {'active': 'eth1'})
    assert result['failover'] == {
        'time': 1000.095, 'from': 'eth1', 'to': 'eth2', 'carrier_lost_at': 1000.045, 'carrier_up_at': None,
        'detect_ms': 50.0, 'gap_ms': 60.0, 'lost': 5, 'resumed': True, 'reply_gap_ms': 60.0}
    assert result['failback'] == {
        'time': 1000.56, 'from': 'eth2', 'to': 'eth1', 'carrier_lost_at': None, 'carrier_up_at': 1000.5,
        'detect_ms': 60.0, 'gap_ms': 0.0, 'lost': 0, 'resumed': True, 'reply_gap_ms': 10.0}


def test_outage_starting_after_the_event_belongs_to_it_within_one_second():
    replies = dict((seq, 1000.0 + seq * 0.01) for seq in range(1, 301) if seq not in (50, 51, 250))
    outages = fp.find_outages(replies, 300)
    # The bond moved at 1000.3: the outage at 1000.49 follows within 1 s, the one at 1002.49 does not.
    failover, failback = fp.attribute_events([active(1000.3, 'eth1', 'eth2'), active(1001.4, 'eth2', 'eth1')],
                                             outages, replies, 'eth1')
    assert (failover['lost'], failover['gap_ms']) == (2, 30.0)
    assert (failback['lost'], failback['gap_ms']) == (0, 0.0)


def test_carrier_loss_that_came_back_before_the_change_is_not_its_cause():
    transitions = [carrier(9.0, 'eth1', 1, 0), carrier(9.5, 'eth1', 0, 1), active(10.0, 'eth1', 'eth2')]
    failover, failback = fp.attribute_events(transitions, [], {}, 'eth1')
    assert failover['carrier_lost_at'] is None and failover['detect_ms'] is None
    assert failover['reply_gap_ms'] is None and failback is None


def test_bond_left_without_an_active_member_and_back():
    transitions = [carrier(1.0, 'eth1', 1, 0), carrier(1.0, 'eth2', 1, 0), active(1.1, 'eth1', None),
                   carrier(3.0, 'eth2', 0, 1), active(3.1, None, 'eth2'), carrier(4.0, 'eth1', 0, 1),
                   active(4.1, 'eth2', 'eth1')]
    failover, failback = fp.attribute_events(transitions, [], {}, 'eth1')
    assert (failover['from'], failover['to'], failover['detect_ms']) == ('eth1', None, 100.0)
    assert (failback['from'], failback['to'], failback['carrier_up_at'], failback['detect_ms']) == ('eth2', 'eth1', 4.0, 100.0)


def test_no_active_member_at_the_start_means_no_failover():
    assert fp.attribute_events([active(1.0, None, 'eth2')], [], {}, None) == (None, None)


def test_sequence_numbers_wrap_at_65536():
    lines = [reply(seq % 65536, 1000.0 + seq * 0.001) for seq in range(65530, 65545) if seq != 65537]
    parsed = fp.parse_ping('\n'.join(lines))
    assert sorted(parsed['replies']) == [seq for seq in range(65530, 65545) if seq != 65537]


def test_duplicates_and_icmp_errors():
    text = output([
        reply(1, 1.01), reply(1, 1.011) + ' (DUP!)', reply(2, 1.02),
        '[1.030000] From 192.168.200.11 icmp_seq=3 Destination Host Unreachable',
        reply(4, 1.04)], 4, 3, errors=1)
    parsed = fp.parse_ping(text)
    assert parsed['duplicates'] == 1 and parsed['errors'] == {3: 1.03} and parsed['summary_errors'] == 1
    result = fp.analyse(text, [], {'active': 'eth1'})
    assert (result['lost'], result['icmp_errors'], result['duplicates']) == (1, 1, 1)


def test_ipv6_lines():
    parsed = fp.parse_ping('\n'.join([
        'PING fd00:200::12(fd00:200::12) from fd00:200::11 bond0.200: 56 data bytes',
        '[2.000000] 64 bytes from fd00:200::12: icmp_seq=1 ttl=64 time=0.5 ms',
        '[2.010000] From fd00:200::11 icmp_seq=2 Destination unreachable: Address unreachable',
        '[2.020000] no answer yet for icmp_seq=2',
        '[2.030000] 64 bytes from fd00:200::12: icmp_seq=3 ttl=64 time=0.5 ms']))
    assert parsed['replies'] == {1: 2.0, 3: 2.03} and parsed['errors'] == {2: 2.01} and parsed['unanswered'] == {2: 2.02}
    assert (parsed['first_time'], parsed['last_time']) == (2.0, 2.03)


def test_output_without_summary():
    parsed = fp.parse_ping(reply(1, 1.0) + '\n' + reply(2, 1.01))
    assert parsed['sent'] is None and parsed['received'] is None
    result = fp.analyse(reply(1, 1.0) + '\n' + reply(3, 1.02), [], {'active': None})
    assert (result['sent'], result['received'], result['lost'], result['summary']) == (3, 2, 1, False)
    assert fp.analyse('', [], {})['sent'] == 0


def test_ping_interval_arg_truncates_to_the_interval():
    # ping keeps (int)(value * 1000) ms: 1.001 s would be 1000 ms.
    for interval_ms in range(1, 100001):
        assert int(float(fp.ping_interval_arg(interval_ms)) * 1000) == interval_ms, interval_ms
    assert fp.ping_interval_arg(10) == '0.01' and fp.ping_interval_arg(1000) == '1.0'
    assert fp.ping_interval_arg(1001) == '1.0010001'


def test_ping_command():
    assert fp.ping_command(TARGET, 10, 12, 'bond0.200') == [
        'ping', '-D', '-n', '-O', '-i', '0.01', '-c', '1200', '-I', 'bond0.200', TARGET]
    assert fp.ping_command(TARGET, 3, 0.1) == ['ping', '-D', '-n', '-O', '-i', '0.003', '-c', '33', TARGET]


# ---------------------------------------------------------------- options and sysfs

@pytest.mark.parametrize('args, message', [
    (dict(target='node2'), "target: 'node2' is not an IP address"),
    (dict(bond='bond7'), "bond: 'bond7' is not a bond on this host (no {root}/bond7/bonding)"),
    (dict(bond='eth1'), "bond: 'eth1' is not a bond on this host (no {root}/eth1/bonding)"),
    (dict(bond='../bond0'), "bond: '../bond0' is not an interface name"),
    (dict(interface='bond0.999'), "interface: 'bond0.999' is not a network interface on this host "
                                  "(no {root}/bond0.999)"),
    (dict(interval_ms=0), 'interval_ms: 0 is below 1: ping cannot send at a shorter interval (0 would make it flood)'),
    (dict(interval_ms=-5), 'interval_ms: -5 is below 1'),
    (dict(interval_ms=1, uid=1000), 'interval_ms: 1 is below 2, the shortest interval ping allows a user '
                                    'other than root (uid 1000)'),
    (dict(interval_ms=3000000000), 'interval_ms: 3000000000 is above 2147483000, the longest interval ping accepts'),
    (dict(interval_ms=10.5), 'interval_ms: 10.5 is not a whole number of milliseconds'),
    (dict(duration_s=0.0), 'duration_s: 0.0 must be a number of seconds greater than 0'),
    (dict(duration_s=float('nan')), 'duration_s: nan must be'),
    (dict(interval_ms=7000, duration_s=12.0), 'interval_ms: 7000 leaves fewer than 2 packets in duration_s 12;'),
    (dict(settle_s=-1.0), 'settle_s: -1.0 must be a number of seconds, 0 or more'),
    (dict(settle_s=True), 'settle_s: True must be'),
])
def test_validate_names_the_option_and_the_value(sysfs, args, message):
    options = dict(target=TARGET, bond='bond0', interface='bond0.200', interval_ms=10, duration_s=12.0, uid=0)
    options.update(args)
    with pytest.raises(fp.ProbeError) as caught:
        fp.validate(**options)
    assert caught.value.msg.startswith(message.format(root=sysfs))


def test_validate_accepts(sysfs):
    fp.validate(TARGET, 'bond0', 'bond0.200', 10, 12.0, uid=0)
    fp.validate('fe80::1', 'bond0', '192.168.200.11', 1, 0.002, uid=0)
    fp.validate(TARGET, 'bond0', None, 2, 12, uid=1000)


def test_bond_state_and_watcher(sysfs):
    assert fp.bond_state('bond0') == {
        'name': 'bond0', 'mode': 'active-backup', 'miimon': 100, 'updelay': 0, 'downdelay': 0,
        'primary': 'eth1', 'active': 'eth1', 'members': ['eth1', 'eth2'], 'carrier': {'eth1': 1, 'eth2': 1}}
    # A carrier that cannot be read (EINVAL on a link set down; EISDIR here) is down, as is one
    # without a file (eth3).
    os.makedirs(os.path.join(sysfs, 'eth4'))
    os.makedirs(os.path.join(sysfs, 'eth4', 'carrier'))
    watcher = fp.Watcher('bond0', ['eth1', 'eth2', 'eth3', 'eth4'])
    try:
        assert watcher.snapshot() == ('eth1', {'eth1': 1, 'eth2': 1, 'eth3': 0, 'eth4': 0})
        write(os.path.join(sysfs, 'bond0', 'bonding', 'active_slave'), 'eth2')
        write(os.path.join(sysfs, 'eth1', 'carrier'), 0)
        after = watcher.snapshot()
        assert after == ('eth2', {'eth1': 0, 'eth2': 1, 'eth3': 0, 'eth4': 0})
        write(os.path.join(sysfs, 'bond0', 'bonding', 'active_slave'), '')
        assert watcher.snapshot()[0] is None
    finally:
        watcher.close()
    assert fp.changes('bond0', ('eth1', {'eth1': 1, 'eth2': 1, 'eth3': 0, 'eth4': 1}), after, 5.0) == [
        active(5.0, 'eth1', 'eth2'), carrier(5.0, 'eth1', 1, 0), carrier(5.0, 'eth4', 1, 0)]


# ---------------------------------------------------------------- the whole probe

@pytest.fixture
def fake_ping(tmp_path, monkeypatch):
    script = tmp_path / 'ping.py'
    script.write_text(FAKE_PING)
    cut = str(tmp_path / 'cut')
    monkeypatch.setattr(fp, 'PING', [sys.executable, str(script)])
    monkeypatch.setenv('FAKE_PING_CUT', cut)
    return cut


def pull_the_cable(sysfs, fake_ping, after_s, detect_s, outage_s, down_s, back_s):
    """Start a thread that cuts eth1 like the hypervisor would: after after_s its carrier drops and
    ping gets no answers; detect_s later the bond moves to eth2; outage_s after the carrier loss
    answers resume; down_s after the loss eth1's carrier returns, and back_s later the bond moves
    back. Returns the thread, to be joined."""
    bonding = os.path.join(sysfs, 'bond0', 'bonding')
    eth1 = os.path.join(sysfs, 'eth1', 'carrier')

    def cut():
        time.sleep(after_s)
        write(eth1, 0)
        open(fake_ping, 'w').close()
        time.sleep(detect_s)
        write(os.path.join(bonding, 'active_slave'), 'eth2')
        time.sleep(outage_s - detect_s)
        os.remove(fake_ping)
        time.sleep(down_s - outage_s)
        write(eth1, 1)
        time.sleep(back_s)
        write(os.path.join(bonding, 'active_slave'), 'eth1')

    cutter = threading.Thread(target=cut)
    cutter.start()
    return cutter


def test_run_probe_sees_failover_and_failback(sysfs, fake_ping, tmp_path):
    cutter = pull_the_cable(sysfs, fake_ping, after_s=0.5, detect_s=0.05, outage_s=0.15, down_s=0.45, back_s=0.05)
    saved = str(tmp_path / 'ping.txt')
    try:
        result = fp.run_probe(TARGET, 'bond0', 10, 1.5, interface='bond0.200', output_file=saved)
    finally:
        cutter.join()
    assert [(t['kind'], t['link'], t['from'], t['to']) for t in result['transitions']] == [
        ('carrier', 'eth1', 1, 0), ('active', 'bond0', 'eth1', 'eth2'),
        ('carrier', 'eth1', 0, 1), ('active', 'bond0', 'eth2', 'eth1')]
    failover, failback = result['failover'], result['failback']
    assert (failover['from'], failover['to'], failback['from'], failback['to']) == ('eth1', 'eth2', 'eth2', 'eth1')
    assert 40 <= failover['detect_ms'] < 300 and 40 <= failback['detect_ms'] < 300
    assert failover['lost'] >= 3 and failover['gap_ms'] >= 100
    assert result['sent'] == 150 and result['lost'] == result['sent'] - result['received'] == failover['lost']
    assert (failback['lost'], failback['gap_ms']) == (0, 0.0)
    assert result['ping_rc'] == 0 and result['ping_stopped'] is False and result['stderr_tail'] == []
    assert result['poll']['count'] > 100 and result['start_time'] < failover['time'] < result['end_time']
    assert result['cmd'][-5:] == ['-c', '150', '-I', 'bond0.200', TARGET]
    with open(saved) as handle:
        assert handle.read().splitlines()[-2:] == result['stdout_tail'][-2:]


def test_run_probe_stops_a_ping_that_runs_too_long(sysfs, monkeypatch):
    monkeypatch.setattr(fp, 'PING', ['sh', '-c', 'trap "echo stopped; exit 0" INT; while :; do sleep 0.01; done', 'ping'])
    # 1 s, not less: on a busy host sh took more than 0.2 s to set its trap, and the
    # interrupt then ended it before it could say so (seen beside a sanity run).
    monkeypatch.setattr(fp, 'STOP_AFTER_S', 1.0)
    result = fp.run_probe(TARGET, 'bond0', 10, 0.1)
    assert result['ping_stopped'] is True and result['stdout_tail'] == ['stopped']
    assert result['end_time'] - result['start_time'] < 10


def test_run_probe_fails_when_ping_cannot_run(sysfs, monkeypatch):
    monkeypatch.setattr(fp, 'PING', [os.path.join(sysfs, 'no-such-ping')])
    with pytest.raises(fp.ProbeError) as caught:
        fp.run_probe(TARGET, 'bond0', 10, 1)
    assert caught.value.msg.startswith('could not run %s: ' % os.path.join(sysfs, 'no-such-ping'))
    assert caught.value.result['bond']['active'] == 'eth1'

    monkeypatch.setattr(fp, 'PING', ['sh', '-c', 'echo "ping: SO_BINDTODEVICE bond9: No such device" >&2; exit 2',
                                     'ping'])
    with pytest.raises(fp.ProbeError) as caught:
        fp.run_probe(TARGET, 'bond0', 10, 1, interface='bond9')
    assert caught.value.msg == 'ping failed (rc 2): ping: SO_BINDTODEVICE bond9: No such device'
    assert caught.value.result['ping_rc'] == 2 and caught.value.result['sent'] == 0


def test_run_probe_settles_after_the_links_return(sysfs, fake_ping):
    cutter = pull_the_cable(sysfs, fake_ping, after_s=0.4, detect_s=0.0, outage_s=0.1, down_s=0.3, back_s=0.0)
    try:
        # 60 s at most, but the run ends 0.5 s after eth1 has its carrier back.
        result = fp.run_probe(TARGET, 'bond0', 10, 60, settle_s=0.5)
    finally:
        cutter.join()
    assert result['settled'] is True and result['ping_stopped'] is False
    assert result['end_time'] - result['start_time'] < 10
    carrier_back = [t['time'] for t in result['transitions'] if t['kind'] == 'carrier' and t['to'] == 1][0]
    assert result['end_time'] - carrier_back >= 0.5
    assert result['failover']['to'] == 'eth2' and result['failback']['to'] == 'eth1'
    # The packet in flight when ping was stopped is not an outage.
    assert [outage['resumed'] for outage in result['outages']] == [True]
    assert result['lost'] == result['failover']['lost'] >= 1
    assert result['sent'] - result['received'] == result['lost']


def test_run_probe_without_a_cut_runs_its_duration_despite_settle_s(sysfs, fake_ping):
    result = fp.run_probe(TARGET, 'bond0', 10, 0.3, settle_s=0.05)
    assert result['settled'] is False and result['sent'] == 30 and result['outages'] == []


def test_cut_short_does_not_count_the_packet_in_flight():
    text = run_of(range(1, 51), 51)
    assert fp.analyse(text, [], {'active': 'eth1'})['outages'][0]['resumed'] is False
    result = fp.analyse(text, [], {'active': 'eth1'}, cut_short=True)
    assert (result['sent'], result['received'], result['lost'], result['outages']) == (50, 50, 0, [])
    # A run that really stopped answering before the stop still ends in an outage: ping's
    # "no answer yet" reports name the packets.
    lines = [reply(seq, 1000 + seq * 0.01) for seq in range(1, 41)]
    lines += ['[%.6f] no answer yet for icmp_seq=%d' % (1000.5 + seq * 0.01, seq) for seq in range(41, 50)]
    result = fp.analyse(output(lines, 50, 40), [], {'active': 'eth1'}, cut_short=True)
    assert result['sent'] == 49 and result['outages'][0]['first_seq'] == 41
    assert result['outages'][0]['resumed'] is False


REAL_WALL_CLOCK, REAL_MONOTONIC, REAL_SLEEP = time.time, time.monotonic, time.sleep


class SetClock(object):
    """time for the probe, with the wall clock set forward an hour after the first reading."""

    monotonic = staticmethod(REAL_MONOTONIC)
    sleep = staticmethod(REAL_SLEEP)

    def __init__(self):
        self.readings = 0

    def time(self):
        self.readings += 1
        return REAL_WALL_CLOCK() + (3600 if self.readings > 1 else 0)


def test_a_clock_set_during_the_run_fails_the_probe(sysfs, fake_ping, monkeypatch):
    assert fp.clock_step_ms(100.0, 5.0, 110.0, 15.0) == 0.0
    assert fp.clock_step_ms(100.0, 5.0, 3710.5, 15.0) == 3600500.0
    monkeypatch.setattr(fp, 'time', SetClock())
    with pytest.raises(fp.ProbeError) as caught:
        fp.run_probe(TARGET, 'bond0', 10, 0.1)
    assert caught.value.msg.startswith("the node's clock was set by +3600")
    assert caught.value.result['clock_step_ms'] > 3599000
