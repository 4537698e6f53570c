# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Degrade a link like a bad network with tc: netem (delay, jitter, loss) and tbf (rate).

Shapes this builds on the egress of one interface, always with ``tc qdisc replace``:

  rate only          root tbf, handle 2:
  netem options      root netem, handle 1:
  netem and rate     root netem 1: with a tbf child, handle 10:, under its class 1:1

Netem first, then tbf: packets are delayed (and dropped) by netem and paced by the tbf when
netem releases them, the layout of the netem documentation. Measured in the lab guests
(Debian 12, kernel 6.1, virtio behind an active-backup bond and a VLAN) with delay 20 ms and
rate 100 mbit, iperf3 got the same rate either way round (91.6-93.5 Mbit/s), but a ping
running alongside saw 51-70 ms with netem at the root and 212-224 ms with tbf at the root.
A netem grafted under a tbf replaces the tbf's byte-limited bfifo, so the tbf's latency no
longer bounds the queue: netem's 1000 packets do (zero drops, TCP fills them). With netem at
the root the queue is the tbf's, as configured. It also keeps one root for "netem only" and
"netem and rate": adding or removing the rate changes the child and never swaps the root.

What ``tc -j qdisc show dev X`` prints (iproute2 6.1), which the parser reads:

  netem  options.delay.delay / .jitter in seconds as a float with 6 significant digits
         (0.012345), options["loss-random"].loss as a fraction (0.05 for 5 %), limit in
         packets; delay and loss-random are absent when zero. Other keys (duplicate, reorder,
         corrupt, rate, slot, loss-state, loss-gemodel, correlations, ecn, gap) are settings
         this module does not make.
  tbf    options.rate in bytes/s (integer), options.burst in bytes, options.lat in
         microseconds. tc turns burst into a transmit time in 1/15.625 us ticks and back,
         truncating twice, so burst 65536 at 50 mbit reads back as 65531; lat is computed
         back from the byte limit. The tbf's own bfifo child is not listed.
  each   kind, handle ("1:"), root: true or parent ("1:1"); no "dev" key when one device
         is shown. The default root of a VLAN or bond is "noqueue 0:", of a single-queue
         NIC "fq_codel 0:" (or pfifo_fast), of a multi-queue NIC "mq 0:" with children.

Times are given to tc in whole microseconds (``40000us``), rates in bit/s, bursts in bytes.
tc hands netem's delay and jitter to the kernel in 1/15.625 us ticks, truncated, and prints
them truncated to whole microseconds: 12345us reads back as 0.012344 s and 100us as 9.9e-05 s
(so do "12.345ms" and "0.1ms"), hence the tolerances below.
"""

from __future__ import annotations

import json
import math
import os
import subprocess

from ansible_collections.aicluster.lab.plugins.module_utils.errors import ModuleFailure
from ansible_collections.aicluster.lab.plugins.module_utils.names import interface_name

# Swapped for stand-ins by the unit tests, like network_commit's IP and NETWORKCTL.
TC = ['tc']
SYS_CLASS_NET = '/sys/class/net'
COMMAND_TIMEOUT_S = 30

NETEM_HANDLE = '1:'
TBF_ROOT_HANDLE = '2:'
TBF_CHILD_HANDLE = '10:'
MANAGED_KINDS = ('netem', 'tbf')
# Root qdiscs the kernel attaches by itself; removing a constraint from them is a no-op.
DEFAULT_KINDS = ('noqueue', 'pfifo_fast', 'fq_codel', 'mq')
# Kinds tc lists that are not on the egress path.
INGRESS_KINDS = ('ingress', 'clsact')

# tbf token bucket. The burst is the rate's worth of TBF_BURST_S, at least two frames of the
# interface's MTU. Measured with iperf3 over a 50 mbit tbf in the lab guests: a one-frame
# burst (1600 b) gave 30 Mbit/s, 1 ms of the rate 46.6, 4 ms and more 47.8 (the rate less
# the frame headers). A guest's timer fires late by up to a few ms, and tokens that overflow
# the bucket meanwhile are lost; a GSO packet larger than the burst is split in segments. So
# 5 ms: the rate is reached, and the burst the link lets through at once stays small.
TBF_BURST_S = 0.005
# The tbf queue (latency): TCP keeps a link busy when the bottleneck buffers about one round
# trip's worth of data (the bandwidth-delay product). The round trip holds the netem delay,
# so the queue is at least that plus its jitter, and at least 50 ms for links without delay
# (a short queue tail-drops before a sender's window fits the path).
TBF_MIN_LATENCY_MS = 50.0
# netem's limit counts the packets it holds: those in its delay line and those queued in its
# tbf child. The kernel's default, 1000, holds 100 mbit x (20 ms delay + 50 ms queue) in full
# frames, but not 1 gbit x 100 ms; with a rate the limit is the bytes the delay line and the
# tbf queue hold at that rate, counted in full frames, and at least 1000. Without a rate the
# link's speed is unknown and the default stays.
NETEM_DEFAULT_LIMIT = 1000
# Headroom on the MTU for the link header (Ethernet plus a VLAN tag).
L2_OVERHEAD = 18
DEFAULT_MTU = 1500

# tc prints rounded values; two values closer than (absolute, relative) are equal.
TOLERANCE = {
    'delay_ms': (0.002, 1e-4),
    'jitter_ms': (0.002, 1e-4),
    'loss_percent': (1e-7, 1e-4),
    'rate_mbit': (1e-5, 1e-5),
    'burst_bytes': (16, 1e-3),
    'latency_ms': (1.0, 0.02),
}

NUMBERS = ('delay_ms', 'jitter_ms', 'loss_percent', 'rate_mbit', 'burst_kbit')


class ConstraintError(ModuleFailure):
    """A refused or failed change of a constraint."""


# ---------------------------------------------------------------- validation

def _number(name, value):
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConstraintError('%s: %r is not a number' % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConstraintError('%s: %r is not a number' % (name, value)) from None
    if not math.isfinite(number):
        raise ConstraintError('%s: %r is not a finite number' % (name, value))
    return number


def validate(params):
    """Check the module's parameters; return the wanted constraint, or None for state=absent.

    The wanted constraint: delay_ms, jitter_ms, loss_percent, rate_mbit (None without a rate)
    and burst_kbit (None: derived from the rate and the MTU).
    """
    interface = params.get('interface')
    try:
        interface_name(interface)
    except ValueError:
        raise ConstraintError('interface: %r is not an interface name' % (interface,)) from None
    state = params.get('state') or 'present'
    if state not in ('present', 'absent'):
        raise ConstraintError("state: %r is not one of present, absent" % (state,))
    values = {name: _number(name, params.get(name)) for name in NUMBERS}
    if state == 'absent':
        return None
    for name in ('delay_ms', 'jitter_ms'):
        if values[name] is None:
            values[name] = 0.0
        if values[name] < 0:
            raise ConstraintError('%s: %s must be >= 0' % (name, _fmt(values[name])))
    if values['loss_percent'] is None:
        values['loss_percent'] = 0.0
    if not 0 <= values['loss_percent'] <= 100:
        raise ConstraintError('loss_percent: %s must be between 0 and 100'
                              % _fmt(values['loss_percent']))
    for name in ('rate_mbit', 'burst_kbit'):
        if values[name] is not None and values[name] <= 0:
            raise ConstraintError('%s: %s must be > 0' % (name, _fmt(values[name])))
    if values['jitter_ms'] > 0 and values['delay_ms'] <= 0:
        raise ConstraintError('jitter_ms: %s requires delay_ms > 0 (delay_ms is %s)'
                              % (_fmt(values['jitter_ms']), _fmt(values['delay_ms'])))
    if values['burst_kbit'] is not None and values['rate_mbit'] is None:
        raise ConstraintError('burst_kbit: %s requires rate_mbit' % _fmt(values['burst_kbit']))
    if values['rate_mbit'] is not None and values['rate_mbit'] * 125000 < 1:
        raise ConstraintError('rate_mbit: %s is below 1 byte/s' % _fmt(values['rate_mbit']))
    if values['delay_ms'] > 1e6 or values['jitter_ms'] > 1e6:
        name = 'delay_ms' if values['delay_ms'] > 1e6 else 'jitter_ms'
        raise ConstraintError('%s: %s must be at most 1000000 (1000 s)' % (name, _fmt(values[name])))
    if not (values['delay_ms'] or values['loss_percent'] or values['rate_mbit']):
        raise ConstraintError('state=present needs something to constrain: set delay_ms, '
                              'loss_percent or rate_mbit (jitter_ms needs delay_ms)')
    return values


def _fmt(number):
    return '%g' % number


# ---------------------------------------------------------------- parsing tc -j

def _qdisc(entry):
    """One entry of ``tc -j qdisc show`` as a normalised dict."""
    kind = entry.get('kind')
    options = entry.get('options') or {}
    qdisc = {'kind': kind, 'handle': entry.get('handle'), 'root': bool(entry.get('root')),
             'parent': entry.get('parent'), 'values': {}, 'foreign': []}
    values = qdisc['values']
    if kind == 'netem':
        delay = options.get('delay') or {}
        values['delay_ms'] = float(delay.get('delay', 0)) * 1000
        values['jitter_ms'] = float(delay.get('jitter', 0)) * 1000
        loss = options.get('loss-random') or {}
        values['loss_percent'] = float(loss.get('loss', 0)) * 100
        values['limit'] = options.get('limit')
        for key, value in sorted(options.items()):
            if key in ('limit', 'delay', 'loss-random'):
                if isinstance(value, dict) and value.get('correlation'):
                    qdisc['foreign'].append('%s correlation' % key)
            elif key in ('ecn', 'gap'):
                if value:
                    qdisc['foreign'].append(key)
            else:
                qdisc['foreign'].append(key)
    elif kind == 'tbf':
        values['rate_mbit'] = float(options.get('rate', 0)) / 125000
        values['burst_bytes'] = float(options.get('burst', 0))
        if 'lat' in options:
            values['latency_ms'] = float(options['lat']) / 1000
        for key in sorted(options):
            if key not in ('rate', 'burst', 'lat', 'limit'):
                qdisc['foreign'].append(key)
    return qdisc


def parse_qdiscs(text):
    """Parse ``tc -j qdisc show dev X``: the egress root, its child at class 1, the rest.

    Returns {'root': qdisc or None, 'child': qdisc or None, 'others': [qdisc, ...]}.
    """
    try:
        entries = json.loads(text or '[]')
    except ValueError as exc:
        raise ConstraintError('cannot read the output of tc -j qdisc show: %s' % exc) from None
    if not isinstance(entries, list):
        raise ConstraintError('cannot read the output of tc -j qdisc show: not a list')
    qdiscs = [_qdisc(entry) for entry in entries if isinstance(entry, dict)]
    root = next((q for q in qdiscs if q['root']), None)
    child = None
    others = []
    for qdisc in qdiscs:
        if qdisc is root or qdisc['kind'] in INGRESS_KINDS:
            continue
        if (child is None and root is not None and root['handle'] and qdisc['parent']
                and qdisc['parent'] == root['handle'].rstrip(':') + ':1'):
            child = qdisc
        else:
            others.append(qdisc)
    return {'root': root, 'child': child, 'others': others}


def is_default(qdisc):
    return qdisc is None or qdisc['kind'] in DEFAULT_KINDS or qdisc['handle'] in ('0:', None)


def _empty_summary(kinds):
    return {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': None,
            'kinds': kinds}


def summarize(current):
    """The constraint a parsed state applies: delay_ms, jitter_ms, loss_percent, rate_mbit, kinds.

    Only the root and its child count; values are rounded to what tc can hold (1 us, 1 byte/s).
    """
    root, child = current['root'], current['child']
    kinds = [q['kind'] for q in (root, child) if q is not None]
    summary = _empty_summary(kinds)
    for qdisc in (root, child):
        if qdisc is None or qdisc['kind'] not in MANAGED_KINDS:
            continue
        for key in ('delay_ms', 'jitter_ms', 'loss_percent'):
            if key in qdisc['values']:
                summary[key] = round(qdisc['values'][key], 6)
        if qdisc['kind'] == 'tbf' and summary['rate_mbit'] is None:
            summary['rate_mbit'] = round(qdisc['values']['rate_mbit'], 6)
    return summary


# ---------------------------------------------------------------- planning

def tbf_params(wanted, mtu):
    """Bytes/s, burst bytes and latency ms of the tbf for ``wanted``."""
    rate = int(round(wanted['rate_mbit'] * 125000))
    if wanted.get('burst_kbit'):
        burst = int(math.ceil(wanted['burst_kbit'] * 125))
    else:
        burst = int(math.ceil(max(rate * TBF_BURST_S, 2 * ((mtu or DEFAULT_MTU) + L2_OVERHEAD))))
    latency = max(TBF_MIN_LATENCY_MS, wanted['delay_ms'] + wanted['jitter_ms'])
    return rate, burst, latency


def netem_limit(wanted, mtu):
    """The packet limit of the netem for ``wanted``."""
    if wanted['rate_mbit'] is None:
        return NETEM_DEFAULT_LIMIT
    rate, burst, latency = tbf_params(wanted, mtu)
    held = rate * (wanted['delay_ms'] + wanted['jitter_ms'] + latency) / 1000.0 + burst
    return max(NETEM_DEFAULT_LIMIT, int(math.ceil(held / ((mtu or DEFAULT_MTU) + L2_OVERHEAD))))


def _us(ms):
    return '%dus' % int(round(ms * 1000))


def _percent(value):
    return ('%.10f' % value).rstrip('0').rstrip('.') + '%'


def netem_args(wanted, mtu):
    args = ['netem', 'limit', str(netem_limit(wanted, mtu))]
    if wanted['delay_ms'] > 0:
        args += ['delay', _us(wanted['delay_ms'])]
        if wanted['jitter_ms'] > 0:
            args.append(_us(wanted['jitter_ms']))
    if wanted['loss_percent'] > 0:
        args += ['loss', _percent(wanted['loss_percent'])]
    return args


def tbf_args(wanted, mtu):
    rate, burst, latency = tbf_params(wanted, mtu)
    return ['tbf', 'rate', '%dbit' % (rate * 8), 'burst', '%db' % burst, 'latency', _us(latency)]


def _close(key, have, want):
    if have is None or want is None:
        return have is None and want is None
    absolute, relative = TOLERANCE[key]
    return abs(have - want) <= max(absolute, relative * max(abs(have), abs(want)))


def _netem_matches(qdisc, wanted, mtu):
    if qdisc is None or qdisc['kind'] != 'netem' or qdisc['foreign']:
        return False
    if qdisc['values'].get('limit') != netem_limit(wanted, mtu):
        return False
    return all(_close(key, qdisc['values'][key], wanted[key])
               for key in ('delay_ms', 'jitter_ms', 'loss_percent'))


def _tbf_matches(qdisc, wanted, mtu):
    if qdisc is None or qdisc['kind'] != 'tbf' or qdisc['foreign']:
        return False
    rate, burst, latency = tbf_params(wanted, mtu)
    values = qdisc['values']
    return (_close('rate_mbit', values['rate_mbit'], rate / 125000.0)
            and _close('burst_bytes', values['burst_bytes'], burst)
            and _close('latency_ms', values.get('latency_ms'), latency))


def wants_netem(wanted):
    return bool(wanted['delay_ms'] > 0 or wanted['loss_percent'] > 0)


def matches(current, wanted, mtu):
    """Whether the parsed state already applies ``wanted`` (within tc's rounding)."""
    root, child = current['root'], current['child']
    if current['others']:
        return False
    if wants_netem(wanted):
        if not _netem_matches(root, wanted, mtu):
            return False
        if wanted['rate_mbit'] is None:
            return child is None
        return _tbf_matches(child, wanted, mtu)
    return child is None and _tbf_matches(root, wanted, mtu)


def foreign_root(current):
    """The root qdisc of a parsed state when something else made it (neither the kernel's default
    nor a netem or tbf); None otherwise."""
    root = current['root']
    if root is not None and not is_default(root) and root['kind'] not in MANAGED_KINDS:
        return root
    return None


def foreign_msg(interface, root):
    """Why a foreign root is left alone, naming the interface, the kind and the handle."""
    return ("interface %s: the root qdisc is %s (handle %s), not one net_constraint manages "
            "(netem, tbf)" % (interface, root['kind'], root['handle']))


def remove_args(interface):
    """The tc argv that deletes the root qdisc of ``interface``: the kernel's default comes back."""
    return ['tc', 'qdisc', 'del', 'dev', interface, 'root']


def plan_present(interface, current, wanted, mtu, force=False):
    """The tc argv lists that make ``interface`` apply ``wanted``; [] when it already does."""
    if matches(current, wanted, mtu):
        return []
    if foreign_root(current) and not force:
        raise ConstraintError(foreign_msg(interface, current['root']) + '; set force: true to replace it',
                              interface=interface)
    root, child = current['root'], current['child']
    dev = ['tc', 'qdisc', 'replace', 'dev', interface]
    commands = []
    kind = 'netem' if wants_netem(wanted) else 'tbf'
    managed = root is not None and not is_default(root)
    handle = NETEM_HANDLE if kind == 'netem' else TBF_ROOT_HANDLE
    fresh = False
    if managed and root['kind'] == kind and not root['foreign'] and not current['others']:
        handle = root['handle']  # change it in place
    elif managed and (root['handle'] == handle or root['foreign'] or current['others']
                      or root['kind'] not in MANAGED_KINDS):
        # Same handle, other kind: the kernel refuses to replace it ("Invalid qdisc name").
        # Settings tc would not reset (netem reorder, rate, ...) or qdiscs hung below: start
        # from the default.
        commands.append(remove_args(interface))
        fresh = True
    else:
        # Default root, or a managed one of the other kind: replacing grafts the new root.
        fresh = True
    if kind == 'netem':
        if fresh or not _netem_matches(root, wanted, mtu):
            commands.append(dev + ['root', 'handle', handle] + netem_args(wanted, mtu))
        parent = handle.rstrip(':') + ':1'
        existing = None if fresh else child
        if wanted['rate_mbit'] is not None:
            if not _tbf_matches(existing, wanted, mtu):
                child_handle = TBF_CHILD_HANDLE
                if existing is not None and existing['kind'] == 'tbf' and not existing['foreign']:
                    child_handle = existing['handle']
                elif existing is not None:
                    # Another kind might hold handle 10: (the kernel would refuse the replace).
                    commands.append(['tc', 'qdisc', 'del', 'dev', interface, 'parent', parent])
                commands.append(dev + ['parent', parent, 'handle', child_handle] + tbf_args(wanted, mtu))
        elif existing is not None:
            commands.append(['tc', 'qdisc', 'del', 'dev', interface, 'parent', parent])
    else:
        if not fresh and child is not None:
            # A qdisc below our tbf (netem 1: grafted under it): rebuild without it.
            commands.append(remove_args(interface))
            handle = TBF_ROOT_HANDLE
        commands.append(dev + ['root', 'handle', handle] + tbf_args(wanted, mtu))
    return commands


def plan_absent(interface, current, force=False):
    """The tc argv lists that remove our constraint from ``interface``; [] when there is none."""
    root = current['root']
    if is_default(root):
        return []
    if foreign_root(current) and not force:
        raise ConstraintError(foreign_msg(interface, root) + '; set force: true to remove it',
                              interface=interface)
    return [remove_args(interface)]


def predict(current, wanted):
    """The summary after a successful apply of ``wanted`` (None: state=absent)."""
    if wanted is None:
        root = current['root']
        if is_default(root):
            return summarize(current)
        return _empty_summary([])  # the kernel's default comes back; its kind varies
    kinds = (['netem'] if wants_netem(wanted) else []) + (['tbf'] if wanted['rate_mbit'] else [])
    summary = _empty_summary(kinds)
    summary.update(delay_ms=round(wanted['delay_ms'], 3), jitter_ms=round(wanted['jitter_ms'], 3),
                   loss_percent=round(wanted['loss_percent'], 6))
    if wanted['rate_mbit'] is not None:
        summary['rate_mbit'] = round(wanted['rate_mbit'], 6)
    return summary


def describe(summary):
    """Readable text of a summary: 'delay 50ms jitter 10ms loss 2% rate 100mbit (netem, tbf)'."""
    parts = []
    if summary['delay_ms']:
        parts.append('delay %sms' % _fmt(summary['delay_ms']))
    if summary['jitter_ms']:
        parts.append('jitter %sms' % _fmt(summary['jitter_ms']))
    if summary['loss_percent']:
        parts.append('loss %s%%' % _fmt(summary['loss_percent']))
    if summary['rate_mbit'] is not None:
        parts.append('rate %smbit' % _fmt(summary['rate_mbit']))
    kinds = ', '.join(summary['kinds']) or "the kernel's default"
    return '%s (%s)' % (' '.join(parts) or 'no constraint', kinds)


# ---------------------------------------------------------------- the host

def _run(argv):
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {'rc': 127, 'stdout': '', 'stderr': str(exc)}
    return {'rc': proc.returncode, 'stdout': proc.stdout.decode('utf-8', 'replace'),
            'stderr': proc.stderr.decode('utf-8', 'replace')}


def _tc(args):
    return _run(list(TC) + list(args))


def read_state(interface):
    run = _tc(['-j', 'qdisc', 'show', 'dev', interface])
    if run['rc'] != 0:
        raise ConstraintError('interface %s: tc -j qdisc show failed (rc %d): %s'
                              % (interface, run['rc'], (run['stderr'] or run['stdout']).strip()),
                              interface=interface)
    return parse_qdiscs(run['stdout'])


def read_mtu(interface):
    try:
        with open(os.path.join(SYS_CLASS_NET, interface, 'mtu')) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return DEFAULT_MTU


def ensure(params, check_mode=False, diff=False):
    """Make the interface's root qdisc apply the constraint of ``params`` (module options).

    Returns the module result: changed, interface, before, after, commands (+ diff).
    """
    wanted = validate(params)
    interface = params['interface']
    if not os.path.isdir(os.path.join(SYS_CLASS_NET, interface)):
        raise ConstraintError("interface: '%s' does not exist on this host" % interface,
                              interface=interface)
    force = bool(params.get('force'))
    mtu = read_mtu(interface)
    current = read_state(interface)
    before = summarize(current)
    try:
        if wanted is None:
            commands = plan_absent(interface, current, force)
        else:
            commands = plan_present(interface, current, wanted, mtu, force)
    except ConstraintError as exc:
        exc.result.update(changed=False, before=before)
        raise
    result = {'changed': bool(commands), 'interface': interface, 'before': before,
              'commands': commands}
    if not commands:
        result['after'] = before
    elif check_mode:
        result['after'] = predict(current, wanted)
    else:
        for argv in commands:
            run = _tc(argv[1:])
            if run['rc'] != 0:
                after = summarize(read_state(interface))
                raise ConstraintError('interface %s: %s failed (rc %d): %s'
                                      % (interface, ' '.join(argv), run['rc'],
                                         (run['stderr'] or run['stdout']).strip()),
                                      changed=argv is not commands[0], interface=interface,
                                      before=before, after=after, commands=commands)
        state = read_state(interface)
        result['after'] = summarize(state)
        if wanted is not None and not matches(state, wanted, mtu):
            raise ConstraintError('interface %s: after %d tc command(s) tc shows %s, not %s'
                                  % (interface, len(commands), describe(result['after']),
                                     describe(predict(current, wanted))), **result)
        if wanted is None and not is_default(state['root']):
            raise ConstraintError('interface %s: the root qdisc is still %s after deleting it'
                                  % (interface, state['root']['kind']), **result)
    if diff:
        result['diff'] = {'before_header': interface, 'after_header': interface,
                          'before': '%s: %s\n' % (interface, describe(before)),
                          'after': '%s: %s\n' % (interface, describe(result['after']))}
    return result
