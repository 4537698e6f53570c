# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""check_batch: verdict records as the entries of aicluster.lab.check's checks option."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter.check import check_batch
from ansible_collections.aicluster.lab.plugins.module_utils import exo_verdict

RECORDS = [
    {'name': 'l1_hostname', 'category': 'L1', 'description': 'the hostname', 'passed': True,
     'message': 'hostname node1', 'figures': {}},
    {'name': 'net_vlan_agreement', 'category': 'network', 'description': 'VLANs agree', 'passed': False,
     'message': 'node2 tags VLAN 201', 'figures': {'vlans': 2}},
    {'name': 'net_ping_storage_node2', 'category': 'network', 'description': 'ping', 'passed': True,
     'message': 'no reply', 'figures': {}, 'skip_reason': 'node2 does not answer'},
]


def test_each_record_becomes_the_options_of_its_check():
    assert check_batch(RECORDS) == [
        {'name': 'l1_hostname', 'category': 'L1', 'description': 'the hostname', 'figures': {}, 'skip_reason': '',
         'that': True, 'success_msg': 'hostname node1', 'fail_msg': 'hostname node1'},
        {'name': 'net_vlan_agreement', 'category': 'network', 'description': 'VLANs agree', 'figures': {'vlans': 2},
         'skip_reason': '', 'that': False, 'success_msg': 'node2 tags VLAN 201', 'fail_msg': 'node2 tags VLAN 201'},
        {'name': 'net_ping_storage_node2', 'category': 'network', 'description': 'ping', 'figures': {},
         'skip_reason': 'node2 does not answer', 'that': True, 'success_msg': 'no reply', 'fail_msg': 'no reply'},
    ]


def test_suffix_and_expected_failures():
    entries = check_batch(RECORDS, '_after', {'net_vlan_agreement': 'VLAN 201', 'l1_hostname': ''})
    assert [entry['name'] for entry in entries] == ['l1_hostname_after', 'net_vlan_agreement_after',
                                                    'net_ping_storage_node2_after']
    assert [entry.get('expect_failure') for entry in entries] == [None, 'VLAN 201', None]


def test_a_record_without_passed_or_message_has_no_condition_and_no_messages():
    # exo_live_skipped's records carry their reason only; the single form passed no `that`.
    entry = check_batch([{'name': 'exo_chat', 'category': 'exo', 'description': 'chat', 'skip_reason': 'no EXO'}])[0]
    assert entry == {'name': 'exo_chat', 'category': 'exo', 'description': 'chat', 'figures': None,
                     'skip_reason': 'no EXO'}


def test_the_verdict_modules_records_pass_through():
    entries = check_batch(exo_verdict.live_skipped('exo does not run'))
    assert [entry['skip_reason'] for entry in entries] == ['exo does not run'] * 4
    failed = check_batch([exo_verdict.record('exo_unit', 'the unit', ['unit missing'], 'unit ok')])[0]
    assert (failed['that'], failed['fail_msg'], failed['skip_reason']) == (False, 'unit missing', '')


@pytest.mark.parametrize('args, error', [
    (('not a list',), "check_batch: expects a list of check records, got 'not a list'"),
    (([{'category': 'L1'}],), "check_batch: record 0 must be a dict with a name"),
    (([RECORDS[0], 'x'],), "check_batch: record 1 must be a dict with a name, got 'x'"),
    (([dict(RECORDS[0], passed='yes')],), "check_batch: record 0 (l1_hostname): passed must be true or false, got 'yes'"),
    ((RECORDS, '', ['x']), "check_batch: expect_failure must map check names to messages, got ['x']"),
])
def test_errors_name_the_record(args, error):
    with pytest.raises(AnsibleFilterError) as exc:
        check_batch(*args)
    assert error in str(exc.value)
