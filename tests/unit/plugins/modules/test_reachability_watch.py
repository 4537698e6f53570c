# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""reachability_watch end to end against TCP listeners on 127.0.0.1.

One listener is closed during the watch (its port then refuses) and opened again; one
stays up; one never accepts and has its backlog full, so probes to it time out, which
must not slow down the probes of the others.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest

from ansible_collections.aicluster.lab.plugins.modules import reachability_watch

INTERVAL_MS = 20
TIMEOUT_MS = 100
# Scheduling on a busy CI host is not exact; every timing assertion allows this much.
SLACK = 0.15


class Listener(object):
    """A listening socket on 127.0.0.1 whose thread accepts and closes every connection."""

    def __init__(self, port=0):
        self.port = port
        self.accepted = 0
        self.sock = None
        self.thread = None
        self.stop = None
        self.open()

    def open(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self.sock = sock
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(sock, self.stop))
        self.thread.daemon = True
        self.thread.start()
        return time.time()

    def _serve(self, sock, stop):
        while not stop.is_set():
            if select.select([sock], [], [], 0.005)[0]:
                try:
                    conn, dummy = sock.accept()
                except OSError:
                    continue
                self.accepted += 1
                conn.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()
        return time.time()


class Blackhole(object):
    """A port whose accept queue is full: the kernel drops new SYNs, connects time out."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(('127.0.0.1', self.port), timeout=1)

    def close(self):
        self.filler.close()
        self.sock.close()


@pytest.fixture
def listener():
    item = Listener()
    yield item
    if not item.stop.is_set():
        item.close()


@pytest.fixture
def blackhole():
    item = Blackhole()
    yield item
    item.close()


@pytest.fixture
def run(run_module):
    def _run(args, **kwargs):
        return run_module(reachability_watch, args, **kwargs)
    return _run


def target(name, port):
    return {'name': name, 'address': '127.0.0.1', 'port': port}


def test_loss_and_recovery_timed_and_a_dead_target_does_not_slow_the_others(run, listener, blackhole):
    steady = Listener()
    events = {}

    def flap():
        time.sleep(0.4)
        events['closed'] = listener.close()
        time.sleep(0.5)
        events['opened'] = listener.open()

    flapper = threading.Thread(target=flap)
    flapper.start()
    try:
        result = run({'targets': [target('flapping', listener.port), target('steady', steady.port),
                                  target('dead', blackhole.port)],
                      'interval_ms': INTERVAL_MS, 'timeout_ms': TIMEOUT_MS, 'lost_after': 3, 'duration_s': 1.5})
    finally:
        flapper.join()
        steady.close()
    interval = INTERVAL_MS / 1000.0
    assert result['changed'] is False and 'failed' not in result, result
    assert (result['interval_ms'], result['timeout_ms'], result['lost_after']) == (INTERVAL_MS, TIMEOUT_MS, 3)
    assert result['stopped_by'] == 'duration'
    # async_status reads a 'started' without 'finished' in a job's result as "still running".
    assert 'started' not in result and 'finished' not in result
    assert 1.5 <= result['ended_at'] - result['started_at'] < 1.5 + SLACK

    flapping = result['targets']['flapping']
    assert flapping['reachable_at_start'] is True and flapping['reachable_at_end'] is True
    lost, back = flapping['transitions']
    assert lost['state'] == 'lost' and back['state'] == 'back'
    assert lost['error'] == 'ECONNREFUSED' and lost['failed_probes'] == 3
    # The first failure is the first probe after the close, the third declares the loss.
    assert events['closed'] - 0.01 <= lost['first_failed_at'] <= events['closed'] + interval + SLACK
    assert lost['last_ok_at'] <= lost['first_failed_at']
    assert lost['time'] - lost['first_failed_at'] == pytest.approx(2 * interval, abs=SLACK)
    assert events['opened'] - 0.01 <= back['time'] <= events['opened'] + interval + SLACK
    assert back['first_failed_at'] == lost['first_failed_at']
    assert back['failed_probes'] >= 3
    assert flapping['lost_s_total'] == pytest.approx(back['lost_s'])
    assert back['lost_s'] == pytest.approx(events['opened'] - events['closed'], abs=interval + SLACK)
    assert flapping['failures'] == back['failed_probes']

    # The steady target was probed at every tick even though every probe of 'dead' waited its full timeout.
    steady_result = result['targets']['steady']
    expected = 1.5 / interval
    assert steady_result['transitions'] == [] and steady_result['failures'] == 0
    assert steady_result['probes'] >= 0.7 * expected

    dead = result['targets']['dead']
    assert dead['reachable_at_start'] is False and dead['lost_at_end'] is True
    assert dead['failures'] == dead['probes'] >= 0.7 * (1.5 - TIMEOUT_MS / 1000.0) / interval
    (dead_lost,) = dead['transitions']
    assert dead_lost['error'] == 'timeout' and dead_lost['last_ok_at'] is None
    assert dead_lost['time'] - result['started_at'] == pytest.approx(2 * interval + TIMEOUT_MS / 1000.0, abs=SLACK)
    assert dead['lost_s_total'] == pytest.approx(result['ended_at'] - dead_lost['first_failed_at'])


def test_stop_file_ends_the_watch_and_result_file_holds_the_result(run, listener, tmp_path):
    stop = tmp_path / 'stop'
    result_file = tmp_path / 'watch.json'

    def touch():
        time.sleep(0.3)
        stop.write_text('')

    toucher = threading.Thread(target=touch)
    toucher.start()
    try:
        result = run({'targets': [target('node', listener.port)], 'interval_ms': INTERVAL_MS,
                      'duration_s': 30, 'stop_file': str(stop), 'result_file': str(result_file)})
    finally:
        toucher.join()
    assert result['stopped_by'] == 'stop_file'
    assert 0.3 <= result['ended_at'] - result['started_at'] < 0.3 + INTERVAL_MS / 1000.0 + SLACK
    assert result['targets']['node']['probes'] >= 5
    assert stop.exists()
    written = json.loads(result_file.read_text())
    assert written == {key: value for key, value in result.items()
                       if key not in ('changed', 'invocation', '_stderr')}


def test_stop_file_alone_is_enough(run, listener, tmp_path):
    stop = tmp_path / 'stop'
    threading.Timer(0.2, stop.write_text, args=('',)).start()
    result = run({'targets': [target('node', listener.port)], 'stop_file': str(stop)})
    assert result['stopped_by'] == 'stop_file'
    # Default interval 200 ms: the first probe at once, maybe a second one.
    assert 1 <= result['targets']['node']['probes'] <= 3


def test_check_mode_validates_without_probing(run, listener):
    result = run({'targets': [target('node', listener.port)], 'duration_s': 5}, check_mode=True)
    assert result['changed'] is False and result['stopped_by'] == 'check_mode'
    assert result['ended_at'] == result['started_at']
    node = result['targets']['node']
    assert (node['address'], node['port'], node['probes'], node['reachable_at_start']) == (
        '127.0.0.1', listener.port, 0, None)
    assert listener.accepted == 0

    bad = run({'targets': [target('node', 0)], 'duration_s': 5}, check_mode=True)
    assert bad['failed'] is True and bad['msg'].startswith('targets[0].port: 0 is not a TCP port')


def test_existing_stop_file_fails_before_probing(run, listener, tmp_path):
    stop = tmp_path / 'stop'
    stop.write_text('')
    result = run({'targets': [target('node', listener.port)], 'duration_s': 5, 'stop_file': str(stop)})
    assert result['failed'] is True
    assert result['msg'].startswith('stop_file: %s exists already' % stop)
    assert listener.accepted == 0


def test_duration_or_stop_file_required(run):
    result = run({'targets': [target('node', 22)]})
    assert result['failed'] is True
    assert 'one of the following is required: duration_s, stop_file' in result['msg']


def test_duplicate_names_refused(run):
    result = run({'targets': [target('node', 22), target('node', 23)], 'duration_s': 1})
    assert result['failed'] is True
    assert result['msg'] == 'targets[1].name: node is used by an earlier target'
