# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch hosts with TCP connect probes and record when each is lost and back.

``Tracker`` is the pure part: a state machine fed with probe results and their times,
unit-tested with synthetic time series. ``watch`` sends the probes: every target is
probed at every tick, all of them at once with non-blocking connects in one selector,
and a probe that is still waiting for its timeout never delays the next tick, so a
dead host changes neither the cadence nor the figures of the others.

All times are epoch seconds of the clock where the watch runs, derived from one
reading of ``time.time()`` at the start plus ``time.monotonic()`` offsets, so a clock
step during the watch does not bend the figures.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import selectors
import socket
import tempfile
import time

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError

TIMEOUT = 'timeout'


class ReachabilityError(InputError):
    """Bad input. The message names the option and the offending value."""


class Tracker(object):
    """Reachability of one target, from its probe results in the order they were sent.

    A run of ``lost_after`` consecutive failed probes declares the target lost; the
    first successful probe after that declares it back. Shorter runs of failures are
    counted as blips.
    """

    def __init__(self, lost_after):
        if lost_after < 1:
            raise ReachabilityError('lost_after: %s must be at least 1' % lost_after)
        self.lost_after = lost_after
        self.lost = False
        self.reachable_at_start = None
        self.transitions = []
        self.probes = 0
        self.failures = 0
        self.blips = 0
        self.lost_s_total = 0.0
        self.last_ok_at = None
        self.run_failures = 0
        self.run_first_failed_at = None
        self.last_ok = None

    def observe(self, sent, done, ok, error=None):
        """Feed one probe: sent at ``sent``, answered (or timed out) at ``done``."""
        self.probes += 1
        if self.reachable_at_start is None:
            self.reachable_at_start = ok
        self.last_ok = ok
        if ok:
            if self.lost:
                lost_s = done - self.run_first_failed_at
                self.lost_s_total += lost_s
                self.transitions.append(self._transition(done, 'back', lost_s=round(lost_s, 6)))
                self.lost = False
            elif self.run_failures:
                self.blips += 1
            self.run_failures = 0
            self.run_first_failed_at = None
            # The send time: with overlapping probes a slow answer can come after the next probe was sent.
            self.last_ok_at = sent
            return
        self.failures += 1
        if not self.run_failures:
            self.run_first_failed_at = sent
        self.run_failures += 1
        if not self.lost and self.run_failures >= self.lost_after:
            self.lost = True
            self.transitions.append(self._transition(done, 'lost', error=error))

    def _transition(self, when, state, **extra):
        item = {
            'time': when,
            'state': state,
            'failed_probes': self.run_failures,
            'first_failed_at': self.run_first_failed_at,
            'last_ok_at': self.last_ok_at,
        }
        item.update(extra)
        return item

    def summary(self, ended):
        """Figures at the end of the watch; a target still lost counts until ``ended``."""
        lost_s_total = self.lost_s_total
        if self.lost:
            lost_s_total += max(0.0, ended - self.run_first_failed_at)
        return {
            'reachable_at_start': self.reachable_at_start,
            'reachable_at_end': self.last_ok,
            'lost_at_end': self.lost,
            'transitions': list(self.transitions),
            'probes': self.probes,
            'failures': self.failures,
            'blips': self.blips,
            'lost_s_total': round(lost_s_total, 6),
        }


# ---------------------------------------------------------------------------
# Input


def validate(params):
    """Check the options and resolve the addresses; returns the target list.

    Each target becomes ``{'name', 'address', 'port', 'family', 'sockaddr'}``.
    """
    for key, minimum in (('interval_ms', 10), ('timeout_ms', 1), ('lost_after', 1)):
        if params[key] < minimum:
            raise ReachabilityError('%s: %s must be at least %s' % (key, params[key], minimum))
    if params.get('duration_s') is not None and params['duration_s'] <= 0:
        raise ReachabilityError('duration_s: %s must be more than 0' % params['duration_s'])
    stop_file = params.get('stop_file')
    if stop_file and os.path.lexists(stop_file):
        raise ReachabilityError('stop_file: %s exists already, so the watch would end at once; remove it '
                                'before starting' % stop_file)
    for key in ('stop_file', 'result_file'):
        path = params.get(key)
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise ReachabilityError('%s: the directory of %s does not exist' % (key, path))
    targets = params.get('targets') or []
    if not targets:
        raise ReachabilityError('targets: give at least one target')
    seen = set()
    resolved = []
    for index, target in enumerate(targets):
        field = 'targets[%d]' % index
        name, address, port = target['name'], target['address'], target['port']
        if not name:
            raise ReachabilityError('%s.name: must not be empty' % field)
        if name in seen:
            raise ReachabilityError('%s.name: %s is used by an earlier target' % (field, name))
        seen.add(name)
        if not address:
            raise ReachabilityError('%s.address: must not be empty' % field)
        if not 1 <= port <= 65535:
            raise ReachabilityError('%s.port: %s is not a TCP port (1-65535)' % (field, port))
        try:
            infos = socket.getaddrinfo(address, port, 0, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ReachabilityError('%s.address: cannot resolve %s: %s' % (field, address, exc))
        family, dummy, dummy, dummy, sockaddr = infos[0]
        resolved.append({'name': name, 'address': address, 'port': port, 'family': family, 'sockaddr': sockaddr})
    return resolved


# ---------------------------------------------------------------------------
# Probing


class _Probe(object):
    __slots__ = ('target', 'sock', 'sent', 'deadline', 'done', 'ok', 'error')

    def __init__(self, target, sock, sent, deadline):
        self.target = target
        self.sock = sock
        self.sent = sent
        self.deadline = deadline
        self.done = None
        self.ok = None
        self.error = None

    def finish(self, done, err, refused_is_up=False):
        self.done = done
        # A refusal (RST) comes from the host's kernel: with refused_is_up it proves the host up.
        self.ok = err == 0 or (refused_is_up and err == errno.ECONNREFUSED)
        self.error = None if self.ok else (err if isinstance(err, str) else errno.errorcode.get(err, str(err)))


def _close(sock):
    try:
        sock.close()
    except OSError:
        pass


def watch(targets, interval_ms, timeout_ms, lost_after, duration_s=None, stop_file=None,
          clock=time.monotonic, wall=time.time, refused_is_up=False):
    """Probe ``targets`` (as ``validate`` returns them) until the duration ends or ``stop_file`` appears.

    Probes still in flight at the end are not counted. With ``refused_is_up`` a refused
    connection counts as an answer (the host's kernel sent it).
    """
    interval = interval_ms / 1000.0
    timeout = timeout_ms / 1000.0
    start_mono = clock()
    started = wall()

    def epoch(mono):
        return started + (mono - start_mono)

    end_mono = start_mono + duration_s if duration_s else None
    trackers = [Tracker(lost_after) for dummy in targets]
    pending = [collections.deque() for dummy in targets]
    selector = selectors.DefaultSelector()
    stopped_by = 'duration'
    next_tick = start_mono
    try:
        while True:
            now = clock()
            if end_mono is not None and now >= end_mono:
                break
            if stop_file and os.path.lexists(stop_file):
                stopped_by = 'stop_file'
                break
            if now >= next_tick:
                for index, target in enumerate(targets):
                    pending[index].append(_start_probe(selector, index, target, clock, epoch, timeout, refused_is_up))
                next_tick += interval
                if next_tick <= now:
                    # Late (the host was busy): skip the missed ticks rather than burst.
                    next_tick = now + interval
            wake = next_tick
            if end_mono is not None:
                wake = min(wake, end_mono)
            for queue in pending:
                for probe in queue:
                    if probe.done is None:
                        wake = min(wake, probe.deadline)
            for key, dummy in selector.select(max(0.0, wake - clock())):
                probe = key.data
                done = epoch(clock())
                selector.unregister(probe.sock)
                probe.finish(done, probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), refused_is_up)
                _close(probe.sock)
            now = clock()
            for index, queue in enumerate(pending):
                for probe in queue:
                    if probe.done is None and now >= probe.deadline:
                        selector.unregister(probe.sock)
                        _close(probe.sock)
                        probe.finish(epoch(probe.deadline), TIMEOUT)
                # Results go to the tracker in the order the probes were sent.
                while queue and queue[0].done is not None:
                    probe = queue.popleft()
                    trackers[index].observe(probe.sent, probe.done, probe.ok, probe.error)
        ended = epoch(clock())
    finally:
        for queue in pending:
            for probe in queue:
                if probe.done is None:
                    selector.unregister(probe.sock)
                    _close(probe.sock)
        selector.close()
    result = {}
    for target, tracker in zip(targets, trackers):
        result[target['name']] = dict(address=target['address'], port=target['port'], **tracker.summary(ended))
    return {'targets': result, 'started_at': started, 'ended_at': ended, 'stopped_by': stopped_by}


def _start_probe(selector, index, target, clock, epoch, timeout, refused_is_up=False):
    sock = socket.socket(target['family'], socket.SOCK_STREAM)
    sock.setblocking(False)
    sent_mono = clock()
    err = sock.connect_ex(target['sockaddr'])
    probe = _Probe(index, sock, epoch(sent_mono), sent_mono + timeout)
    if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        selector.register(sock, selectors.EVENT_WRITE, probe)
    else:
        # Connected at once (loopback) or refused/unreachable at once.
        probe.finish(epoch(clock()), err, refused_is_up)
        _close(sock)
    return probe


def write_result(path, result):
    """Write ``result`` as JSON to ``path`` atomically (a reader never sees half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, 'w') as out:
            json.dump(result, out, indent=2, sort_keys=True)
            out.write('\n')
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
