# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_link against libvirt's in-process test driver (real libvirt code, no daemon).

The test driver (libvirt 9) does not implement virDomainUpdateDeviceFlags, so the
``live_links`` fixture stands in for that one call: it checks what the module passes
(one <interface> of the domain, VIR_DOMAIN_AFFECT_LIVE only) and the domain's live XML
then shows the new <link state>, as QEMU domains do. Everything else is the test driver.
"""

import time
import xml.etree.ElementTree as ET

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.aicluster.lab.plugins.modules import libvirt_link  # noqa: E402

URI = 'test:///default'
OWNER = 'aicluster.lab/aiclt'
MACS = ('52:54:00:23:20:01', '52:54:00:23:20:02', '52:54:00:23:20:03')
# The test driver's own running domain 'test' has one NIC with this MAC and no owner metadata.
TEST_DOMAIN_MAC = 'aa:bb:cc:dd:ee:ff'

DOMAIN_XML = '''
<domain type='test'>
  <name>%(name)s</name>
  <memory unit='MiB'>64</memory>
  <os><type>hvm</type></os>
  %(metadata)s
  <devices>
    <interface type='network'>
      <mac address='%(mac0)s'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='%(mac1)s'/>
      <source bridge='aicltbr1'/>
      <target dev='aiclt-tap1'/>
      <model type='virtio'/>
      <link state='down'/>
    </interface>
    <interface type='network'>
      <mac address='%(mac2)s'/>
      <source network='default'/>
      <link state='up'/>
    </interface>
  </devices>
</domain>
'''


def define(conn, name='aiclt-dom', owner=OWNER, start=True):
    metadata = ''
    if owner:
        metadata = ('<metadata><lab:owner xmlns:lab="https://aicluster.lab/xmlns/lab/1" name="%s"/></metadata>'
                    % owner)
    dom = conn.defineXML(DOMAIN_XML % dict(name=name, metadata=metadata,
                                           mac0=MACS[0], mac1=MACS[1], mac2=MACS[2]))
    if start:
        dom.create()
    return dom


@pytest.fixture
def conn():
    # test:///default resets when its last connection closes; holding one keeps
    # state across the module runs of one test and gives each test a fresh driver.
    handle = libvirt.open(URI)
    yield handle
    handle.close()


@pytest.fixture
def live_links(monkeypatch):
    """Stand-in for virDomainUpdateDeviceFlags; returns the list of calls made."""
    states = {}
    calls = []
    real_xmldesc = libvirt.virDomain.XMLDesc

    def update_device_flags(self, xml, flags=0):
        iface = ET.fromstring(xml)
        assert iface.tag == 'interface'
        assert flags == libvirt.VIR_DOMAIN_AFFECT_LIVE
        assert self.isActive()
        mac = iface.find('mac').get('address')
        live = [i for i in ET.fromstring(real_xmldesc(self, 0)).findall('devices/interface')
                if i.find('mac').get('address') == mac]
        assert len(live) == 1 and live[0].get('type') == iface.get('type')
        states[(self.name(), mac)] = iface.find('link').get('state')
        calls.append({'domain': self.name(), 'mac': mac, 'xml': xml, 'flags': flags, 'time': time.time()})
        return 0

    def xml_desc(self, flags=0):
        text = real_xmldesc(self, flags)
        if flags & libvirt.VIR_DOMAIN_XML_INACTIVE:
            return text
        root = ET.fromstring(text)
        for iface in root.findall('devices/interface'):
            state = states.get((self.name(), iface.find('mac').get('address')))
            if state:
                link = iface.find('link')
                if link is None:
                    link = ET.SubElement(iface, 'link')
                link.set('state', state)
        return ET.tostring(root, encoding='unicode')

    monkeypatch.setattr(libvirt.virDomain, 'updateDeviceFlags', update_device_flags)
    monkeypatch.setattr(libvirt.virDomain, 'XMLDesc', xml_desc)
    return calls


@pytest.fixture
def run(run_module):
    def _run(args, **kwargs):
        return run_module(libvirt_link, dict({'uri': URI}, **args), **kwargs)
    return _run


def live_link(conn, name, mac):
    for iface in ET.fromstring(conn.lookupByName(name).XMLDesc(0)).findall('devices/interface'):
        if iface.find('mac').get('address') == mac:
            link = iface.find('link')
            return link.get('state') if link is not None else 'up'
    raise AssertionError(mac)


def test_down_then_idempotent_then_up(conn, live_links, run):
    define(conn)
    before = time.time()
    down = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down'})
    assert down['changed'] is True, down
    assert (down['previous'], down['state']) == ('up', 'down')
    assert live_link(conn, 'aiclt-dom', MACS[0]) == 'down'
    assert before <= live_links[0]['time'] <= down['time'] <= time.time()
    assert down['interface'] == {'mac': MACS[0], 'type': 'network', 'target': 'testnet0', 'network': 'default',
                                 'bridge': None, 'model': 'virtio'}
    # The other interfaces keep their state.
    assert live_link(conn, 'aiclt-dom', MACS[1]) == 'down'
    assert live_link(conn, 'aiclt-dom', MACS[2]) == 'up'

    again = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down'})
    assert again['changed'] is False
    assert (again['previous'], again['state']) == ('down', 'down')
    assert len(live_links) == 1

    up = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'up'})
    assert up['changed'] is True and up['previous'] == 'down'
    assert live_link(conn, 'aiclt-dom', MACS[0]) == 'up'
    assert ET.fromstring(live_links[1]['xml']).find('link').get('state') == 'up'
    # The persistent definition is never touched.
    persistent = ET.fromstring(conn.lookupByName('aiclt-dom').XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert persistent.find('devices/interface').find('link') is None


def test_link_without_element_is_up_and_explicit_states_are_read(conn, live_links, run):
    define(conn)
    assert run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'up'})['changed'] is False
    assert run({'name': 'aiclt-dom', 'mac': MACS[2], 'state': 'up'})['changed'] is False
    result = run({'name': 'aiclt-dom', 'mac': MACS[1].upper(), 'state': 'down'})
    assert result['changed'] is False and result['previous'] == 'down'
    assert result['interface'] == {'mac': MACS[1], 'type': 'bridge', 'target': 'aiclt-tap1', 'network': None,
                                   'bridge': 'aicltbr1', 'model': 'virtio'}
    assert live_links == []


def test_existing_link_element_is_rewritten_not_duplicated(conn, live_links, run):
    define(conn)
    assert run({'name': 'aiclt-dom', 'mac': MACS[1], 'state': 'up'})['changed'] is True
    sent = ET.fromstring(live_links[0]['xml'])
    assert [link.get('state') for link in sent.findall('link')] == ['up']
    assert sent.find('target').get('dev') == 'aiclt-tap1'


def test_check_mode_and_diff_change_nothing(conn, live_links, run):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down'}, check_mode=True, diff=True)
    assert result['changed'] is True
    assert (result['previous'], result['state']) == ('up', 'down')
    assert result['diff']['before'] == 'link: up\n' and result['diff']['after'] == 'link: down\n'
    assert MACS[0] in result['diff']['before_header']
    assert live_links == []
    assert live_link(conn, 'aiclt-dom', MACS[0]) == 'up'


def test_owner_checked_only_when_given(conn, live_links, run):
    define(conn)
    define(conn, name='aiclt-other', owner='someone-else')
    assert run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down', 'owner': OWNER})['changed'] is True

    other = run({'name': 'aiclt-other', 'mac': MACS[0], 'state': 'down', 'owner': OWNER})
    assert other['failed'] is True
    assert other['msg'] == ("name: domain 'aiclt-other' is not owned by %s (owner 'someone-else'); "
                            "its links are left alone" % OWNER)
    foreign = run({'name': 'test', 'mac': TEST_DOMAIN_MAC, 'state': 'down', 'owner': OWNER})
    assert foreign['failed'] is True and '(no owner metadata)' in foreign['msg']
    assert len(live_links) == 1

    # Without owner, any running domain.
    assert run({'name': 'test', 'mac': TEST_DOMAIN_MAC, 'state': 'down'})['changed'] is True
    assert live_link(conn, 'test', TEST_DOMAIN_MAC) == 'down'


def test_unknown_domain(conn, live_links, run):
    result = run({'name': 'aiclt-missing', 'mac': MACS[0], 'state': 'down'})
    assert result['failed'] is True
    assert result['msg'] == "name: no domain 'aiclt-missing' on %s" % URI


def test_domain_not_running(conn, live_links, run):
    define(conn, start=False)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down'})
    assert result['failed'] is True
    assert result['msg'].startswith("name: domain 'aiclt-dom' is not running")
    assert live_links == []


def test_unknown_mac_lists_the_domains_macs(conn, live_links, run):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': '52:54:00:23:20:99', 'state': 'down'})
    assert result['failed'] is True
    assert result['msg'] == ("mac: domain 'aiclt-dom' has no interface with MAC 52:54:00:23:20:99 "
                             "(its MACs: %s)" % ', '.join(MACS))


@pytest.mark.parametrize('mac, message', [
    ('52:54:00:23:20', "mac: '52:54:00:23:20' is not a MAC address like 52:54:00:12:34:56"),
    ('01:00:5e:00:00:01', 'mac: 01:00:5e:00:00:01 is a multicast address'),
])
def test_bad_mac_fails_before_connecting(run, mac, message):
    result = run({'name': 'aiclt-dom', 'mac': mac, 'state': 'down', 'uri': 'aiclt:///nowhere'})
    assert result['failed'] is True
    assert result['msg'].startswith(message)


def test_bad_uri_names_it(run):
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down', 'uri': 'aiclt:///nowhere'})
    assert result['failed'] is True
    assert result['msg'].startswith('uri: cannot connect to libvirt at aiclt:///nowhere')


def test_libvirt_refusal_is_reported(conn, run):
    # Without the stand-in the test driver itself refuses, as an old hypervisor driver would.
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down'})
    assert result['failed'] is True
    assert result['msg'].startswith("name: domain 'aiclt-dom': libvirt error setting the link of MAC %s down on %s: "
                                    % (MACS[0], URI))
    assert 'virDomainUpdateDeviceFlags' in result['msg']


def test_state_not_taken_is_an_error(conn, live_links, run, monkeypatch):
    define(conn)
    monkeypatch.setattr(libvirt.virDomain, 'updateDeviceFlags', lambda self, xml, flags=0: 0)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down'})
    assert result['failed'] is True
    assert 'but the live XML says up' in result['msg']


def test_restore_after_s_pulls_the_cable_and_plugs_it_back(conn, live_links, run):
    define(conn)
    pulse = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down', 'restore_after_s': 0.3})
    assert pulse['changed'] is True and (pulse['previous'], pulse['state']) == ('up', 'down')
    assert [ET.fromstring(call['xml']).find('link').get('state') for call in live_links] == ['down', 'up']
    assert live_links[0]['time'] <= pulse['time'] < live_links[1]['time'] <= pulse['restored_time']
    assert pulse['restored_time'] - pulse['time'] >= 0.3
    assert live_link(conn, 'aiclt-dom', MACS[0]) == 'up'

    # A link already in the state asked for is neither changed nor held.
    held = run({'name': 'aiclt-dom', 'mac': MACS[1], 'state': 'down', 'restore_after_s': 5})
    assert held['changed'] is False and 'restored_time' not in held
    assert len(live_links) == 2


def test_restore_after_s_in_check_mode_changes_nothing(conn, live_links, run):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down', 'restore_after_s': 5}, check_mode=True)
    assert result['changed'] is True and 'restored_time' not in result
    assert live_links == []


@pytest.mark.parametrize('hold', [0, -1.5, float('inf')])
def test_restore_after_s_must_be_positive(conn, live_links, run, hold):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down', 'restore_after_s': hold})
    assert result['failed'] is True
    assert result['msg'] == 'restore_after_s: %r must be a number of seconds greater than 0' % float(hold)
    assert live_links == []


class FakeClock:
    """A monotonic clock that sleep() moves, and a packet counter that grows with it."""

    def __init__(self, rates):
        self.now, self.count, self.rates = 0.0, 1000, list(rates)

    def clock(self):
        return self.now

    def sleep(self, seconds):
        rate = self.rates.pop(0) if self.rates else 0
        self.now += seconds
        self.count += int(rate * seconds)

    def packets(self):
        return self.count


def test_wait_for_traffic_returns_once_a_window_reaches_the_rate():
    fake = FakeClock([2, 6, 150, 210])  # ARP-like trickle, then a probe's ping (about 200/s)
    seen = libvirt_link.wait_for_traffic(fake.packets, 100, 60, clock=fake.clock, sleep=fake.sleep)
    assert seen['pps'] == 150.0 and seen['waited_s'] == 1.5


def test_wait_for_traffic_gives_up_after_its_timeout():
    fake = FakeClock([4] * 100)
    assert libvirt_link.wait_for_traffic(fake.packets, 100, 3, clock=fake.clock, sleep=fake.sleep) is None
    assert fake.now == 3.0


@pytest.fixture
def traffic(monkeypatch):
    """interfaceStats of the test driver's domains: a counter that grows by ``rate[0]`` packets a second."""
    rate, started, asked = [0], time.monotonic(), []

    def interface_stats(self, device):
        asked.append(device)
        packets = int(rate[0] * (time.monotonic() - started))
        return (packets * 100, packets, 0, 0, packets * 100, packets, 0, 0)

    monkeypatch.setattr(libvirt.virDomain, 'interfaceStats', interface_stats)
    return rate, asked


def test_after_traffic_pps_waits_for_the_traffic_then_the_lead_then_changes(conn, live_links, run, traffic):
    define(conn)
    traffic[0][0] = 400
    started = time.time()
    result = run({'name': 'aiclt-dom', 'mac': MACS[1], 'state': 'up', 'after_traffic_pps': 100, 'lead_s': 0.2})
    assert result['changed'] is True and traffic[1][0] == 'aiclt-tap1'
    assert result['traffic']['pps'] >= 100 and started < result['traffic']['time']
    assert result['time'] - result['traffic']['time'] >= 0.2
    assert live_link(conn, 'aiclt-dom', MACS[1]) == 'up'


def test_after_traffic_pps_without_the_traffic_changes_nothing(conn, live_links, run, traffic):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[1], 'state': 'up', 'after_traffic_pps': 100, 'traffic_wait_s': 0.6})
    assert result['failed'] is True and live_links == []
    assert result['msg'] == ("after_traffic_pps: interface %s (aiclt-tap1) of domain 'aiclt-dom' did not carry 100 "
                             "packets a second within 0.6 s; the link was left down" % MACS[1])


def test_after_traffic_pps_needs_a_target_device(conn, live_links, run, traffic, monkeypatch):
    # The test driver gives every running NIC a target; a NIC of another type may have none.
    original = libvirt_link.interface_info
    monkeypatch.setattr(libvirt_link, 'interface_info', lambda iface: dict(original(iface), target=None))
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[0], 'state': 'down', 'after_traffic_pps': 100, 'traffic_wait_s': 1})
    assert result['failed'] is True and live_links == [] and traffic[1] == []
    assert "has no target device whose traffic libvirt could count" in result['msg']


def test_after_traffic_pps_in_check_mode_waits_for_nothing(conn, live_links, run, traffic):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[1], 'state': 'up', 'after_traffic_pps': 100}, check_mode=True)
    assert result['changed'] is True and 'traffic' not in result and traffic[1] == [] and live_links == []


@pytest.mark.parametrize('option, value', [('after_traffic_pps', 0), ('traffic_wait_s', -1), ('lead_s', float('inf'))])
def test_traffic_options_are_checked(conn, live_links, run, option, value):
    define(conn)
    result = run({'name': 'aiclt-dom', 'mac': MACS[1], 'state': 'up', 'after_traffic_pps': 10, option: value})
    assert result['failed'] is True and result['msg'].startswith('%s: ' % option) and live_links == []
