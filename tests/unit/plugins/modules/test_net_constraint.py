# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""net_constraint's main() in-process with ``tc`` swapped for a stand-in.

The stand-in (tc_constraint.TC) answers ``tc -j qdisc show`` with real outputs captured in the
lab's guests (fixtures/tc), one per call in the order a test queues them (the last one
repeats), and logs every other command line; /sys/class/net is a temp directory."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import tc_constraint as tcc
from ansible_collections.aicluster.lab.plugins.modules import net_constraint

ROOT = pathlib.Path(__file__).resolve().parents[4]
TC_FIXTURES = ROOT / 'tests' / 'unit' / 'fixtures' / 'tc'
DEV = 'bond0.200'
REPLACE = ['tc', 'qdisc', 'replace', 'dev', DEV]
DEL_ROOT = ['tc', 'qdisc', 'del', 'dev', DEV, 'root']
NETEM_20_L2 = REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '20000us', 'loss', '2%']
TBF_100_CHILD = REPLACE + ['parent', '1:1', 'handle', '10:', 'tbf', 'rate', '100000000bit', 'burst', '62500b',
                           'latency', '50000us']
SHAPE_D = dict(delay_ms=20, loss_percent=2, rate_mbit=100)
NONE = {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': None, 'kinds': ['noqueue']}
D_AFTER = {'delay_ms': 20.0, 'jitter_ms': 0.0, 'loss_percent': 2.0, 'rate_mbit': 100.0, 'kinds': ['netem', 'tbf']}

FAKE_TC = r'''
import json, sys
path, args = sys.argv[1], sys.argv[2:]
with open(path) as handle:
    state = json.load(handle)
if args[:3] == ['-j', 'qdisc', 'show']:
    state['shows'].append(args)
    out = state['outputs'].pop(0) if len(state['outputs']) > 1 else state['outputs'][0]
    rc = 0
else:
    state['log'].append(['tc'] + args)
    out, rc = '', 0
    if state.get('fail') and state['fail'] in ' '.join(args):
        sys.stderr.write('Error: Specified qdisc kind is unknown.\n')
        rc = 2
with open(path, 'w') as handle:
    json.dump(state, handle)
sys.stdout.write(out)
sys.exit(rc)
'''


class FakeTc:
    def __init__(self, tmp_path):
        self.path = tmp_path / 'tc-state.json'
        self.script = tmp_path / 'fake_tc.py'
        self.script.write_text(FAKE_TC)
        self.queue()

    def queue(self, *names, fail=None):
        """tc -j qdisc show answers these fixtures in turn (vlan-default if none)."""
        outputs = [(TC_FIXTURES / ('%s.json' % name)).read_text() for name in names or ('vlan-default',)]
        self.path.write_text(json.dumps({'outputs': outputs, 'log': [], 'shows': [], 'fail': fail}))

    def state(self):
        return json.loads(self.path.read_text())

    @property
    def log(self):
        return self.state()['log']


@pytest.fixture
def tc(tmp_path, monkeypatch):
    fake = FakeTc(tmp_path)
    sys_net = tmp_path / 'sys'
    for name, mtu in (('bond0.200', 1500), ('eth1', 1500), ('jumbo0', 9000)):
        (sys_net / name).mkdir(parents=True)
        (sys_net / name / 'mtu').write_text('%d\n' % mtu)
    monkeypatch.setattr(tcc, 'TC', [sys.executable, str(fake.script), str(fake.path)])
    monkeypatch.setattr(tcc, 'SYS_CLASS_NET', str(sys_net))
    return fake


@pytest.fixture
def run(run_module):
    def _run(check_mode=False, diff=False, **args):
        args.setdefault('interface', DEV)
        result = run_module(net_constraint, args, check_mode=check_mode, diff=diff)
        result.pop('_stderr')
        return result
    return _run


def test_apply_shape_from_the_default(tc, run):
    tc.queue('vlan-default', 'netem-tbf-delay-loss-rate')
    result = run(**SHAPE_D)
    assert result['changed'] is True, result
    assert result['interface'] == DEV
    assert result['commands'] == [NETEM_20_L2, TBF_100_CHILD]
    assert tc.log == result['commands']
    assert result['before'] == NONE
    assert result['after'] == D_AFTER  # read back from tc after the commands
    assert tc.state()['shows'] == [['-j', 'qdisc', 'show', 'dev', DEV]] * 2


def test_apply_again_is_unchanged(tc, run):
    tc.queue('netem-tbf-delay-loss-rate')
    result = run(**SHAPE_D)
    assert result['changed'] is False and result['commands'] == [] and tc.log == []
    assert result['before'] == result['after'] == D_AFTER


def test_unchanged_within_tc_rounding(tc, run):
    tc.queue('netem-tbf-fractional')
    result = run(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3)
    assert result['changed'] is False and tc.log == []
    assert result['after'] == {'delay_ms': 12.344, 'jitter_ms': 0.099, 'loss_percent': 0.3, 'rate_mbit': 12.3,
                               'kinds': ['netem', 'tbf']}


def test_each_single_shape(tc, run):
    tc.queue('vlan-default', 'netem-delay-jitter')
    result = run(delay_ms=40, jitter_ms=5)
    assert result['commands'] == [REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay',
                                             '40000us', '5000us']]
    assert result['after']['kinds'] == ['netem'] and result['after']['jitter_ms'] == 5.0
    tc.queue('netem-delay-jitter', 'netem-loss')
    result = run(loss_percent=5)
    assert result['commands'] == [REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'loss', '5%']]
    assert result['before']['delay_ms'] == 40.0 and result['after']['loss_percent'] == 5.0
    tc.queue('netem-loss', 'tbf-rate')
    result = run(rate_mbit=50)
    assert result['commands'] == [REPLACE + ['root', 'handle', '2:', 'tbf', 'rate', '50000000bit', 'burst',
                                             '31250b', 'latency', '50000us']]
    assert result['after'] == {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': 50.0,
                               'kinds': ['tbf']}


def test_burst_follows_the_mtu(tc, run):
    tc.queue('vlan-default')
    result = run(interface='jumbo0', rate_mbit=1, check_mode=True)
    assert result['commands'] == [['tc', 'qdisc', 'replace', 'dev', 'jumbo0', 'root', 'handle', '2:', 'tbf',
                                   'rate', '1000000bit', 'burst', '18036b', 'latency', '50000us']]


def test_check_mode_runs_nothing_and_predicts(tc, run):
    tc.queue('vlan-default')
    result = run(check_mode=True, diff=True, **SHAPE_D)
    assert result['changed'] is True and tc.log == []
    assert result['commands'] == [NETEM_20_L2, TBF_100_CHILD]
    assert result['after'] == D_AFTER
    assert result['diff'] == {'before_header': DEV, 'after_header': DEV,
                              'before': 'bond0.200: no constraint (noqueue)\n',
                              'after': 'bond0.200: delay 20ms loss 2% rate 100mbit (netem, tbf)\n'}
    assert len(tc.state()['shows']) == 1


def test_remove_then_remove_again(tc, run):
    tc.queue('netem-tbf-delay-loss-rate', 'vlan-default')
    result = run(state='absent', diff=True)
    assert result['changed'] is True and result['commands'] == [DEL_ROOT] and tc.log == [DEL_ROOT]
    assert result['before'] == D_AFTER and result['after'] == NONE
    assert result['diff']['after'] == 'bond0.200: no constraint (noqueue)\n'
    tc.queue('vlan-default')
    result = run(state='absent')
    assert result['changed'] is False and result['commands'] == [] and tc.log == []


def test_remove_on_a_physical_default_is_a_no_op(tc, run):
    tc.queue('physical-default')
    result = run(interface='eth1', state='absent')
    assert result['changed'] is False and tc.log == []
    assert result['before']['kinds'] == ['fq_codel']


def test_remove_in_check_mode(tc, run):
    tc.queue('tbf-rate')
    result = run(state='absent', check_mode=True)
    assert result['changed'] is True and result['commands'] == [DEL_ROOT] and tc.log == []
    assert result['after']['kinds'] == []


def test_foreign_root_is_left_and_fails_unless_forced(tc, run):
    tc.queue('htb-foreign')
    for args in (dict(state='absent'), dict(delay_ms=10)):
        result = run(**args)
        assert result['failed'] is True and tc.log == []
        assert result['msg'].startswith('interface bond0.200: the root qdisc is htb (handle 1:), not one '
                                        'net_constraint manages (netem, tbf); set force: true to ')
        assert result['interface'] == DEV and result['changed'] is False
        assert result['before'] == {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': None,
                                    'kinds': ['htb']}
    tc.queue('htb-foreign', 'vlan-default')
    result = run(state='absent', force=True)
    assert result['changed'] is True and tc.log == [DEL_ROOT]


def test_missing_interface(tc, run):
    result = run(interface='eth9', delay_ms=10)
    assert result['failed'] is True
    assert result['msg'] == "interface: 'eth9' does not exist on this host"
    assert tc.log == [] and tc.state()['shows'] == []


@pytest.mark.parametrize('args, message', [
    (dict(jitter_ms=5), 'jitter_ms: 5 requires delay_ms > 0 (delay_ms is 0)'),
    (dict(loss_percent=101), 'loss_percent: 101 must be between 0 and 100'),
    (dict(rate_mbit=0), 'rate_mbit: 0 must be > 0'),
    (dict(delay_ms=-3), 'delay_ms: -3 must be >= 0'),
    (dict(), 'state=present needs something to constrain: set delay_ms, loss_percent or rate_mbit'),
])
def test_validation_before_anything_runs(tc, run, args, message):
    result = run(**args)
    assert result['failed'] is True and result['msg'].startswith(message), result['msg']
    assert tc.log == [] and tc.state()['shows'] == []


def test_a_failing_tc_command_is_reported(tc, run):
    tc.queue('vlan-default', fail='tbf')
    result = run(**SHAPE_D)
    assert result['failed'] is True
    assert result['msg'] == ('interface bond0.200: tc qdisc replace dev bond0.200 parent 1:1 handle 10: tbf '
                             'rate 100000000bit burst 62500b latency 50000us failed (rc 2): '
                             'Error: Specified qdisc kind is unknown.')
    assert result['changed'] is True  # the netem went in
    assert tc.log == [NETEM_20_L2, TBF_100_CHILD]


def test_a_read_back_that_differs_fails(tc, run):
    tc.queue('vlan-default', 'netem-loss')
    result = run(**SHAPE_D)
    assert result['failed'] is True
    assert result['msg'] == ('interface bond0.200: after 2 tc command(s) tc shows loss 5% (netem), '
                             'not delay 20ms loss 2% rate 100mbit (netem, tbf)')
    assert result['after']['loss_percent'] == 5.0


def test_tc_show_failing(tc, run, monkeypatch):
    monkeypatch.setattr(tcc, 'TC', ['sh', '-c', 'echo "Cannot find device" >&2; exit 1', 'tc'])
    result = run(delay_ms=10)
    assert result['failed'] is True
    assert result['msg'] == 'interface bond0.200: tc -j qdisc show failed (rc 1): Cannot find device'
