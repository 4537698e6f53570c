# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tc_constraint: the parser on real ``tc -j qdisc show`` output (fixtures/tc, captured in the
lab's guests, see its README), the planner (wanted vs current -> tc commands) with tc's
rounding, and the validation of the options."""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import tc_constraint as tcc

ROOT = pathlib.Path(__file__).resolve().parents[4]
TC_FIXTURES = ROOT / 'tests' / 'unit' / 'fixtures' / 'tc'
DEV = 'bond0.200'
REPLACE = ['tc', 'qdisc', 'replace', 'dev', DEV]
DEL_ROOT = ['tc', 'qdisc', 'del', 'dev', DEV, 'root']
DEL_CHILD = ['tc', 'qdisc', 'del', 'dev', DEV, 'parent', '1:1']
NETEM_40_5 = REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '40000us', '5000us']
NETEM_20_L2 = REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '20000us', 'loss', '2%']
TBF_50_ROOT = REPLACE + ['root', 'handle', '2:', 'tbf', 'rate', '50000000bit', 'burst', '31250b',
                         'latency', '50000us']
TBF_100_CHILD = REPLACE + ['parent', '1:1', 'handle', '10:', 'tbf', 'rate', '100000000bit', 'burst', '62500b',
                           'latency', '50000us']


def fixture(name):
    return (TC_FIXTURES / ('%s.json' % name)).read_text()


def state(name):
    return tcc.parse_qdiscs(fixture(name))


def wanted(**values):
    return tcc.validate(dict(values, interface=DEV))


# The shapes the module builds, with the options that build them (see the fixtures' README).
SHAPES = {
    'netem-delay-jitter': dict(delay_ms=40, jitter_ms=5),
    'netem-loss': dict(loss_percent=5),
    'tbf-rate': dict(rate_mbit=50),
    'netem-tbf-delay-loss-rate': dict(delay_ms=20, loss_percent=2, rate_mbit=100),
    'netem-tbf-fractional': dict(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3),
    'netem-tbf-large-limit': dict(delay_ms=100, rate_mbit=1000),
}


# ---------------------------------------------------------------- parser

@pytest.mark.parametrize('name, summary', [
    ('vlan-default', {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': None,
                      'kinds': ['noqueue']}),
    ('physical-default', {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': None,
                          'kinds': ['fq_codel']}),
    ('netem-delay-jitter', {'delay_ms': 40.0, 'jitter_ms': 5.0, 'loss_percent': 0.0, 'rate_mbit': None,
                            'kinds': ['netem']}),
    ('netem-loss', {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 5.0, 'rate_mbit': None,
                    'kinds': ['netem']}),
    ('tbf-rate', {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': 50.0,
                  'kinds': ['tbf']}),
    ('netem-tbf-delay-loss-rate', {'delay_ms': 20.0, 'jitter_ms': 0.0, 'loss_percent': 2.0, 'rate_mbit': 100.0,
                                   'kinds': ['netem', 'tbf']}),
    # tc truncated 12345 us to 12344 and 100 us to 99 (see the module_utils docstring).
    ('netem-tbf-fractional', {'delay_ms': 12.344, 'jitter_ms': 0.099, 'loss_percent': 0.3, 'rate_mbit': 12.3,
                              'kinds': ['netem', 'tbf']}),
    ('netem-tbf-large-limit', {'delay_ms': 100.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': 1000.0,
                               'kinds': ['netem', 'tbf']}),
    ('netem-float-ms', {'delay_ms': 12.344, 'jitter_ms': 0.099, 'loss_percent': 0.3, 'rate_mbit': None,
                        'kinds': ['netem']}),
    ('htb-foreign', {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': None,
                     'kinds': ['htb']}),
    ('tbf-netem-child', {'delay_ms': 20.0, 'jitter_ms': 0.0, 'loss_percent': 0.0, 'rate_mbit': 100.0,
                         'kinds': ['tbf', 'netem']}),
    ('netem-clsact', {'delay_ms': 40.0, 'jitter_ms': 5.0, 'loss_percent': 0.0, 'rate_mbit': None,
                      'kinds': ['netem']}),
])
def test_summary_of_each_fixture(name, summary):
    assert tcc.summarize(state(name)) == summary


def test_parser_reads_netem_and_its_tbf_child():
    current = state('netem-tbf-delay-loss-rate')
    root, child = current['root'], current['child']
    assert (root['kind'], root['handle'], root['root'], root['foreign']) == ('netem', '1:', True, [])
    assert root['values'] == {'delay_ms': 20.0, 'jitter_ms': 0.0, 'loss_percent': 2.0, 'limit': 1000}
    assert (child['kind'], child['handle'], child['parent'], child['foreign']) == ('tbf', '10:', '1:1', [])
    assert child['values'] == {'rate_mbit': 100.0, 'burst_bytes': 62500.0, 'latency_ms': 50.0}
    assert current['others'] == []


def test_parser_reads_tc_rounding_as_printed():
    current = state('netem-tbf-fractional')
    assert current['root']['values']['delay_ms'] == pytest.approx(12.344)
    assert current['root']['values']['jitter_ms'] == pytest.approx(0.099)
    assert current['child']['values']['burst_bytes'] == 7687.0  # 7688 asked
    assert current['child']['values']['rate_mbit'] == pytest.approx(12.3)


def test_parser_flags_netem_settings_it_does_not_make():
    assert state('netem-foreign-options')['root']['foreign'] == ['duplicate', 'gap', 'reorder']


def test_parser_ignores_ingress_side_qdiscs():
    current = state('netem-clsact')
    assert current['root']['kind'] == 'netem' and current['child'] is None and current['others'] == []


def test_parser_default_roots():
    for name, kind in (('vlan-default', 'noqueue'), ('physical-default', 'fq_codel')):
        current = state(name)
        assert current['root']['kind'] == kind and current['root']['handle'] == '0:'
        assert tcc.is_default(current['root'])
    assert not tcc.is_default(state('htb-foreign')['root'])


def test_parser_rejects_garbage():
    with pytest.raises(tcc.ConstraintError, match='cannot read the output of tc -j qdisc show'):
        tcc.parse_qdiscs('qdisc noqueue 0: root refcnt 2')
    assert tcc.parse_qdiscs('') == {'root': None, 'child': None, 'others': []}


# ---------------------------------------------------------------- planner

@pytest.mark.parametrize('name, commands', [
    ('netem-delay-jitter', [NETEM_40_5]),
    ('netem-loss', [REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'loss', '5%']]),
    ('tbf-rate', [TBF_50_ROOT]),
    ('netem-tbf-delay-loss-rate', [NETEM_20_L2, TBF_100_CHILD]),
    ('netem-tbf-fractional', [
        REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '12345us', '100us', 'loss', '0.3%'],
        REPLACE + ['parent', '1:1', 'handle', '10:', 'tbf', 'rate', '12300000bit', 'burst', '7688b',
                   'latency', '50000us']]),
    ('netem-tbf-large-limit', [
        REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '16881', 'delay', '100000us'],
        REPLACE + ['parent', '1:1', 'handle', '10:', 'tbf', 'rate', '1000000000bit', 'burst', '625000b',
                   'latency', '100000us']]),
])
def test_each_shape_from_the_default_and_back_idempotent(name, commands):
    want = wanted(**SHAPES[name])
    for default in ('vlan-default', 'physical-default'):
        assert tcc.plan_present(DEV, state(default), want, 1500) == commands
    # What tc printed after those commands is the wanted state, within its rounding.
    assert tcc.matches(state(name), want, 1500)
    assert tcc.plan_present(DEV, state(name), want, 1500) == []


@pytest.mark.parametrize('name', sorted(SHAPES))
def test_other_shapes_are_not_mistaken_for_this_one(name):
    want = wanted(**SHAPES[name])
    for other in SHAPES:
        assert tcc.matches(state(other), want, 1500) is (other == name)


@pytest.mark.parametrize('values, equal', [
    (dict(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3), True),
    (dict(delay_ms=12.3451, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3), True),
    (dict(delay_ms=12.344, jitter_ms=0.099, loss_percent=0.3, rate_mbit=12.3), True),
    (dict(delay_ms=12.35, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3), False),
    (dict(delay_ms=12.345, jitter_ms=0.11, loss_percent=0.3, rate_mbit=12.3), False),
    (dict(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.31, rate_mbit=12.3), False),
    (dict(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.31), False),
    (dict(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3, burst_kbit=61.5), True),
    (dict(delay_ms=12.345, jitter_ms=0.1, loss_percent=0.3, rate_mbit=12.3, burst_kbit=80), False),
])
def test_tolerance_for_tc_rounding(values, equal):
    current = state('netem-tbf-fractional')
    want = wanted(**values)
    assert tcc.matches(current, want, 1500) is equal
    assert (tcc.plan_present(DEV, current, want, 1500) == []) is equal


def test_the_mtu_is_part_of_the_wanted_tbf():
    # 5 ms of 1 mbit is 625 bytes: the burst is two frames of the MTU instead.
    assert tcc.tbf_params(wanted(rate_mbit=1), 1500) == (125000, 3036, 50.0)
    assert tcc.tbf_params(wanted(rate_mbit=1), 9000) == (125000, 18036, 50.0)
    assert tcc.tbf_params(wanted(rate_mbit=50), 1500) == (6250000, 31250, 50.0)
    assert tcc.tbf_params(wanted(rate_mbit=50, burst_kbit=100), 1500) == (6250000, 12500, 50.0)
    assert tcc.tbf_params(wanted(rate_mbit=50, delay_ms=80, jitter_ms=10), 1500) == (6250000, 31250, 90.0)
    # Over an MTU of 16000 two frames (32036 bytes) are more than 5 ms of 50 mbit.
    assert not tcc.matches(state('tbf-rate'), wanted(rate_mbit=50), 16000)


def test_netem_limit_grows_with_rate_and_delay():
    assert tcc.netem_limit(wanted(delay_ms=40), 1500) == 1000
    assert tcc.netem_limit(wanted(delay_ms=20, rate_mbit=100), 1500) == 1000
    # 125e6 B/s x (100 + 100) ms + 625000 burst = 25.6 MB in 1518 byte frames.
    assert tcc.netem_limit(wanted(delay_ms=100, rate_mbit=1000), 1500) == 16881


def test_adding_the_rate_under_netem_adds_the_child_only():
    want = wanted(delay_ms=40, jitter_ms=5, rate_mbit=100)
    assert tcc.plan_present(DEV, state('netem-delay-jitter'), want, 1500) == [
        REPLACE + ['parent', '1:1', 'handle', '10:', 'tbf', 'rate', '100000000bit', 'burst', '62500b',
                   'latency', '50000us']]


def test_dropping_the_rate_deletes_the_child():
    want = wanted(delay_ms=20, loss_percent=2)
    assert tcc.plan_present(DEV, state('netem-tbf-delay-loss-rate'), want, 1500) == [DEL_CHILD]


def test_changing_netem_keeps_the_child_when_it_fits():
    want = wanted(delay_ms=30, loss_percent=2, rate_mbit=100)
    assert tcc.plan_present(DEV, state('netem-tbf-delay-loss-rate'), want, 1500) == [
        REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '30000us', 'loss', '2%']]


def test_changing_the_rate_under_netem_replaces_the_child_in_place():
    want = wanted(delay_ms=20, loss_percent=2, rate_mbit=50)
    assert tcc.plan_present(DEV, state('netem-tbf-delay-loss-rate'), want, 1500) == [
        REPLACE + ['parent', '1:1', 'handle', '10:', 'tbf', 'rate', '50000000bit', 'burst', '31250b',
                   'latency', '50000us']]


def test_netem_to_rate_only_grafts_a_tbf_root():
    assert tcc.plan_present(DEV, state('netem-tbf-delay-loss-rate'), wanted(rate_mbit=50), 1500) == [TBF_50_ROOT]
    assert tcc.plan_present(DEV, state('netem-loss'), wanted(rate_mbit=50), 1500) == [TBF_50_ROOT]


def test_rate_only_to_netem_grafts_a_netem_root():
    assert tcc.plan_present(DEV, state('tbf-rate'), wanted(delay_ms=40, jitter_ms=5), 1500) == [NETEM_40_5]
    assert tcc.plan_present(DEV, state('tbf-rate'), wanted(delay_ms=20, loss_percent=2, rate_mbit=100),
                            1500) == [NETEM_20_L2, TBF_100_CHILD]


def test_a_changed_rate_only_tbf_is_replaced_in_place():
    assert tcc.plan_present(DEV, state('tbf-rate'), wanted(rate_mbit=100), 1500) == [
        REPLACE + ['root', 'handle', '2:', 'tbf', 'rate', '100000000bit', 'burst', '62500b', 'latency', '50000us']]


def test_tbf_root_at_handle_1_is_deleted_before_netem_takes_that_handle():
    # The kernel refuses "replace root handle 1: netem" over a tbf 1: ("Invalid qdisc name").
    assert tcc.plan_present(DEV, state('tbf-netem-child'), wanted(delay_ms=20, loss_percent=2, rate_mbit=100),
                            1500) == [DEL_ROOT, NETEM_20_L2, TBF_100_CHILD]


def test_tbf_root_with_a_child_is_rebuilt_for_rate_only():
    assert tcc.plan_present(DEV, state('tbf-netem-child'), wanted(rate_mbit=50), 1500) == [DEL_ROOT, TBF_50_ROOT]


def test_netem_with_settings_a_replace_would_keep_is_rebuilt():
    want = wanted(delay_ms=10)
    assert not tcc.matches(state('netem-foreign-options'), want, 1500)
    assert tcc.plan_present(DEV, state('netem-foreign-options'), want, 1500) == [
        DEL_ROOT, REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '10000us']]


def test_ingress_qdiscs_do_not_matter():
    assert tcc.plan_present(DEV, state('netem-clsact'), wanted(delay_ms=40, jitter_ms=5), 1500) == []
    assert tcc.plan_absent(DEV, state('netem-clsact')) == [DEL_ROOT]


def test_foreign_root_fails_unless_forced():
    with pytest.raises(tcc.ConstraintError) as info:
        tcc.plan_present(DEV, state('htb-foreign'), wanted(delay_ms=40), 1500)
    assert info.value.msg == ('interface bond0.200: the root qdisc is htb (handle 1:), not one net_constraint '
                              'manages (netem, tbf); set force: true to replace it')
    assert tcc.plan_present(DEV, state('htb-foreign'), wanted(delay_ms=40), 1500, force=True) == [
        DEL_ROOT, REPLACE + ['root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '40000us']]


@pytest.mark.parametrize('name', ['netem-delay-jitter', 'netem-loss', 'tbf-rate', 'netem-tbf-delay-loss-rate',
                                  'tbf-netem-child', 'netem-foreign-options'])
def test_absent_deletes_a_managed_root(name):
    assert tcc.plan_absent(DEV, state(name)) == [DEL_ROOT]


@pytest.mark.parametrize('name', ['vlan-default', 'physical-default'])
def test_absent_on_a_default_root_is_a_no_op(name):
    assert tcc.plan_absent(DEV, state(name)) == []
    assert tcc.plan_absent(DEV, state(name), force=True) == []


def test_absent_on_a_foreign_root_fails_unless_forced():
    with pytest.raises(tcc.ConstraintError) as info:
        tcc.plan_absent(DEV, state('htb-foreign'))
    assert info.value.msg == ('interface bond0.200: the root qdisc is htb (handle 1:), not one net_constraint '
                              'manages (netem, tbf); set force: true to remove it')
    assert info.value.result == {'interface': DEV}
    assert tcc.plan_absent(DEV, state('htb-foreign'), force=True) == [DEL_ROOT]


def test_predict_and_describe():
    want = wanted(delay_ms=20, loss_percent=2, rate_mbit=100)
    predicted = tcc.predict(state('vlan-default'), want)
    assert predicted == tcc.summarize(state('netem-tbf-delay-loss-rate'))
    assert tcc.describe(predicted) == 'delay 20ms loss 2% rate 100mbit (netem, tbf)'
    assert tcc.describe(tcc.summarize(state('netem-delay-jitter'))) == 'delay 40ms jitter 5ms (netem)'
    assert tcc.describe(tcc.summarize(state('vlan-default'))) == 'no constraint (noqueue)'
    assert tcc.predict(state('tbf-rate'), None) == {'delay_ms': 0.0, 'jitter_ms': 0.0, 'loss_percent': 0.0,
                                                    'rate_mbit': None, 'kinds': []}
    assert tcc.describe(tcc.predict(state('tbf-rate'), None)) == "no constraint (the kernel's default)"
    assert tcc.predict(state('vlan-default'), None) == tcc.summarize(state('vlan-default'))


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize('values, message', [
    (dict(delay_ms=-1), 'delay_ms: -1 must be >= 0'),
    (dict(delay_ms=10, jitter_ms=-0.5), 'jitter_ms: -0.5 must be >= 0'),
    (dict(jitter_ms=5), 'jitter_ms: 5 requires delay_ms > 0 (delay_ms is 0)'),
    (dict(jitter_ms=5, loss_percent=1), 'jitter_ms: 5 requires delay_ms > 0 (delay_ms is 0)'),
    (dict(loss_percent=100.5), 'loss_percent: 100.5 must be between 0 and 100'),
    (dict(loss_percent=-2), 'loss_percent: -2 must be between 0 and 100'),
    (dict(rate_mbit=0), 'rate_mbit: 0 must be > 0'),
    (dict(rate_mbit=-5), 'rate_mbit: -5 must be > 0'),
    (dict(rate_mbit=1e-7), 'rate_mbit: 1e-07 is below 1 byte/s'),
    (dict(rate_mbit=10, burst_kbit=0), 'burst_kbit: 0 must be > 0'),
    (dict(delay_ms=10, burst_kbit=100), 'burst_kbit: 100 requires rate_mbit'),
    (dict(delay_ms=float('nan')), "delay_ms: nan is not a finite number"),
    (dict(rate_mbit=float('inf')), "rate_mbit: inf is not a finite number"),
    (dict(delay_ms='soon'), "delay_ms: 'soon' is not a number"),
    (dict(delay_ms=True), 'delay_ms: True is not a number'),
    (dict(delay_ms=2e6), 'delay_ms: 2e+06 must be at most 1000000 (1000 s)'),
    (dict(), 'state=present needs something to constrain: set delay_ms, loss_percent or rate_mbit '
             '(jitter_ms needs delay_ms)'),
    (dict(delay_ms=0, loss_percent=0), 'state=present needs something to constrain'),
    (dict(delay_ms=10, interface='../etc'), "interface: '../etc' is not an interface name"),
    (dict(delay_ms=10, interface='a-very-long-interface'), "interface: 'a-very-long-interface' is not an "
                                                           "interface name"),
    (dict(delay_ms=10, state='gone'), "state: 'gone' is not one of present, absent"),
])
def test_validation_names_field_and_value(values, message):
    params = dict({'interface': DEV}, **values)
    with pytest.raises(tcc.ConstraintError) as info:
        tcc.validate(params)
    assert info.value.msg.startswith(message), info.value.msg


def test_validation_of_absent_still_checks_numbers_but_needs_none():
    assert tcc.validate({'interface': DEV, 'state': 'absent'}) is None
    assert tcc.validate({'interface': DEV, 'state': 'absent', 'delay_ms': 0, 'jitter_ms': 5}) is None
    with pytest.raises(tcc.ConstraintError, match="delay_ms: 'x' is not a number"):
        tcc.validate({'interface': DEV, 'state': 'absent', 'delay_ms': 'x'})


def test_validation_returns_the_wanted_values():
    assert wanted(delay_ms=20, loss_percent='2', rate_mbit=100) == {
        'delay_ms': 20.0, 'jitter_ms': 0.0, 'loss_percent': 2.0, 'rate_mbit': 100.0, 'burst_kbit': None}
