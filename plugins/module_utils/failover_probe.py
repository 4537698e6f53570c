# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measure a bond failover from the node: ping at a fine interval while watching the bond in sysfs.

The probe runs ``ping -D -n -O -i <interval> -c <count> [-I <interface>] <target>`` and, while
it runs, reads the bond's active member and its members' carrier every POLL_PERIOD_S, noting
each change with its time. Afterwards the pure functions below turn ping's output into
outages (runs of sequence numbers that got no reply) and tie the first change of active
member (the failover) and the change back (the failback) to the outage around each.

iputils ping (20221126, Debian 12) behaviour this relies on, read in ping/ping.c and
ping/ping_common.c and checked on the lab:
  * ``-D`` prints ``[sec.usec]`` from gettimeofday() when a line is printed, the clock of
    time.time(); reply lines are printed as the reply is read.
  * ``-O`` prints ``no answer yet for icmp_seq=N`` when it is about to send the next packet
    and N has had no reply.
  * ``-i`` is parsed as seconds and truncated to whole milliseconds ((int)(value * 1000)), so
    1.001 would become 1000 ms: ping_interval_arg() writes a value that truncates right.
    Users other than root get at most one packet per 2 ms ("cannot flood").
  * ``-w`` takes whole seconds only, and with it ping exits at the first ICMP error
    (``if (rts->deadline && rts->nerrors) break;``): a "Destination Host Unreachable" during
    an outage would end the measurement. The probe uses ``-c`` instead. After its last packet
    ping waits max(2 * slowest rtt, interval) for the reply, so the run ends by itself about
    duration_s after it began (ping's timer makes it 5 to 10 per cent longer on the lab: 700
    packets at 10 ms took 7.3 s, 1000 took 10.9 s) and a packet missing at the end is really
    missing.
  * Sequence numbers are printed modulo 65536 and start at 1; ping's summary gives the
    number of packets transmitted.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import signal
import subprocess
import tempfile
import time

from ansible_collections.aicluster.lab.plugins.module_utils.errors import ModuleFailure
from ansible_collections.aicluster.lab.plugins.module_utils.names import interface_name
from ansible_collections.aicluster.lab.plugins.module_utils.ping import parse_ping_summary

SYS_CLASS_NET = '/sys/class/net'
PING = ['ping']
POLL_PERIOD_S = 0.002
# ping normally ends by itself about duration_s after it began; past this it is stopped.
STOP_AFTER_FACTOR = 1.2
STOP_AFTER_S = 2.0
KILL_AFTER_S = 2.0
# An outage belongs to an event when it overlaps the event or begins at most this much after it.
EVENT_WINDOW_S = 1.0
# A wall clock set during the run by more than this makes the times of the run useless.
CLOCK_STEP_LIMIT_MS = 50.0
TAIL_LINES = 5
MIN_INTERVAL_MS = 1
MIN_USER_INTERVAL_MS = 2
MAX_INTERVAL_MS = 2147483647 // 1000 * 1000
SEQ_MODULO = 65536

_REPLY = re.compile(r'^\[(\d+\.\d+)\] \d+ bytes from .*?: icmp_seq=(\d+) ')
_NO_ANSWER = re.compile(r'^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)')
_ERROR = re.compile(r'^\[(\d+\.\d+)\] From .*? icmp_seq=(\d+) ')
_STAMP = re.compile(r'^\[(\d+\.\d+)\] ')


class ProbeError(ModuleFailure):
    """A refused option or a probe that could not run."""


# ---------------------------------------------------------------- options

def packet_count(interval_ms, duration_s):
    """Packets ping sends in duration_s at one per interval_ms (at least 1)."""
    return max(1, int(math.floor(duration_s * 1000.0 / interval_ms + 1e-9)))


def ping_interval_arg(interval_ms):
    """The ``-i`` value, in seconds, that ping truncates to exactly interval_ms milliseconds."""
    text = repr(interval_ms / 1000.0)
    if int(float(text) * 1000) != interval_ms:
        text = '%.7f' % (interval_ms / 1000.0 + 1e-7)
    return text


def ping_command(target, interval_ms, duration_s, interface=None):
    argv = list(PING) + ['-D', '-n', '-O', '-i', ping_interval_arg(interval_ms),
                         '-c', str(packet_count(interval_ms, duration_s))]
    if interface:
        argv += ['-I', interface]
    return argv + [target]


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_interface_name(value):
    try:
        interface_name(value)
    except ValueError:
        return False
    return True


def validate(target, bond, interface, interval_ms, duration_s, uid=None, settle_s=None):
    """Check the options against ping's limits and this host; every error names the option and value."""
    if not isinstance(target, str) or not _is_ip(target):
        raise ProbeError('target: %r is not an IP address' % (target,))
    if not _is_interface_name(bond):
        raise ProbeError('bond: %r is not an interface name' % (bond,))
    bonding = os.path.join(SYS_CLASS_NET, bond, 'bonding')
    if not os.path.isdir(bonding):
        raise ProbeError('bond: %r is not a bond on this host (no %s)' % (bond, bonding))
    if interface is not None:
        if not (isinstance(interface, str) and _is_ip(interface)) and not _is_interface_name(interface):
            raise ProbeError('interface: %r is not an interface name or address' % (interface,))
        path = os.path.join(SYS_CLASS_NET, interface)
        if not _is_ip(interface) and not os.path.exists(path):
            raise ProbeError('interface: %r is not a network interface on this host (no %s)'
                             % (interface, path))
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int):
        raise ProbeError('interval_ms: %r is not a whole number of milliseconds' % (interval_ms,))
    if interval_ms < MIN_INTERVAL_MS:
        raise ProbeError('interval_ms: %d is below %d: ping cannot send at a shorter interval '
                         '(0 would make it flood)' % (interval_ms, MIN_INTERVAL_MS))
    if interval_ms > MAX_INTERVAL_MS:
        raise ProbeError('interval_ms: %d is above %d, the longest interval ping accepts'
                         % (interval_ms, MAX_INTERVAL_MS))
    uid = os.getuid() if uid is None else uid
    if uid != 0 and interval_ms < MIN_USER_INTERVAL_MS:
        raise ProbeError('interval_ms: %d is below %d, the shortest interval ping allows a user other '
                         'than root (uid %d)' % (interval_ms, MIN_USER_INTERVAL_MS, uid))
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) \
            or not duration_s > 0 or math.isinf(duration_s):
        raise ProbeError('duration_s: %r must be a number of seconds greater than 0' % (duration_s,))
    if settle_s is not None and (isinstance(settle_s, bool) or not isinstance(settle_s, (int, float))
                                 or not 0 <= settle_s < float('inf')):
        raise ProbeError('settle_s: %r must be a number of seconds, 0 or more' % (settle_s,))
    if packet_count(interval_ms, duration_s) < 2:
        raise ProbeError('interval_ms: %d leaves fewer than 2 packets in duration_s %g; make the '
                         'interval shorter or the duration longer' % (interval_ms, duration_s))


# ---------------------------------------------------------------- sysfs

def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def carrier(link):
    """1 when the link has carrier, else 0 (an unreadable carrier, as on an admin-down link, is 0)."""
    return 1 if _read(os.path.join(SYS_CLASS_NET, link, 'carrier')) == '1' else 0


def active_member(bond):
    """The bond's active member, None when it has none (or its mode has no such thing)."""
    return _read(os.path.join(SYS_CLASS_NET, bond, 'bonding', 'active_slave')) or None


def bond_state(bond):
    """The bond's configuration and state from sysfs."""
    base = os.path.join(SYS_CLASS_NET, bond, 'bonding')
    mode = _read(os.path.join(base, 'mode'))
    members = (_read(os.path.join(base, 'slaves')) or '').split()
    return {
        'name': bond,
        'mode': mode.split()[0] if mode else None,
        'miimon': _int(_read(os.path.join(base, 'miimon'))),
        'updelay': _int(_read(os.path.join(base, 'updelay'))),
        'downdelay': _int(_read(os.path.join(base, 'downdelay'))),
        'primary': _read(os.path.join(base, 'primary')) or None,
        'active': active_member(bond),
        'members': members,
        'carrier': dict((member, carrier(member)) for member in members),
    }


class Watcher(object):
    """Reads the bond's active member and its members' carrier through files kept open.

    A pread() of an open sysfs attribute costs a few microseconds, an open-read-close a few
    hundred in a QEMU guest (measured on the lab: 120,000 against 2,800 a second), which would
    make the polling period several times what it is meant to be.
    """

    def __init__(self, bond, members):
        self.bond = bond
        self.members = list(members)
        self.paths = [os.path.join(SYS_CLASS_NET, bond, 'bonding', 'active_slave')]
        self.paths += [os.path.join(SYS_CLASS_NET, member, 'carrier') for member in self.members]
        self.fds = [self._open(path) for path in self.paths]

    @staticmethod
    def _open(path):
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None

    def _read(self, index):
        if self.fds[index] is None:
            self.fds[index] = self._open(self.paths[index])
            if self.fds[index] is None:
                return None
        try:
            return os.pread(self.fds[index], 64, 0).decode('ascii', 'replace').strip()
        except OSError:
            # EINVAL: the carrier of a link that is down administratively.
            return None

    def snapshot(self):
        """(active member, {member: carrier}) now."""
        active = self._read(0) or None
        return active, dict((member, 1 if self._read(index + 1) == '1' else 0)
                            for index, member in enumerate(self.members))

    def close(self):
        for fd in self.fds:
            if fd is not None:
                os.close(fd)
        self.fds = [None] * len(self.paths)


def changes(bond, before, after, when):
    """Transitions between two snapshots, stamped ``when``."""
    found = []
    if before[0] != after[0]:
        found.append({'time': when, 'kind': 'active', 'link': bond, 'from': before[0], 'to': after[0]})
    for member, value in after[1].items():
        old = before[1].get(member)
        if old != value:
            found.append({'time': when, 'kind': 'carrier', 'link': member, 'from': old, 'to': value})
    return found


# ---------------------------------------------------------------- ping output

def _unwrap(seq, last):
    """The full sequence number of a 16-bit one, taken as the one nearest the previous."""
    if last is None:
        return seq
    base = last - last % SEQ_MODULO
    candidates = [base - SEQ_MODULO + seq, base + seq, base + SEQ_MODULO + seq]
    return min(candidates, key=lambda value: abs(value - last))


def parse_ping(text):
    """Replies, unanswered reports, errors and the summary counts of ``ping -D -O`` output.

    Returns a dict: ``replies`` {seq: arrival time of its first reply}, ``duplicates`` (count of
    replies to a seq already answered), ``unanswered`` {seq: time ping first reported it
    unanswered}, ``errors`` {seq: time of the ICMP error}, ``sent``, ``received`` and
    ``summary_errors`` from the summary (None when there is none: ping was stopped hard or never
    ran), ``first_time`` and ``last_time`` (earliest and latest timestamp of any line).
    Sequence numbers are unwrapped past 65535.
    """
    replies, unanswered, errors = {}, {}, {}
    duplicates = 0
    last_seq = None
    first_time = last_time = None
    for line in (text or '').splitlines():
        stamp = _STAMP.match(line)
        if stamp:
            when = float(stamp.group(1))
            first_time = when if first_time is None else min(first_time, when)
            last_time = when if last_time is None else max(last_time, when)
        for pattern, into in ((_REPLY, replies), (_NO_ANSWER, unanswered), (_ERROR, errors)):
            match = pattern.match(line)
            if not match:
                continue
            seq = _unwrap(int(match.group(2)), last_seq)
            if into is not unanswered:
                last_seq = seq
            when = float(match.group(1))
            if into is replies and (seq in replies or '(DUP!)' in line):
                duplicates += 1
            else:
                into.setdefault(seq, when)
            break
    summary = parse_ping_summary(text)
    return {
        'replies': replies,
        'duplicates': duplicates,
        'unanswered': unanswered,
        'errors': errors,
        'sent': summary.get('sent'),
        'received': summary.get('received'),
        'summary_errors': summary.get('errors', 0) if summary else None,
        'first_time': first_time,
        'last_time': last_time,
    }


def _ms(seconds):
    return round(seconds * 1000.0, 3)


def find_outages(replies, sent, started=None, ended=None):
    """Runs of sequence numbers 1..sent without a reply.

    Each outage: ``first_seq``, ``last_seq``, ``lost`` (their count), ``start`` (arrival of the
    reply to the seq before, or ``started`` when the run begins with seq 1), ``end`` (arrival of
    the reply to the seq after; ``ended`` when the run lasts to the last packet sent, which
    makes ``resumed`` false), ``gap_ms`` = (end - start) * 1000 (None when a bound is unknown):
    the time without replies, one normal interval included. Sequences above ``sent`` are ignored.
    """
    if sent is None:
        sent = max(replies) if replies else 0
    outages = []
    seq = 1
    while seq <= sent:
        if seq in replies:
            seq += 1
            continue
        first = seq
        while seq <= sent and seq not in replies:
            seq += 1
        last = seq - 1
        resumed = last < sent
        start = replies.get(first - 1, started if first == 1 else None)
        end = replies[last + 1] if resumed else ended
        outages.append({
            'first_seq': first,
            'last_seq': last,
            'lost': last - first + 1,
            'start': start,
            'end': end,
            'gap_ms': _ms(end - start) if start is not None and end is not None else None,
            'resumed': resumed,
        })
    return outages


def max_reply_gap_ms(replies, outages=()):
    """The longest time without a reply: between two consecutive replies (arrival order), or
    the gap_ms of one of ``outages`` if that is longer (an outage at the start, or one that never
    resumed, has no reply on one side); 0.0 when there is nothing to measure."""
    times = sorted(replies.values())
    gaps = [b - a for a, b in zip(times, times[1:])]
    best = _ms(max(gaps)) if gaps else 0.0
    for outage in outages:
        if outage['gap_ms'] is not None:
            best = max(best, outage['gap_ms'])
    return best


def reply_gap_around(replies, time_):
    """ms from the last reply at or before time_ to the first one after it; None without both."""
    before = max((t for t in replies.values() if t <= time_), default=None)
    after = min((t for t in replies.values() if t > time_), default=None)
    return _ms(after - before) if before is not None and after is not None else None


def _last_carrier(transitions, link, before):
    """The last carrier transition of link at or before ``before``, or None."""
    found = None
    for item in transitions:
        if item['kind'] == 'carrier' and item['link'] == link and item['time'] <= before:
            found = item
    return found


def _outage_for(time_, outages, window_s):
    """The outage that overlaps time_, else the first that begins within window_s after it."""
    for outage in outages:
        start = outage['start']
        end = outage['end']
        if start is not None and start <= time_ and (end is None or time_ <= end):
            return outage
    after = [o for o in outages if o['start'] is not None and time_ < o['start'] <= time_ + window_s]
    return min(after, key=lambda o: o['start']) if after else None


def _event(change, transitions, outages, replies, window_s, back=False):
    lost_at = _last_carrier(transitions, change['from'], change['time']) if change['from'] else None
    up_at = _last_carrier(transitions, change['to'], change['time']) if change['to'] else None
    lost_at = lost_at['time'] if lost_at and lost_at['to'] == 0 else None
    up_at = up_at['time'] if up_at and up_at['to'] == 1 else None
    cause = up_at if back else lost_at
    outage = _outage_for(change['time'], outages, window_s)
    return {
        'time': change['time'],
        'from': change['from'],
        'to': change['to'],
        'carrier_lost_at': lost_at,
        'carrier_up_at': up_at,
        'detect_ms': _ms(change['time'] - cause) if cause is not None else None,
        'gap_ms': outage['gap_ms'] if outage else 0.0,
        'lost': outage['lost'] if outage else 0,
        'resumed': outage['resumed'] if outage else True,
        'reply_gap_ms': reply_gap_around(replies, change['time']),
    }


def attribute_events(transitions, outages, replies, start_active, window_s=EVENT_WINDOW_S):
    """(failover, failback): the first change of active member away from start_active, and the
    first later change back to it, each with the outage around it; None for one that did not happen.

    ``carrier_lost_at`` is when the member left lost its carrier (if its last carrier change
    before the event was a loss), ``carrier_up_at`` when the member taken got its carrier back
    (likewise). ``detect_ms`` is the time from the cause to the change: the carrier loss for a
    failover, the carrier return for a failback. ``gap_ms`` and ``lost`` come from the outage that
    overlaps the event or begins within window_s after it, 0 when there is none (no reply missed).
    """
    failover = failback = None
    for change in transitions:
        if change['kind'] != 'active':
            continue
        if failover is None:
            if start_active is not None and change['from'] == start_active and change['to'] != start_active:
                failover = _event(change, transitions, outages, replies, window_s)
        elif change['to'] == start_active:
            failback = _event(change, transitions, outages, replies, window_s, back=True)
            break
    return failover, failback


def _round_times(items, keys):
    for item in items:
        for key in keys:
            if item.get(key) is not None:
                item[key] = round(item[key], 6)
    return items


def analyse(text, transitions, start_state, started=None, ended=None, window_s=EVENT_WINDOW_S,
            cut_short=False):
    """Everything the module returns about one run, from ping's output and the transitions seen.

    ``summary`` says whether ping printed its summary (it did not run, or was killed, if not);
    without one, ``sent`` is the highest sequence number seen. ``cut_short`` says ping was stopped
    on purpose: the packet in flight then is not lost, so ``sent`` is likewise the highest sequence
    number that got a reply, an error or a "no answer yet".
    """
    parsed = parse_ping(text)
    sent = parsed['sent']
    if sent is None or cut_short:
        sent = max(list(parsed['replies']) + list(parsed['unanswered']) + list(parsed['errors']) + [0])
    received = parsed['received']
    if received is None or cut_short:
        received = len([seq for seq in parsed['replies'] if seq <= sent])
    outages = find_outages(parsed['replies'], sent, started=started,
                           ended=ended if ended is not None else parsed['last_time'])
    failover, failback = attribute_events(transitions, outages, parsed['replies'],
                                          start_state.get('active'), window_s)
    lines = (text or '').rstrip('\n').splitlines()
    return {
        'sent': sent,
        'received': received,
        'lost': sum(outage['lost'] for outage in outages),
        'duplicates': parsed['duplicates'],
        'icmp_errors': len(parsed['errors']),
        'outages': _round_times(outages, ('start', 'end')),
        'max_gap_ms': max_reply_gap_ms(parsed['replies'], outages),
        'failover': _round_times([failover], ('time', 'carrier_lost_at', 'carrier_up_at'))[0] if failover else None,
        'failback': _round_times([failback], ('time', 'carrier_lost_at', 'carrier_up_at'))[0] if failback else None,
        'stdout_tail': lines[-TAIL_LINES:],
        'summary': parsed['sent'] is not None,
    }


# ---------------------------------------------------------------- the run

def clock_step_ms(started, started_mono, ended, ended_mono):
    """How far the wall clock was set during a run: its advance less the monotonic clock's, in ms
    (a clock slewed by NTP moves a few ms in a minute at most; a set clock moves at once)."""
    return _ms((ended - started) - (ended_mono - started_mono))


def _stop(proc):
    """SIGINT (ping prints its summary), then SIGKILL if it lingers."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(KILL_AFTER_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def run_probe(target, bond, interval_ms, duration_s, interface=None, output_file=None, settle_s=None):
    """Run ping while watching the bond; return the module result. Raises ProbeError when ping
    could not run (the error carries what was measured).

    With ``settle_s``, ping is stopped that long after every member that lost its carrier has it
    back, rather than at the end of duration_s: the run follows the cut, however late it comes."""
    state = bond_state(bond)
    members = state['members']
    argv = ping_command(target, interval_ms, duration_s, interface)
    transitions = []
    polls, max_poll_gap = 0, 0.0
    stopped = settled = False
    lost_carrier, whole_since = False, None
    watcher = Watcher(bond, members)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        previous = (state['active'], dict(state['carrier']))
        # Times are the wall clock's, ping's -D stamps being so; deadlines and the polling gap use
        # the monotonic clock, which a clock being set (a restored guest, NTP) cannot move.
        started, started_mono = time.time(), time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=dict(os.environ, LC_ALL='C'))
        except OSError as exc:
            watcher.close()
            raise ProbeError('could not run %s: %s' % (argv[0], exc), cmd=argv, bond=state)
        stop_at = started_mono + duration_s * STOP_AFTER_FACTOR + STOP_AFTER_S
        last_poll = time.monotonic()
        try:
            while True:
                running = proc.poll() is None
                now, now_mono = time.time(), time.monotonic()
                current = watcher.snapshot()
                polls += 1
                max_poll_gap = max(max_poll_gap, now_mono - last_poll)
                last_poll = now_mono
                transitions.extend(changes(bond, previous, current, round(now, 6)))
                previous = current
                if not running:
                    break
                if not all(current[1].values()):
                    lost_carrier, whole_since = True, None
                elif lost_carrier and whole_since is None:
                    whole_since = now_mono
                if settle_s is not None and whole_since is not None and now_mono - whole_since >= settle_s:
                    settled = True
                    _stop(proc)
                    break
                if now_mono >= stop_at:
                    stopped = True
                    _stop(proc)
                    break
                time.sleep(max(0.0, POLL_PERIOD_S - (time.monotonic() - now_mono)))
        finally:
            watcher.close()
            if proc.poll() is None:
                _stop(proc)
        ended, ended_mono = time.time(), time.monotonic()
        out.seek(0)
        text = out.read().decode('utf-8', 'replace')
        err.seek(0)
        errors = err.read().decode('utf-8', 'replace')
    result = analyse(text, transitions, state, started=started, ended=ended, cut_short=settled)
    has_summary = result.pop('summary')
    result.update({
        'cmd': argv,
        'interval_ms': interval_ms,
        'duration_s': duration_s,
        'start_time': round(started, 6),
        'end_time': round(ended, 6),
        'transitions': transitions,
        'bond': state,
        'poll': {'period_ms': POLL_PERIOD_S * 1000.0, 'count': polls, 'max_gap_ms': _ms(max_poll_gap)},
        'clock_step_ms': clock_step_ms(started, started_mono, ended, ended_mono),
        'ping_rc': proc.returncode,
        'ping_stopped': stopped,
        'settled': settled,
        'stderr_tail': errors.rstrip('\n').splitlines()[-TAIL_LINES:],
    })
    if output_file:
        try:
            with open(output_file, 'w') as handle:
                handle.write(text)
        except (IOError, OSError) as exc:
            raise ProbeError('output_file: could not write %r: %s' % (output_file, exc), **result)
    if abs(result['clock_step_ms']) > CLOCK_STEP_LIMIT_MS:
        raise ProbeError('the node\'s clock was set by %+.0f ms while the probe ran: its times, and the '
                         'gaps taken from them, cannot be trusted; keep clocks from being set (ntpdate, '
                         'date -s) during a measurement' % result['clock_step_ms'], **result)
    if not has_summary and not stopped and not settled:
        detail = errors.strip() or text.strip() or 'no output'
        raise ProbeError('ping failed (rc %s): %s' % (proc.returncode, detail), **result)
    return result
