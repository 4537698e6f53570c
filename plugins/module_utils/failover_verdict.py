# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdict on one bond failover measurement, from the probe's figures.

The probe (module bond_failover_probe) measures the traffic gap on the node's clock.
On an emulated guest the vCPU can stall: while it does, neither the bond's poll nor
ping runs, and the stall becomes part of the gap. A gap over the bound then says
nothing about the bond. The probe's own longest poll gap shows such a stall, so:

- passed: the active member moved away from the cut one, traffic resumed, and the gap
  is within the bound;
- inconclusive: all that, except that the gap exceeds the bound only by what the guest
  spent stalled (gap minus the longest poll gap is within the bound, and that poll gap
  is at least ``stall_ms``); the role measures again, and reports the check skipped
  with the stall named if no try is clean: never a failure of the bond, never a pass;
- failed: anything else, with what the probe saw.
"""

from __future__ import annotations

import json


def _figure(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _figures(probe, change, bound_ms):
    """The probe's longest poll gap, and the figures of one bond change (failover or failback)."""
    poll_gap = _figure((((probe if isinstance(probe, dict) else None) or {}).get('poll') or {}).get('max_gap_ms'))
    figures = {'bound_ms': float(bound_ms)}
    if isinstance(change, dict):
        for key in ('gap_ms', 'lost', 'detect_ms'):
            if _figure(change.get(key)) is not None:
                figures[key] = change[key]
    if poll_gap is not None:
        figures['max_poll_gap_ms'] = poll_gap
    return poll_gap, figures


def _unresumed(probe, bound_ms):
    """The outages after which traffic never came back.

    The probe stops its own ping settle_s after the link is back; the echo requests sent just
    before have no reply yet. A run of them at the very end, shorter than the bound, is that
    stop, not an outage (measured on a loaded host: 2 packets, 105 ms, 3 s after the failback).
    A run that began at the cut and never ended lasts the hold and the settle time, far more.
    """
    return [outage for outage in probe.get('outages') or [] if not outage.get('resumed')
            and not (probe.get('settled') and outage.get('gap_ms') is not None and outage['gap_ms'] <= bound_ms)]


def failover_verdict(probe, cut, bound_ms, stall_ms, not_cut=''):
    """One try's verdict: a dict with status (passed, failed, inconclusive), message, figures.

    ``not_cut`` says why the member was not cut, when it was not (the cable pull never saw
    the probe's traffic, say): the try then failed, whatever the probe measured.
    """
    failover = probe.get('failover') if isinstance(probe, dict) else None
    poll_gap, figures = _figures(probe, failover, bound_ms)

    def verdict(status, message):
        return {'status': status, 'message': message, 'figures': figures}

    failed_probe = probe.get('failed') or ('sent' not in probe and probe.get('msg'))
    if not_cut:
        return verdict('failed', 'nothing was cut: %s%s' % (
            not_cut, ('; the probe failed: %s' % probe.get('msg', 'no message')) if failed_probe else ''))
    # A probe that failed, or whose job was ended before it reported (async's "Timeout
    # exceeded" on a guest too slow to run it), has a message and no figures.
    if failed_probe:
        return verdict('failed', '%s cut: the probe failed: %s' % (cut, probe.get('msg', 'no message')))
    unresumed = _unresumed(probe, bound_ms)
    seen = ('probe: %s sent, %s answered, longest poll gap %s ms, bond changes seen %s'
            % (probe.get('sent', '?'), probe.get('received', '?'), poll_gap if poll_gap is not None else '?',
               json.dumps(probe.get('transitions') or [])))
    if not isinstance(failover, dict):
        return verdict('failed', '%s cut: the active member never moved; %s' % (cut, seen))
    if failover.get('from') != cut or failover.get('to') == cut:
        return verdict('failed', '%s cut: the active member went %s -> %s; %s'
                       % (cut, failover.get('from'), failover.get('to'), seen))
    if unresumed:
        return verdict('failed', '%s cut: traffic did not resume after %s; %s' % (cut, json.dumps(unresumed), seen))
    gap = _figure(failover.get('gap_ms'))
    if gap is None:
        return verdict('failed', '%s cut: the probe measured no gap; %s' % (cut, seen))
    moved = ('%s cut: active %s -> %s %s ms after carrier loss; traffic gap %s ms, %s lost (bound %s ms)'
             % (cut, failover.get('from'), failover.get('to'), failover.get('detect_ms', '?'), gap,
                failover.get('lost', '?'), bound_ms))
    if gap <= bound_ms:
        return verdict('passed', moved)
    if poll_gap is not None and poll_gap >= stall_ms and gap - poll_gap <= bound_ms:
        return verdict('inconclusive', '%s; the guest stalled for %s ms during the window (the probe\'s longest poll '
                                       'gap), so the gap cannot be told from the stall' % (moved, poll_gap))
    return verdict('failed', '%s; %s' % (moved, seen))


def failback_verdict(probe, cut, primary, bound_ms, stall_ms):
    """The verdict on the return to the primary once the cut member's link is back.

    Same rules as the failover's: a gap over the bound only by what the guest spent
    stalled (the probe's longest poll gap) is inconclusive, never a failure of the bond.
    """
    probe = probe if isinstance(probe, dict) else {}
    failback = probe.get('failback')
    poll_gap, figures = _figures(probe, failback, bound_ms)

    def verdict(status, message):
        return {'status': status, 'message': message, 'figures': figures}

    if probe.get('failed') or ('sent' not in probe and probe.get('msg')):
        return verdict('failed', '%s back: the probe failed: %s' % (cut, probe.get('msg', 'no message')))
    if not isinstance(failback, dict):
        return verdict('failed', '%s back: the bond never went back to %s (bond changes seen %s)'
                       % (cut, primary, json.dumps(probe.get('transitions') or [])))
    if failback.get('to') != primary:
        return verdict('failed', '%s back: the active member went %s -> %s, expected the primary %s'
                       % (cut, failback.get('from'), failback.get('to'), primary))
    gap = _figure(failback.get('gap_ms'))
    moved = ('%s back: active %s -> %s; traffic gap %s ms, %s lost (bound %s ms)'
             % (cut, failback.get('from'), failback.get('to'), gap if gap is not None else '?',
                failback.get('lost', '?'), bound_ms))
    if gap is not None and gap <= bound_ms:
        return verdict('passed', moved)
    if gap is not None and poll_gap is not None and poll_gap >= stall_ms and gap - poll_gap <= bound_ms:
        return verdict('inconclusive', '%s; the guest stalled for %s ms during the probe (its longest poll gap), so '
                                       'the gap cannot be told from the stall' % (moved, poll_gap))
    return verdict('failed', '%s; longest poll gap %s ms' % (moved, poll_gap if poll_gap is not None else '?'))


def failover_outcome(tries):
    """The check over all tries: the first clean try decides; figures of every try are kept.

    ``tries`` are verdicts in the order measured. Returns a dict with status (passed,
    failed or skipped), message and figures (the deciding try's, plus try<N>_gap_ms).
    """
    if not tries:
        return {'status': 'skipped', 'message': 'not measured', 'figures': {}}
    decided = next((t for t in tries if t['status'] != 'inconclusive'), None)
    figures = dict((decided or tries[-1])['figures'], tries=len(tries))
    for number, one in enumerate(tries, start=1):
        if 'gap_ms' in one['figures']:
            figures['try%d_gap_ms' % number] = one['figures']['gap_ms']
    if decided is not None:
        prefix = '' if len(tries) == 1 else 'try %d of %d: ' % (tries.index(decided) + 1, len(tries))
        return {'status': decided['status'], 'message': prefix + decided['message'], 'figures': figures}
    return {'status': 'skipped', 'figures': figures,
            'message': 'inconclusive after %d tries, the guest stalled each time: %s'
                       % (len(tries), '; '.join(t['message'] for t in tries))}
