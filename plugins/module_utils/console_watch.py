# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for nodes to answer on SSH while watching their serial consoles for fatal lines.

A node that panics at boot never answers on SSH; without a watch on its console the
play waits out the whole boot timeout (300 s) and then says only "timeout". The
console says why within seconds, so the wait stops at the first fatal line and names
the node, the pattern, the line and the log's path.

``ConsoleScan`` is the pure part (a log read in increments, lines matched against the
patterns) and is unit-tested on real console output; ``wait_for_nodes`` drives the
probes and the scans.
"""

from __future__ import annotations

import re
import socket
import threading
import time

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError

# What ends a boot for good, as printed on a Debian guest's serial console. Checked
# against real output: tests/unit/fixtures/console/.
FATAL_PATTERNS = [
    {'name': 'kernel panic', 'regex': r'Kernel panic - not syncing'},
    {'name': 'emergency mode', 'regex': r'(You are in emergency mode|Entering emergency mode|Welcome to emergency mode)'},
    {'name': 'out of memory', 'regex': r'(Out of memory: Kill|invoked oom-killer)'},
    # systemd prints failed units on the console even with 'quiet' (show_status=auto).
    # Only the units the lab needs: a failed unrelated unit is validation's business (L1).
    {'name': 'a unit the lab needs failed',
     'regex': r'Failed to start .*(OpenBSD Secure Shell|ssh\.service|Network Configuration|systemd-networkd|'
              r'D-Bus System Message Bus|dbus\.service|Journal Service)'},
]


class ConsoleWatchError(InputError):
    """Bad input. The message names the option and the offending value."""


def compile_patterns(patterns):
    compiled = []
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, dict) or not pattern.get('name') or not pattern.get('regex'):
            raise ConsoleWatchError('fatal_patterns[%d]: %r must be a dict with name and regex' % (index, pattern))
        try:
            compiled.append((pattern['name'], re.compile(pattern['regex'])))
        except re.error as exc:
            raise ConsoleWatchError('fatal_patterns[%d].regex: %r is not a valid regular expression: %s'
                                    % (index, pattern['regex'], exc))
    return compiled


class ConsoleScan(object):
    """One console log, read in increments; remembers the first fatal line it saw."""

    def __init__(self, path, patterns):
        self.path = path
        self.patterns = patterns
        self.offset = 0
        self.line_no = 0
        self.partial = ''
        self.tail = []
        self.fatal = None

    def feed(self, text):
        """Scan newly read text; returns the fatal finding, if any line so far was fatal."""
        lines = (self.partial + text).split('\n')
        self.partial = lines.pop()
        for line in lines:
            self.line_no += 1
            line = line.rstrip('\r')
            self.tail = (self.tail + [line])[-8:]
            if self.fatal is None:
                for name, regex in self.patterns:
                    if regex.search(line):
                        self.fatal = {'pattern': name, 'line': line.strip(), 'line_no': self.line_no, 'path': self.path}
                        break
        return self.fatal

    def poll(self):
        """Read what the log gained since the last poll (a missing log is not yet written)."""
        try:
            with open(self.path, 'rb') as handle:
                handle.seek(self.offset)
                data = handle.read()
        except (IOError, OSError):
            return self.fatal
        self.offset += len(data)
        return self.feed(data.decode('utf-8', 'replace'))


def ssh_banner(address, port, timeout):
    """True when an SSH server answers at address:port with its banner."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(256).startswith(b'SSH-')
    except (OSError, socket.timeout):
        return False


def wait_for_nodes(nodes, patterns, timeout, interval, port=22, probe=ssh_banner, clock=time.monotonic,
                   scan_every=0.25):
    """Wait until every node answers on SSH, a console shows a fatal line, or the timeout.

    ``nodes``: dicts with name, address and console_log. Each node is probed on its own
    thread every ``interval`` seconds; an sshd that answers is not probed again (each
    probe makes a TCG guest fork an sshd). Returns a dict: ``up`` (name -> seconds to
    SSH), ``fatal`` (the first fatal finding with its node, or None), ``waiting`` (names
    not up), ``tails`` (last console lines of the nodes not up) and ``elapsed_s``.
    """
    started = clock()
    deadline = started + timeout
    up = {}
    lock = threading.Lock()
    stop = threading.Event()

    def prober(node):
        while not stop.is_set():
            sent = clock()
            if probe(node['address'], port, min(10.0, max(1.0, interval * 2))):
                with lock:
                    up[node['name']] = round(clock() - started, 1)
                return
            stop.wait(max(0.0, interval - (clock() - sent)))

    scans = {node['name']: ConsoleScan(node['console_log'], patterns) for node in nodes}
    threads = [threading.Thread(target=prober, args=(node,), daemon=True) for node in nodes]
    for thread in threads:
        thread.start()
    fatal = None
    try:
        while True:
            for name, scan in scans.items():
                finding = scan.poll()
                if finding and name not in up:
                    fatal = dict(finding, node=name)
                    break
            with lock:
                done = len(up) == len(nodes)
            if fatal or done or clock() >= deadline:
                break
            stop.wait(scan_every)
    finally:
        stop.set()
    waiting = [node['name'] for node in nodes if node['name'] not in up]
    return {
        'up': dict(up),
        'fatal': fatal,
        'waiting': waiting,
        'tails': {name: scans[name].tail for name in waiting},
        'elapsed_s': round(clock() - started, 1),
    }


def failure_message(result, timeout):
    """What to tell the user when not every node came up; None when all did."""
    fatal = result['fatal']
    if fatal:
        return ('node %s: %s on its console after %.1f s, line %d of %s: %s'
                % (fatal['node'], fatal['pattern'], result['elapsed_s'], fatal['line_no'], fatal['path'], fatal['line']))
    if result['waiting']:
        parts = []
        for name in result['waiting']:
            tail = [line for line in result['tails'].get(name, []) if line.strip()][-3:]
            parts.append('%s (console ends: %s)' % (name, ' | '.join(tail) if tail else 'nothing written'))
        return 'no SSH answer within %s s from %s' % (timeout, '; '.join(parts))
    return None
