# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reachability state machine on synthetic probe series, and the input checks."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.reachability import (
    ReachabilityError,
    Tracker,
    validate,
    write_result,
)

INTERVAL = 0.2
TIMEOUT = 0.5
T0 = 1000.0


def feed(tracker, pattern, rtt=0.001, error='timeout'):
    """Probe i is sent at T0 + i * INTERVAL; '+' connects after rtt, '-' times out, 'r' is refused."""
    for index, mark in enumerate(pattern):
        sent = T0 + index * INTERVAL
        if mark == '+':
            tracker.observe(sent, sent + rtt, True)
        elif mark == '-':
            tracker.observe(sent, sent + TIMEOUT, False, error)
        else:
            tracker.observe(sent, sent + 0.0005, False, 'ECONNREFUSED')
    return tracker


def at(index, offset=0.0):
    return pytest.approx(T0 + index * INTERVAL + offset)


def test_always_reachable():
    summary = feed(Tracker(3), '+' * 10).summary(T0 + 2)
    assert summary == {'reachable_at_start': True, 'reachable_at_end': True, 'lost_at_end': False,
                       'transitions': [], 'probes': 10, 'failures': 0, 'blips': 0, 'lost_s_total': 0.0}


def test_outage_lost_at_the_third_failure_and_back_at_the_first_success():
    # Probes 0-2 answer, 3-9 time out, 10 on answer.
    summary = feed(Tracker(3), '+++' + '-' * 7 + '+++').summary(T0 + 3)
    lost, back = summary['transitions']
    assert lost == {'time': at(5, TIMEOUT), 'state': 'lost', 'failed_probes': 3,
                    'first_failed_at': at(3), 'last_ok_at': at(2), 'error': 'timeout'}
    assert back == {'time': at(10, 0.001), 'state': 'back', 'failed_probes': 7,
                    'first_failed_at': at(3), 'last_ok_at': at(2), 'lost_s': pytest.approx(7 * INTERVAL + 0.001)}
    assert summary['lost_s_total'] == pytest.approx(7 * INTERVAL + 0.001)
    assert (summary['probes'], summary['failures'], summary['blips']) == (13, 7, 0)
    assert summary['reachable_at_start'] is True and summary['reachable_at_end'] is True
    assert summary['lost_at_end'] is False


def test_short_runs_are_blips_not_outages():
    summary = feed(Tracker(3), '++--+-+--+').summary(T0 + 2)
    assert summary['transitions'] == []
    assert (summary['failures'], summary['blips']) == (5, 3)
    assert summary['lost_s_total'] == 0.0


def test_lost_after_one_declares_at_the_first_failure():
    summary = feed(Tracker(1), '+r+').summary(T0 + 1)
    lost, back = summary['transitions']
    assert lost['time'] == at(1, 0.0005) and lost['error'] == 'ECONNREFUSED' and lost['failed_probes'] == 1
    assert back['time'] == at(2, 0.001)


def test_refused_counts_as_failed():
    summary = feed(Tracker(2), '+rr+').summary(T0 + 1)
    assert [t['state'] for t in summary['transitions']] == ['lost', 'back']
    assert summary['transitions'][0]['time'] == at(2, 0.0005)


def test_unreachable_from_the_start_is_lost_without_last_ok():
    summary = feed(Tracker(3), '-----++').summary(T0 + 2)
    assert summary['reachable_at_start'] is False
    lost, back = summary['transitions']
    assert lost['first_failed_at'] == at(0) and lost['last_ok_at'] is None
    assert back['failed_probes'] == 5


def test_still_lost_at_the_end_counts_until_the_end():
    tracker = feed(Tracker(3), '++' + '-' * 6)
    summary = tracker.summary(T0 + 5.0)
    assert [t['state'] for t in summary['transitions']] == ['lost']
    assert summary['lost_at_end'] is True and summary['reachable_at_end'] is False
    assert summary['lost_s_total'] == pytest.approx(5.0 - 2 * INTERVAL)


def test_two_outages_add_up():
    summary = feed(Tracker(2), '+---+' + '+' * 3 + '--+').summary(T0 + 3)
    assert [t['state'] for t in summary['transitions']] == ['lost', 'back', 'lost', 'back']
    first = 3 * INTERVAL + 0.001
    second = 2 * INTERVAL + 0.001
    assert summary['transitions'][1]['lost_s'] == pytest.approx(first)
    assert summary['transitions'][3]['lost_s'] == pytest.approx(second)
    assert summary['transitions'][2]['last_ok_at'] == at(7)
    assert summary['lost_s_total'] == pytest.approx(first + second)


def test_no_probe_at_all():
    summary = Tracker(3).summary(T0)
    assert summary['reachable_at_start'] is None and summary['reachable_at_end'] is None
    assert summary['probes'] == 0 and summary['transitions'] == []


def test_lost_after_must_be_positive():
    with pytest.raises(ReachabilityError, match='lost_after: 0 must be at least 1'):
        Tracker(0)


def params(**extra):
    base = {'targets': [{'name': 'node1', 'address': '127.0.0.1', 'port': 22},
                        {'name': 'node2', 'address': '::1', 'port': 2222}],
            'interval_ms': 200, 'timeout_ms': 500, 'lost_after': 3, 'duration_s': 5.0,
            'stop_file': None, 'result_file': None}
    base.update(extra)
    return base


def test_validate_resolves_addresses():
    targets = validate(params())
    assert [(t['name'], t['family'], t['sockaddr'][:2]) for t in targets] == [
        ('node1', socket.AF_INET, ('127.0.0.1', 22)), ('node2', socket.AF_INET6, ('::1', 2222))]


@pytest.mark.parametrize('extra, message', [
    ({'interval_ms': 5}, 'interval_ms: 5 must be at least 10'),
    ({'timeout_ms': 0}, 'timeout_ms: 0 must be at least 1'),
    ({'lost_after': 0}, 'lost_after: 0 must be at least 1'),
    ({'duration_s': 0.0}, 'duration_s: 0.0 must be more than 0'),
    ({'targets': []}, 'targets: give at least one target'),
    ({'targets': [{'name': 'a', 'address': '127.0.0.1', 'port': 22}, {'name': 'a', 'address': '127.0.0.2', 'port': 22}]},
     'targets[1].name: a is used by an earlier target'),
    ({'targets': [{'name': 'a', 'address': '127.0.0.1', 'port': 0}]}, 'targets[0].port: 0 is not a TCP port'),
    ({'targets': [{'name': 'a', 'address': '127.0.0.1', 'port': 65536}]}, 'targets[0].port: 65536 is not'),
    ({'targets': [{'name': 'a', 'address': '', 'port': 22}]}, 'targets[0].address: must not be empty'),
    ({'targets': [{'name': 'a', 'address': 'no-such-host.invalid', 'port': 22}]},
     'targets[0].address: cannot resolve no-such-host.invalid'),
    ({'result_file': '/nonexistent-aiclt/result.json'}, 'result_file: the directory of /nonexistent-aiclt/result.json'),
])
def test_validate_names_the_field(extra, message):
    with pytest.raises(ReachabilityError, match='^' + re.escape(message)):
        validate(params(**extra))


def test_existing_stop_file_is_refused(tmp_path):
    stop = tmp_path / 'stop'
    stop.write_text('')
    with pytest.raises(ReachabilityError, match='stop_file: .* exists already'):
        validate(params(stop_file=str(stop)))


def test_write_result_is_whole_json(tmp_path):
    path = tmp_path / 'result.json'
    write_result(str(path), {'targets': {}, 'started': 1.5})
    assert json.loads(path.read_text()) == {'targets': {}, 'started': 1.5}
    assert os.listdir(str(tmp_path)) == ['result.json']


def test_a_refused_probe_is_an_answer_only_when_asked():
    import errno as _errno
    from ansible_collections.aicluster.lab.plugins.module_utils.reachability import _Probe
    probe = _Probe(0, None, 1.0, 2.0)
    probe.finish(1.5, _errno.ECONNREFUSED)
    assert (probe.ok, probe.error) == (False, "ECONNREFUSED")
    probe = _Probe(0, None, 1.0, 2.0)
    probe.finish(1.5, _errno.ECONNREFUSED, refused_is_up=True)
    assert probe.ok is True and probe.error is None
    # A timeout is never an answer.
    probe = _Probe(0, None, 1.0, 2.0)
    probe.finish(1.5, _errno.ETIMEDOUT, refused_is_up=True)
    assert probe.ok is False
