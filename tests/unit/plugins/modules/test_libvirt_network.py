# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_network against libvirt's in-process test driver (real libvirt code, no daemon)."""

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.aicluster.lab.plugins.module_utils import libvirt_conn  # noqa: E402
from ansible_collections.aicluster.lab.plugins.modules import libvirt_network  # noqa: E402

URI = 'test:///default'
BASE = {'name': 'aiclt-net', 'uri': URI, 'address': '192.168.231.1/24', 'bridge': 'aicltbr0',
        'dhcp_range': {'start': '192.168.231.100', 'end': '192.168.231.150'}}


@pytest.fixture
def conn():
    # test:///default resets when its last connection closes; holding one keeps
    # state across the module runs of one test and gives each test a fresh driver.
    handle = libvirt.open(URI)
    yield handle
    handle.close()


@pytest.fixture
def run(run_module):
    def _run(args, **kwargs):
        return run_module(libvirt_network, args, **kwargs)
    return _run


def net_names(conn):
    return sorted(n.name() for n in conn.listAllNetworks())


def test_create_then_idempotent(conn, run):
    first = run(BASE)
    assert first['changed'] is True
    assert first['network']['active'] is True
    assert first['network']['address'] == '192.168.231.1/24'
    net = conn.networkLookupByName('aiclt-net')
    assert net.isActive() and not net.autostart()
    second = run(BASE)
    assert second['changed'] is False, second
    assert second['network']['uuid'] == first['network']['uuid']


def test_check_mode_creates_nothing(conn, run):
    result = run(BASE, check_mode=True, diff=True)
    assert result['changed'] is True
    assert 'aiclt-net' not in net_names(conn)
    assert 'mtu: null' in result['diff']['after']


def test_check_mode_changes_nothing(conn, run):
    run(BASE)
    before = conn.networkLookupByName('aiclt-net').XMLDesc(0)
    result = run(dict(BASE, mtu=9000), check_mode=True, diff=True)
    assert result['changed'] is True and result['changes'] == ['mtu']
    assert '+mtu' not in result['diff']['after'] and 'mtu: 9000' in result['diff']['after']
    assert conn.networkLookupByName('aiclt-net').XMLDesc(0) == before


def test_change_on_active_network_restarts_and_keeps_uuid(conn, run):
    first = run(BASE)
    hosts = [{'mac': '52:54:00:23:10:01', 'ip': '192.168.231.11', 'name': 'aiclt-n1'}]
    result = run(dict(BASE, dhcp_hosts=hosts))
    assert result['changed'] is True
    assert result['restarted'] is True
    assert 'destroyed and started again' in result['msg']
    assert result['network']['uuid'] == first['network']['uuid']
    # The test driver never swaps in the new definition of a running network on destroy
    # (it has no separate persistent XML), so idempotence after a restart is checked on
    # an inactive network below and was checked live on qemu:///system.


def test_change_on_inactive_network_redefines_keeps_uuid_and_starts(conn, run):
    first = run(BASE)
    conn.networkLookupByName('aiclt-net').destroy()
    result = run(dict(BASE, mtu=1400))
    assert result['changed'] is True and result['restarted'] is False
    assert result['msg'] == 'network aiclt-net: redefine, start'
    assert result['network']['uuid'] == first['network']['uuid']
    assert "<mtu size='1400'/>" in result['xml']
    assert run(dict(BASE, mtu=1400))['changed'] is False


def test_bridge_name_kept_when_not_given(conn, run):
    run(BASE)
    args = dict(BASE)
    del args['bridge']
    result = run(args)
    assert result['changed'] is False
    assert result['network']['bridge'] == 'aicltbr0'


def test_l2_network_without_address(conn, run):
    result = run({'name': 'aiclt-trunk', 'uri': URI, 'bridge': 'aiclt-trunk0', 'mtu': 9000})
    assert result['changed'] is True and result['network']['address'] is None
    assert run({'name': 'aiclt-trunk', 'uri': URI, 'bridge': 'aiclt-trunk0', 'mtu': 9000})['changed'] is False


def test_autostart_is_turned_off(conn, run):
    run(BASE)
    conn.networkLookupByName('aiclt-net').setAutostart(1)
    result = run(BASE)
    assert result['changed'] is True and 'autostart off' in result['msg']
    assert not conn.networkLookupByName('aiclt-net').autostart()


def test_absent(conn, run):
    run(BASE)
    assert run({'name': 'aiclt-net', 'uri': URI, 'state': 'absent'}, check_mode=True)['changed'] is True
    assert 'aiclt-net' in net_names(conn)
    assert run({'name': 'aiclt-net', 'uri': URI, 'state': 'absent'})['changed'] is True
    assert 'aiclt-net' not in net_names(conn)
    assert run({'name': 'aiclt-net', 'uri': URI, 'state': 'absent'})['changed'] is False


def test_validation_error_names_field_and_changes_nothing(conn, run):
    hosts = [{'mac': '52:54:00:23:10:01', 'ip': '192.168.231.11'}, {'mac': '52:54:00:23:10:02', 'ip': '10.0.0.300'}]
    result = run(dict(BASE, dhcp_hosts=hosts))
    assert result['failed'] is True
    assert result['msg'] == 'dhcp_hosts[1].ip: 10.0.0.300 is not a valid IPv4 address'
    assert 'aiclt-net' not in net_names(conn)


def test_bridge_of_another_network_refused(conn, run):
    run(BASE)
    result = run(dict(BASE, name='aiclt-net2', address='192.168.232.1/24', dhcp_range=None))
    assert result['failed'] is True
    assert result['msg'] == "bridge: aicltbr0 is already used by network 'aiclt-net'"


def test_overlap_with_active_network_refused(conn, run):
    # The test driver's 'default' network is active on 192.168.122.1/24.
    result = run({'name': 'aiclt-net', 'uri': URI, 'address': '192.168.122.200/25'})
    assert result['failed'] is True
    assert result['msg'] == "address: 192.168.122.200/25 overlaps 192.168.122.1/24 of active network 'default'"
    assert 'aiclt-net' not in net_names(conn)


def test_unreachable_uri_is_named(run, tmp_path):
    uri = 'test://%s/missing.xml' % tmp_path
    result = run({'name': 'aiclt-net', 'uri': uri})
    assert result['failed'] is True
    assert result['msg'].startswith('uri: cannot connect to libvirt at %s' % uri)


def test_missing_libvirt_python(run, monkeypatch):
    monkeypatch.setattr(libvirt_conn, 'libvirt', None)
    monkeypatch.setattr(libvirt_conn, 'LIBVIRT_IMPORT_ERROR', 'ImportError: No module named libvirt')
    result = run(BASE)
    assert result['failed'] is True
    assert 'libvirt-python' in result['msg']
