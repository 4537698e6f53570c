# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure tests of libvirt_xml: validation, XML building, projection of real libvirt output.

The fixtures under tests/unit/fixtures/libvirt are `virsh dumpxml` / `virsh net-dumpxml`
output of objects defined on libvirt 9.0 / QEMU 7.2 (qemu:///system) from XML that
build_*_xml produced, so projecting them checks idempotence against libvirt's real
normalisation (units in KiB, added controllers, PCI addresses, machine type, ...).
"""

import os
import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import libvirt_xml as lx

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'libvirt')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


# ---------------------------------------------------------------------------
# Scalars


@pytest.mark.parametrize('value, expected', [
    ('52:54:00:AB:cd:01', '52:54:00:ab:cd:01'),
    ('52-54-00-ab-cd-01', '52:54:00:ab:cd:01'),
    (' 52:54:00:ab:cd:01 ', '52:54:00:ab:cd:01'),
])
def test_normalize_mac(value, expected):
    assert lx.normalize_mac(value, 'mac') == expected


@pytest.mark.parametrize('value, message', [
    ('52:54:00:ab:cd', "nics[0].mac: '52:54:00:ab:cd' is not a MAC address like 52:54:00:12:34:56"),
    ('52:54:00:ab:cd:zz', "nics[0].mac: '52:54:00:ab:cd:zz' is not a MAC address like 52:54:00:12:34:56"),
    ('01:00:5e:00:00:01', 'nics[0].mac: 01:00:5e:00:00:01 is a multicast address; a NIC needs a unicast one'),
    (None, 'nics[0].mac: None is not a MAC address like 52:54:00:12:34:56'),
    # What YAML 1.1 makes of an unquoted 52:54:00:12:34:56.
    (680461683416, 'quote MAC addresses in YAML'),
])
def test_normalize_mac_rejects(value, message):
    with pytest.raises(lx.SpecError, match=re.escape(message)):
        lx.normalize_mac(value, 'nics[0].mac')


def test_parse_pci_address():
    assert lx.parse_pci_address('0000:01:00.0', 'h') == {'domain': 0, 'bus': 1, 'slot': 0, 'function': 0}
    assert lx.parse_pci_address('0001:af:1f.7', 'h') == {'domain': 1, 'bus': 0xaf, 'slot': 0x1f, 'function': 7}
    assert lx.normalize_pci_address('65:00.1', 'h') == '0000:65:00.1'
    assert lx.normalize_pci_address('0000:AF:00.0', 'h') == '0000:af:00.0'


@pytest.mark.parametrize('value, message', [
    ('0000:01:00', 'hostdevs[0]: 0000:01:00 is not a PCI address like 0000:01:00.0'),
    ('0000:01:00.8', 'hostdevs[0]: 0000:01:00.8 is not a PCI address'),
    ('pci_0000_01_00_0', 'hostdevs[0]: pci_0000_01_00_0 is not a PCI address'),
    ('0000:01:20.0', 'hostdevs[0]: 0000:01:20.0 has slot 0x20; PCI slots go up to 0x1f'),
])
def test_parse_pci_address_rejects(value, message):
    with pytest.raises(lx.SpecError, match=re.escape(message)):
        lx.parse_pci_address(value, 'hostdevs[0]')


def test_normalize_uuid():
    assert lx.normalize_uuid('6695EB01F6A4830479AA97F2502E193F', 'uuid') == '6695eb01-f6a4-8304-79aa-97f2502e193f'
    with pytest.raises(lx.SpecError, match=re.escape('uuid: nope is not a valid UUID')):
        lx.normalize_uuid('nope', 'uuid')


@pytest.mark.parametrize('value, unit, expected', [
    ('65536', 'KiB', 64 * 1024 ** 2),
    ('64', 'MiB', 64 * 1024 ** 2),
    ('1', 'G', 1024 ** 3),
    ('1', 'GB', 1000 ** 3),
    ('512', None, 512 * 1024),
])
def test_scaled_to_bytes(value, unit, expected):
    assert lx.scaled_to_bytes(value, unit) == expected


# ---------------------------------------------------------------------------
# Network validation

NET_OK = {'name': 'lab-mgmt', 'address': '10.0.0.1/24'}


@pytest.mark.parametrize('params, message', [
    ({'name': ''}, 'name: must not be empty'),
    ({'name': 'a/b'}, "name: a/b must not contain '/'"),
    ({'name': 'n', 'bridge': 'a-very-long-bridge'}, 'bridge: a-very-long-bridge must be 1 to 15 characters'),
    ({'name': 'n', 'bridge': 'br/0'}, 'bridge: br/0 is not a valid interface name'),
    ({'name': 'n', 'bridge': 'br 0'}, 'bridge: br 0 is not a valid interface name'),
    ({'name': 'n', 'mtu': 20}, 'mtu: 20 must be between 68 and 65535'),
    ({'name': 'n', 'forward': 'bridge'}, 'forward: bridge is not one of none, nat, route'),
    ({'name': 'n', 'address': '10.0.0.1'}, 'address: 10.0.0.1 needs a prefix length'),
    ({'name': 'n', 'address': '10.0.0.300/24'}, 'address: 10.0.0.300/24 is not a valid IPv4 address in CIDR form'),
    ({'name': 'n', 'address': 'fd00::1/64'}, 'address: fd00::1/64 is not a valid IPv4 address'),
    ({'name': 'n', 'address': '10.0.0.0/24'}, 'address: 10.0.0.0/24 is the network or broadcast address'),
    ({'name': 'n', 'address': '10.0.0.1/31'}, 'address: 10.0.0.1/31 leaves no room for guests'),
    ({'name': 'n', 'forward': 'nat'}, 'forward: nat needs address'),
    ({'name': 'n', 'dhcp_range': {'start': '10.0.0.2', 'end': '10.0.0.9'}}, 'dhcp_range: needs address'),
    (dict(NET_OK, dhcp_range={'start': '10.0.1.2', 'end': '10.0.0.9'}),
     'dhcp_range.start: 10.0.1.2 is outside the subnet 10.0.0.0/24 of address'),
    (dict(NET_OK, dhcp_range={'start': '10.0.0.2', 'end': '10.0.0.255'}),
     'dhcp_range.end: 10.0.0.255 is the network or broadcast address of 10.0.0.0/24'),
    (dict(NET_OK, dhcp_range={'start': '10.0.0.9', 'end': '10.0.0.2'}),
     'dhcp_range: start 10.0.0.9 is after end 10.0.0.2'),
    (dict(NET_OK, dhcp_range={'start': 'ten', 'end': '10.0.0.2'}),
     'dhcp_range.start: ten is not a valid IPv4 address'),
    ({'name': 'n', 'dhcp_hosts': [{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5'}]}, 'dhcp_hosts: needs address'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5'},
                              {'mac': '52:54:00:00:00:02', 'ip': '10.0.0.300'}]),
     'dhcp_hosts[1].ip: 10.0.0.300 is not a valid IPv4 address'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.9.5'}]),
     'dhcp_hosts[0].ip: 10.0.9.5 is outside the subnet 10.0.0.0/24'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.1'}]),
     'dhcp_hosts[0].ip: 10.0.0.1 is the host address of the network'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:0g', 'ip': '10.0.0.5'}]),
     "dhcp_hosts[0].mac: '52:54:00:00:00:0g' is not a MAC address like"),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5'},
                              {'mac': '52:54:00:00:00:01', 'ip': '10.0.0.6'}]),
     'dhcp_hosts[1].mac: 52:54:00:00:00:01 is already used by dhcp_hosts[0]'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5'},
                              {'mac': '52:54:00:00:00:02', 'ip': '10.0.0.5'}]),
     'dhcp_hosts[1].ip: 10.0.0.5 is already used by dhcp_hosts[0]'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5', 'name': 'n1'},
                              {'mac': '52:54:00:00:00:02', 'ip': '10.0.0.6', 'name': 'n1'}]),
     'dhcp_hosts[1].name: n1 is already used by dhcp_hosts[0]'),
    (dict(NET_OK, dhcp_hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5', 'name': 'bad_name'}]),
     'dhcp_hosts[0].name: bad_name is not a valid host name'),
    (dict(NET_OK, dhcp_hosts=[{'ip': '10.0.0.5'}]), 'dhcp_hosts[0].mac: is required'),
])
def test_validate_network_rejects(params, message):
    with pytest.raises(lx.SpecError, match=re.escape(message)):
        lx.validate_network_params(params)


def test_validate_network_normalises():
    spec = lx.validate_network_params(dict(NET_OK, dhcp_hosts=[
        {'mac': '52:54:00:00:00:0B', 'ip': '10.0.0.11', 'name': 'b'},
        {'mac': '52-54-00-00-00-0a', 'ip': '10.0.0.10'},
    ]))
    assert spec['forward'] == 'none'
    assert spec['address'] == '10.0.0.1/24'
    assert spec['dhcp_hosts'] == [
        {'mac': '52:54:00:00:00:0a', 'ip': '10.0.0.10', 'name': None},
        {'mac': '52:54:00:00:00:0b', 'ip': '10.0.0.11', 'name': 'b'},
    ]


def test_l2_network_has_no_ip():
    spec = lx.validate_network_params({'name': 'trunk', 'bridge': 'labbr-trunk'})
    root = ET.fromstring(lx.build_network_xml(spec))
    assert root.find('ip') is None and root.find('forward') is None
    assert root.find('bridge').get('name') == 'labbr-trunk'


# ---------------------------------------------------------------------------
# Network projection against real libvirt output


def _net_spec_like(fixture_xml, params):
    """Spec as the module builds it for an existing network: keeps UUID, bridge and MAC."""
    spec = lx.validate_network_params(params)
    before = lx.project_network(fixture_xml)
    spec['uuid'] = before['uuid']
    spec['mac'] = lx.network_bridge_mac(fixture_xml)
    if spec['bridge'] is None:
        spec['bridge'] = before['bridge']
    return spec


@pytest.mark.parametrize('name, params', [
    ('network-nat-inactive.xml', {'name': 'aiclt-fx-nat', 'address': '192.168.232.1/24', 'forward': 'nat',
                                  'dhcp_range': {'start': '192.168.232.10', 'end': '192.168.232.20'}}),
    ('network-l2-inactive.xml', {'name': 'aiclt-fx-l2', 'bridge': 'aiclt-trunk0', 'mtu': 9000}),
    ('network-isolated-live.xml', {'name': 'aiclt-net', 'address': '192.168.231.1/24'}),
    ('network-dhcp-live.xml', {'name': 'aiclt-net', 'address': '192.168.231.1/24', 'mtu': 1400,
                               'dhcp_range': {'start': '192.168.231.100', 'end': '192.168.231.150'},
                               'dhcp_hosts': [{'mac': '52:54:00:23:10:01', 'ip': '192.168.231.11',
                                               'name': 'aiclt-n1'}]}),
])
def test_real_network_xml_matches_desired(name, params):
    real = fixture(name)
    desired = lx.project_network(lx.build_network_xml(_net_spec_like(real, params)))
    assert lx.project_network(real) == desired


def test_real_network_projection_values():
    proj = lx.project_network(fixture('network-nat-inactive.xml'))
    assert proj['forward'] == 'nat'
    assert proj['bridge'] == 'virbr2'
    assert proj['address'] == '192.168.232.1/24'
    assert proj['dhcp_ranges'] == [{'start': '192.168.232.10', 'end': '192.168.232.20'}]
    assert lx.project_network(fixture('network-l2-inactive.xml'))['address'] is None


def test_network_change_is_detected():
    real = fixture('network-isolated-live.xml')
    spec = _net_spec_like(real, {'name': 'aiclt-net', 'address': '192.168.231.1/24', 'mtu': 1400})
    desired = lx.project_network(lx.build_network_xml(spec))
    assert lx.changed_keys(lx.project_network(real), desired) == ['mtu']


def test_network_projection_reads_prefix_form():
    xml = "<network><name>n</name><ip address='10.1.0.1' prefix='16'/></network>"
    assert lx.project_network(xml)['address'] == '10.1.0.1/16'


# ---------------------------------------------------------------------------
# Domain validation

DOM_OK = {'name': 'lab-node1', 'memory_mib': 256, 'vcpus': 1, 'tb_cache_mib': 64}


@pytest.mark.parametrize('params, message', [
    (dict(DOM_OK, memory_mib=8), 'memory_mib: 8 must be >= 16'),
    (dict(DOM_OK, vcpus=0), 'vcpus: 0 must be between 1 and 4096'),
    (dict(DOM_OK, tb_cache_mib=-1), 'tb_cache_mib: -1 must be >= 0'),
    (dict(DOM_OK, uuid='not-a-uuid'), 'uuid: not-a-uuid is not a valid UUID'),
    (dict(DOM_OK, domain_type='xen'), 'domain_type: xen is not one of auto, qemu, kvm'),
    (dict(DOM_OK, cpu_model='qemu64,+vmx'), 'cpu_model: qemu64,+vmx is not a CPU model name'),
    (dict(DOM_OK, initrd='/boot/initrd'), 'initrd: /boot/initrd needs kernel'),
    (dict(DOM_OK, cmdline='console=ttyS0'), 'cmdline: console=ttyS0 needs kernel'),
    (dict(DOM_OK, kernel='vmlinuz'), 'kernel: vmlinuz is not an absolute path'),
    (dict(DOM_OK, disk={'path': 'node.qcow2'}), 'disk.path: node.qcow2 is not an absolute path'),
    (dict(DOM_OK, disk={'path': '/d/n.qcow2', 'size_gib': 10}),
     'disk.size_gib: 10 only applies when disk.base_image creates the overlay'),
    (dict(DOM_OK, disk={'path': '/d/n.qcow2', 'base_image': '/d/b.qcow2', 'size_gib': 0}),
     'disk.size_gib: 0 must be >= 1'),
    (dict(DOM_OK, disk={'path': '/d/n.img', 'base_image': '/d/b.qcow2', 'format': 'raw'}),
     'disk.format: raw cannot be an overlay of disk.base_image'),
    (dict(DOM_OK, disk={'path': '/d/n.qcow2', 'base_image': '/d/n.qcow2'}),
     'disk.base_image: /d/n.qcow2 is the same file as disk.path'),
    (dict(DOM_OK, cloud_init={'user_data': '#cloud-config'}), 'cloud_init: needs disk.path'),
    (dict(DOM_OK, nics=[{'network': 'a', 'mac': '52:54:00:00:00:01'}, {'network': 'b', 'mac': 'zz'}]),
     "nics[1].mac: 'zz' is not a MAC address like"),
    (dict(DOM_OK, nics=[{'network': 'a', 'mac': '52:54:00:00:00:01'}, {'network': 'b', 'mac': '52:54:00:00:00:01'}]),
     'nics[1].mac: 52:54:00:00:00:01 is already used by nics[0]'),
    (dict(DOM_OK, nics=[{'network': 'a', 'model': 'virtio net'}]), 'nics[0].model: virtio net is not a NIC model'),
    (dict(DOM_OK, nics=[{'mac': '52:54:00:00:00:01'}]), 'nics[0].network: is required'),
    (dict(DOM_OK, hostdevs=['0000:01:00.0', '01:00.0']), 'hostdevs[1]: 01:00.0 is already listed as hostdevs[0]'),
    (dict(DOM_OK, hostdevs=['01.00.0']), 'hostdevs[0]: 01.00.0 is neither a PCI address like 0000:01:00.0 nor'),
    (dict(DOM_OK, hostdevs=['10de:2684', '10DE:2684']), 'hostdevs[1]: 10DE:2684 is already listed as hostdevs[0]'),
    (dict(DOM_OK, machine='virt'), 'machine: virt is not one of pc, q35'),
    (dict(DOM_OK, iommu=True), 'iommu: true needs machine q35, not pc'),
    (dict(DOM_OK, video=['vga', 'ramfb']), 'video[1]: ramfb is not one of vga, virtio'),
    (dict(DOM_OK, serial_log='serial.log'), 'serial_log: serial.log is not an absolute path'),
    (dict(DOM_OK, save_path='x.save'), 'save_path: x.save is not an absolute path'),
    (dict(DOM_OK, shutdown_timeout=-5), 'shutdown_timeout: -5 must be >= 0'),
])
def test_validate_domain_rejects(params, message):
    with pytest.raises(lx.SpecError, match=re.escape(message)):
        lx.validate_domain_params(params)


def test_resolve_cpu_model():
    assert lx.resolve_cpu_model('qemu', None) == 'qemu64'
    assert lx.resolve_cpu_model('kvm', None) == 'host-passthrough'
    assert lx.resolve_cpu_model('kvm', 'host-model') == 'host-model'
    with pytest.raises(lx.SpecError, match=re.escape('cpu_model: host-passthrough needs domain_type kvm')):
        lx.resolve_cpu_model('qemu', 'host-passthrough')


def test_seed_path_is_next_to_disk():
    spec = lx.validate_domain_params(dict(DOM_OK, disk={'path': '/var/lib/libvirt/images/n.qcow2'},
                                          cloud_init={'user_data': '#cloud-config'}))
    assert spec['cdrom'] == '/var/lib/libvirt/images/lab-node1-cidata.iso'


# ---------------------------------------------------------------------------
# Domain XML and projection


def _domain_spec(params, domain_type, arch='x86_64', uuid=None, macs=(), files=()):
    spec = lx.validate_domain_params(params)
    spec['type'] = domain_type
    spec['cpu_model'] = lx.resolve_cpu_model(domain_type, spec['cpu_model'])
    spec['arch'] = arch
    spec['uuid'] = uuid
    for nic, mac in zip(spec['nics'], macs):
        nic['mac'] = nic['mac'] or mac
    spec['files'] = list(files)
    return spec


QEMU_PARAMS = {
    'name': 'aiclt-dom', 'memory_mib': 256, 'vcpus': 1, 'tb_cache_mib': 64,
    'disk': {'path': '/var/lib/libvirt/images/aiclt-dom.qcow2', 'base_image': '/var/lib/libvirt/images/aiclt-base.qcow2',
             'size_gib': 1},
    'nics': [{'network': 'aiclt-net'}],
}
RICH_PARAMS = {
    'name': 'aiclt-fx-rich', 'vcpus': 4, 'memory_mib': 2048, 'tb_cache_mib': 64,
    'kernel': '/var/lib/libvirt/images/aiclt-vmlinuz', 'initrd': '/var/lib/libvirt/images/aiclt-initrd',
    'cmdline': 'console=ttyS0 root=/dev/vda rw',
    'disk': {'path': '/var/lib/libvirt/images/aiclt-fx-rich.qcow2'},
    'cloud_init': {'user_data': '#cloud-config\n'},
    'nics': [{'network': 'aiclt-net', 'mac': '52:54:00:23:10:01'}, {'network': 'aiclt-net', 'model': 'e1000'}],
    'hostdevs': ['0000:00:05.0'],
    'serial_log': '/var/lib/libvirt/images/aiclt-fx-rich.log',
}


def _spec_like(real, params, domain_type):
    before = lx.project_domain(real)
    return _domain_spec(params, domain_type, uuid=before['uuid'],
                        macs=[i['mac'] for i in before['interfaces']], files=before['owner']['files'])


def test_real_qemu_domain_matches_desired():
    real = fixture('domain-qemu-inactive.xml')
    desired = lx.project_domain(lx.build_domain_xml(_spec_like(real, QEMU_PARAMS, 'qemu')))
    proj = lx.project_domain(real)
    assert proj == desired
    # libvirt 9.0 stores <tb-cache unit='MiB'>64</tb-cache> as 65536 KiB.
    assert "<tb-cache unit='KiB'>65536</tb-cache>" in real
    assert proj['tb_cache_mib'] == 64
    assert proj['memory_mib'] == 256
    assert proj['owner'] == {'name': 'aicluster.lab', 'files': [
        {'role': 'overlay', 'path': '/var/lib/libvirt/images/aiclt-dom.qcow2'}]}


def test_real_running_domain_matches_persistent_one():
    running = lx.project_domain(fixture('domain-qemu-running.xml'))
    inactive = lx.project_domain(fixture('domain-qemu-inactive.xml'))
    # The live XML adds backing chains, aliases, a pty path and expanded CPU features; none is projected.
    assert running == inactive


def test_real_rich_kvm_domain_matches_desired():
    real = fixture('domain-kvm-rich-inactive.xml')
    desired = lx.project_domain(lx.build_domain_xml(_spec_like(real, RICH_PARAMS, 'kvm')))
    proj = lx.project_domain(real)
    assert proj == desired
    assert proj['cpu_model'] == 'host-passthrough'
    assert proj['tb_cache_mib'] == 0
    assert proj['hostdevs'] == ['0000:00:05.0']
    assert proj['serial'] == {'type': 'file', 'path': '/var/lib/libvirt/images/aiclt-fx-rich.log'}
    assert [d['device'] for d in proj['disks']] == ['disk', 'cdrom']
    assert proj['disks'][1]['readonly'] is True
    assert [i['model'] for i in proj['interfaces']] == ['virtio', 'e1000']


# Defined on libvirt 9.0 / QEMU 7.2 (this project's build host) from Q35_PARAMS with
# build_domain_xml, read back with `virsh dumpxml --inactive`, then undefined.
Q35_PARAMS = {
    'name': 'aiclt-fx-q35', 'vcpus': 2, 'memory_mib': 1024, 'tb_cache_mib': 64,
    'kernel': '/var/lib/libvirt/images/aiclt-vmlinuz', 'initrd': '/var/lib/libvirt/images/aiclt-initrd',
    'cmdline': 'console=ttyS0 root=/dev/vda rw intel_iommu=on',
    'disk': {'path': '/var/lib/libvirt/images/aiclt-fx-q35.qcow2'},
    'nics': [{'network': 'aiclt-net', 'mac': '52:54:00:23:20:01'}, {'network': 'aiclt-net', 'mac': '52:54:00:23:20:02'}],
    'machine': 'q35', 'iommu': True, 'video': ['vga', 'virtio'],
    'serial_log': '/var/lib/libvirt/images/aiclt-fx-q35.log',
}


def test_real_q35_domain_with_iommu_matches_desired():
    real = fixture('domain-q35-iommu-inactive.xml')
    desired = lx.project_domain(lx.build_domain_xml(_spec_like(real, Q35_PARAMS, 'qemu')))
    proj = lx.project_domain(real)
    assert proj == desired
    # libvirt stores the versioned machine, adds vram and the primary flag to the first display.
    assert "machine='pc-q35-7.2'" in real and proj['machine'] == 'q35'
    assert proj['iommu'] == {'model': 'intel', 'intremap': 'on', 'caching_mode': 'on', 'ioapic': 'qemu'}
    assert proj['video'] == ['vga', 'virtio']


def test_real_q35_domain_puts_the_first_nic_on_the_first_root_port():
    # The guest names NICs in PCI order (net.ifnames=0): the management NIC, listed first,
    # sits on bus 1, ahead of the spare NIC and every other device behind a root port.
    root = ET.fromstring(fixture('domain-q35-iommu-inactive.xml'))
    buses = [int(iface.find('address').get('bus'), 16) for iface in root.findall('devices/interface')]
    others = [int(addr.get('bus'), 16) for addr in root.findall('devices/*/address')
              if addr.get('type') == 'pci' and int(addr.get('bus'), 16) > 0]
    assert buses == [1, 2] and min(others) == 1


def test_plain_pc_domains_stay_unchanged():
    # Domains defined before machine, iommu and video existed project as the default pc.
    proj = lx.project_domain(fixture('domain-qemu-inactive.xml'))
    assert (proj['machine'], proj['iommu'], proj['video']) == ('pc', None, [])


def test_domain_change_is_detected():
    real = fixture('domain-qemu-inactive.xml')
    params = dict(QEMU_PARAMS, memory_mib=512, nics=[{'network': 'aiclt-net', 'model': 'e1000'}])
    desired = lx.project_domain(lx.build_domain_xml(_spec_like(real, params, 'qemu')))
    assert lx.changed_keys(lx.project_domain(real), desired) == ['interfaces', 'memory_mib']


def test_build_domain_xml_shapes():
    spec = _domain_spec(dict(RICH_PARAMS), 'qemu', macs=[None, None])
    root = ET.fromstring(lx.build_domain_xml(spec))
    assert root.get('type') == 'qemu'
    assert root.find('features/tcg/tb-cache').text == '64'
    assert root.find('features/tcg/tb-cache').get('unit') == 'MiB'
    assert root.find('features/acpi') is not None
    assert root.find('os/kernel').text == RICH_PARAMS['kernel']
    assert root.find('os/boot') is None
    assert root.find('cpu/model').text == 'qemu64'
    hostdev = root.find('devices/hostdev')
    assert (hostdev.get('mode'), hostdev.get('type'), hostdev.get('managed')) == ('subsystem', 'pci', 'yes')
    assert hostdev.find('source/address').attrib == {'domain': '0x0000', 'bus': '0x00', 'slot': '0x05',
                                                     'function': '0x0'}
    assert root.find("devices/console[@type='file']/source").get('path') == RICH_PARAMS['serial_log']
    # A NIC without MAC leaves it to libvirt.
    assert root.findall('devices/interface')[1].find('mac') is None


def test_tb_cache_zero_and_kvm_emit_no_tcg():
    # libvirt 9.0 rejects TCG features on kvm domains ("incompatible with domain type 'kvm'").
    kvm = ET.fromstring(lx.build_domain_xml(_domain_spec(dict(DOM_OK), 'kvm')))
    assert kvm.find('features/tcg') is None
    zero = ET.fromstring(lx.build_domain_xml(_domain_spec(dict(DOM_OK, tb_cache_mib=0), 'qemu')))
    assert zero.find('features/tcg') is None


def test_disk_boot_and_pty_serial():
    root = ET.fromstring(lx.build_domain_xml(_domain_spec(dict(DOM_OK), 'qemu')))
    assert root.find('os/boot').get('dev') == 'hd'
    assert root.find('devices/serial').get('type') == 'pty'
    assert lx.project_domain(ET.tostring(root, encoding='unicode'))['serial'] == {'type': 'pty', 'path': None}


# ---------------------------------------------------------------------------
# Owner metadata


def test_owner_metadata_layout():
    spec = _domain_spec(dict(DOM_OK), 'qemu', files=[{'role': 'seed', 'path': '/d/x-cidata.iso', 'digest': 'sha256:ab'}])
    text = lx.build_domain_xml(spec)
    # The namespace is declared on the owner element itself, where libvirt looks for it.
    assert '<lab:owner xmlns:lab="https://aicluster.lab/xmlns/lab/1" name="aicluster.lab">' in text
    assert '<lab:file role="seed" path="/d/x-cidata.iso" digest="sha256:ab" />' in text
    assert lx.read_owner(text) == {'name': 'aicluster.lab', 'files': [
        {'role': 'seed', 'path': '/d/x-cidata.iso', 'digest': 'sha256:ab'}]}


def test_foreign_domain_has_no_owner():
    assert lx.read_owner(fixture('domain-foreign-inactive.xml')) is None
    assert lx.project_domain(fixture('domain-foreign-inactive.xml'))['owner'] is None


def test_merge_files_keeps_recorded_and_replaces_by_path():
    recorded = [{'role': 'overlay', 'path': '/d/a.qcow2'}, {'role': 'seed', 'path': '/d/s.iso', 'digest': 'old'}]
    created = [{'role': 'seed', 'path': '/d/s.iso', 'digest': 'new'}, {'role': 'save', 'path': '/d/a.save'}]
    assert lx.merge_files(recorded, created) == [
        {'role': 'overlay', 'path': '/d/a.qcow2'},
        {'role': 'save', 'path': '/d/a.save'},
        {'role': 'seed', 'path': '/d/s.iso', 'digest': 'new'},
    ]


# ---------------------------------------------------------------------------
# Rendering


def test_render_is_readable_yaml_like():
    text = lx.render({'name': 'n', 'mtu': None, 'hosts': [{'ip': '10.0.0.5', 'mac': 'm'}], 'ranges': [],
                      'ok': True})
    assert text == ('hosts:\n'
                    '  - ip: 10.0.0.5\n'
                    '    mac: m\n'
                    'mtu: null\n'
                    'name: n\n'
                    'ok: true\n'
                    'ranges: []\n')


def test_changed_keys():
    assert lx.changed_keys({'a': 1, 'b': 2}, {'a': 1, 'b': 3}) == ['b']
    assert lx.changed_keys(None, {'a': 1}) == ['a']
