# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for the libvirt modules: validate specs, build XML, project XML.

Nothing here imports libvirt or touches the host, so every function can be
unit-tested on plain strings.

Idempotence works on *projections*: a projection is a small dict that keeps only
what a module's options control. The desired XML and libvirt's normalised XML
(which adds UUIDs, PCI addresses, controllers, defaults, unit conversions) are
both projected and the two dicts compared.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.mac import unicast_mac
from ansible_collections.aicluster.lab.plugins.module_utils.names import IFNAMSIZ, host_name, interface_name

LAB_NS = 'https://aicluster.lab/xmlns/lab/1'
LAB_PREFIX = 'lab'

FORWARD_MODES = ('none', 'nat', 'route')
DOMAIN_TYPES = ('auto', 'qemu', 'kvm')
CPU_MODES = ('host-passthrough', 'host-model')
FILE_ROLES = ('overlay', 'seed', 'save')
MACHINES = ('pc', 'q35')
# libvirt's video models that QEMU offers as a PCI display device: vga is QEMU's std VGA
# (1234:1111, class 0x030000); virtio is virtio-vga when it comes first and virtio-gpu-pci
# (1af4:1050, class 0x038000) after another one (measured on a q35 lab node, issue #13).
VIDEO_MODELS = ('vga', 'virtio', 'bochs', 'qxl', 'cirrus')

_PCI_RE = re.compile(r'^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$')
_PCI_ID_RE = re.compile(r'^([0-9a-f]{4}):([0-9a-f]{4})$')
_UUID_RE = re.compile(r'^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$')
_MODEL_RE = re.compile(r'^[A-Za-z0-9_.-]+$')

_UNIT_FACTORS = {
    'b': 1, 'bytes': 1,
    'kb': 1000, 'k': 1024, 'kib': 1024,
    'mb': 1000 ** 2, 'm': 1024 ** 2, 'mib': 1024 ** 2,
    'gb': 1000 ** 3, 'g': 1024 ** 3, 'gib': 1024 ** 3,
    'tb': 1000 ** 4, 't': 1024 ** 4, 'tib': 1024 ** 4,
}


class SpecError(InputError):
    """Bad user input. The message names the option and the offending value."""


# ---------------------------------------------------------------------------
# Scalar parsing


def normalize_mac(value, field):
    """Return ``value`` as a lower-case colon-separated unicast MAC (the collection's one rule, module_utils/mac.py)."""
    try:
        return unicast_mac(value)
    except ValueError as exc:
        raise SpecError('%s: %s' % (field, exc)) from None


def parse_pci_address(value, field):
    """Parse ``0000:01:00.0`` (or ``01:00.0``) into a dict of ints.

    Returns ``{'domain', 'bus', 'slot', 'function'}``.
    """
    text = str(value).strip().lower()
    match = _PCI_RE.match(text)
    if not match:
        raise SpecError('%s: %s is not a PCI address like 0000:01:00.0' % (field, value))
    domain, bus, slot, function = match.groups()
    parsed = {
        'domain': int(domain or '0000', 16),
        'bus': int(bus, 16),
        'slot': int(slot, 16),
        'function': int(function, 16),
    }
    if parsed['slot'] > 0x1f:
        raise SpecError('%s: %s has slot 0x%02x; PCI slots go up to 0x1f' % (field, value, parsed['slot']))
    return parsed


def format_pci_address(parsed):
    return '%04x:%02x:%02x.%x' % (parsed['domain'], parsed['bus'], parsed['slot'], parsed['function'])


def normalize_pci_address(value, field):
    return format_pci_address(parse_pci_address(value, field))


def parse_hostdev(value, field):
    """A hostdevs entry: a PCI address (normalised) or a vendor:device id like ``10de:2684``.

    Returns ``('address', '0000:01:00.0')`` or ``('id', '10de:2684')``; an id is resolved to the
    devices that carry it on the host (sysfs), which only the module can read.
    """
    text = str(value).strip().lower()
    if _PCI_ID_RE.match(text):
        return 'id', text
    try:
        return 'address', normalize_pci_address(text, field)
    except SpecError:
        raise SpecError('%s: %s is neither a PCI address like 0000:01:00.0 nor a vendor:device id like 10de:2684'
                        % (field, value)) from None


def machine_family(machine):
    """``q35`` or ``pc`` for libvirt's versioned machine names (``pc-q35-7.2``, ``pc-i440fx-7.2``)."""
    if not machine:
        return None
    if machine == 'q35' or 'q35' in machine:
        return 'q35'
    if machine == 'pc' or machine.startswith('pc-i440fx') or machine.startswith('pc-'):
        return 'pc'
    return machine


def normalize_uuid(value, field):
    text = str(value).strip().lower()
    if not _UUID_RE.match(text):
        raise SpecError('%s: %s is not a valid UUID' % (field, value))
    text = text.replace('-', '')
    return '%s-%s-%s-%s-%s' % (text[:8], text[8:12], text[12:16], text[16:20], text[20:])


def parse_ipv4(value, field):
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise SpecError('%s: %s is not a valid IPv4 address' % (field, value))


def scaled_to_bytes(value, unit, default_unit='KiB'):
    """Convert a libvirt scaled integer (``<memory unit='KiB'>``) to bytes."""
    unit = (unit or default_unit).lower()
    if unit not in _UNIT_FACTORS:
        raise ValueError('unknown libvirt unit %r' % unit)
    return int(value) * _UNIT_FACTORS[unit]


def _scaled_mib(elem, default_unit='KiB'):
    if elem is None or elem.text is None:
        return None
    return scaled_to_bytes(elem.text.strip(), elem.get('unit'), default_unit) // (1024 ** 2)


def _check_name(value, field='name'):
    if not value or not str(value).strip():
        raise SpecError('%s: must not be empty' % field)
    if '/' in value:
        raise SpecError("%s: %s must not contain '/'" % (field, value))
    return value


def _require_int(value, field, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError('%s: %s is not an integer' % (field, value))
    if value < minimum or (maximum is not None and value > maximum):
        if maximum is None:
            raise SpecError('%s: %s must be >= %s' % (field, value, minimum))
        raise SpecError('%s: %s must be between %s and %s' % (field, value, minimum, maximum))
    return value


def _require_abs_path(value, field):
    if not isinstance(value, str) or not value.startswith('/'):
        raise SpecError('%s: %s is not an absolute path' % (field, value))
    return value


# ---------------------------------------------------------------------------
# Networks


def validate_network_params(params):
    """Check and normalise the libvirt_network options into a network spec.

    The spec keys are those of :func:`project_network` plus ``mac`` (bridge MAC
    kept from an existing definition).
    """
    name = _check_name(params.get('name'))
    spec = {
        'name': name,
        'uuid': None,
        'forward': params.get('forward') or 'none',
        'bridge': None,
        'mac': None,
        'mtu': None,
        'address': None,
        'dhcp_ranges': [],
        'dhcp_hosts': [],
    }
    if spec['forward'] not in FORWARD_MODES:
        raise SpecError('forward: %s is not one of %s' % (spec['forward'], ', '.join(FORWARD_MODES)))

    bridge = params.get('bridge')
    if bridge is not None:
        try:
            interface_name(bridge)
        except ValueError:
            if bridge and len(bridge) <= IFNAMSIZ:
                raise SpecError("bridge: %s is not a valid interface name (no '/', ':' or whitespace)" % bridge) from None
            raise SpecError('bridge: %s must be 1 to %d characters (Linux interface name limit)'
                            % (bridge, IFNAMSIZ)) from None
        spec['bridge'] = bridge

    if params.get('mtu') is not None:
        spec['mtu'] = _require_int(params['mtu'], 'mtu', 68, 65535)

    address = params.get('address')
    iface = None
    if address is not None:
        text = str(address).strip()
        if '/' not in text:
            raise SpecError('address: %s needs a prefix length, e.g. 192.168.150.1/24' % address)
        try:
            iface = ipaddress.IPv4Interface(text)
        except ValueError:
            raise SpecError('address: %s is not a valid IPv4 address in CIDR form' % address)
        net = iface.network
        if net.prefixlen > 30:
            raise SpecError('address: %s leaves no room for guests (prefix must be /30 or shorter)' % address)
        if iface.ip in (net.network_address, net.broadcast_address):
            raise SpecError('address: %s is the network or broadcast address of %s, not a host address'
                            % (address, net))
        spec['address'] = str(iface)

    if spec['forward'] != 'none' and iface is None:
        raise SpecError('forward: %s needs address (the host side of the routed/NATed subnet)' % spec['forward'])

    dhcp_range = params.get('dhcp_range')
    if dhcp_range:
        if iface is None:
            raise SpecError('dhcp_range: needs address (DHCP serves the subnet of address)')
        start = _host_in_subnet(dhcp_range.get('start'), 'dhcp_range.start', iface)
        end = _host_in_subnet(dhcp_range.get('end'), 'dhcp_range.end', iface)
        if int(start) > int(end):
            raise SpecError('dhcp_range: start %s is after end %s' % (start, end))
        spec['dhcp_ranges'] = [{'start': str(start), 'end': str(end)}]

    hosts = params.get('dhcp_hosts') or []
    if hosts and iface is None:
        raise SpecError('dhcp_hosts: needs address (DHCP serves the subnet of address)')
    seen_mac = {}
    seen_ip = {}
    seen_name = {}
    for index, host in enumerate(hosts):
        field = 'dhcp_hosts[%d]' % index
        if not isinstance(host, dict):
            raise SpecError('%s: %s is not a dict with mac, ip and name' % (field, host))
        if not host.get('mac'):
            raise SpecError('%s.mac: is required' % field)
        if not host.get('ip'):
            raise SpecError('%s.ip: is required' % field)
        mac = normalize_mac(host['mac'], field + '.mac')
        ip = _host_in_subnet(host['ip'], field + '.ip', iface)
        if ip == iface.ip:
            raise SpecError('%s.ip: %s is the host address of the network' % (field, ip))
        name = host.get('name')
        if name is not None:
            name = str(name)
            try:
                host_name(name)
            except ValueError:
                raise SpecError('%s.name: %s is not a valid host name' % (field, name)) from None
        if mac in seen_mac:
            raise SpecError('%s.mac: %s is already used by dhcp_hosts[%d]' % (field, mac, seen_mac[mac]))
        if str(ip) in seen_ip:
            raise SpecError('%s.ip: %s is already used by dhcp_hosts[%d]' % (field, ip, seen_ip[str(ip)]))
        if name is not None and name in seen_name:
            raise SpecError('%s.name: %s is already used by dhcp_hosts[%d]' % (field, name, seen_name[name]))
        seen_mac[mac] = index
        seen_ip[str(ip)] = index
        if name is not None:
            seen_name[name] = index
        spec['dhcp_hosts'].append({'mac': mac, 'ip': str(ip), 'name': name})
    spec['dhcp_hosts'] = _sorted_hosts(spec['dhcp_hosts'])
    return spec


def _host_in_subnet(value, field, iface):
    ip = parse_ipv4(value, field)
    net = iface.network
    if ip not in net:
        raise SpecError('%s: %s is outside the subnet %s of address' % (field, value, net))
    if ip in (net.network_address, net.broadcast_address):
        raise SpecError('%s: %s is the network or broadcast address of %s' % (field, value, net))
    return ip


def _sorted_hosts(hosts):
    # dnsmasq does not care about order, so neither does the comparison.
    return sorted(hosts, key=lambda h: int(ipaddress.IPv4Address(h['ip'])) if h.get('ip') else -1)


def build_network_xml(spec):
    """Render a network spec (see :func:`validate_network_params`) as XML."""
    root = ET.Element('network')
    ET.SubElement(root, 'name').text = spec['name']
    if spec.get('uuid'):
        ET.SubElement(root, 'uuid').text = spec['uuid']
    if spec.get('forward', 'none') != 'none':
        ET.SubElement(root, 'forward', mode=spec['forward'])
    if spec.get('bridge'):
        ET.SubElement(root, 'bridge', name=spec['bridge'])
    if spec.get('mtu'):
        ET.SubElement(root, 'mtu', size=str(spec['mtu']))
    if spec.get('mac'):
        ET.SubElement(root, 'mac', address=spec['mac'])
    if spec.get('address'):
        iface = ipaddress.IPv4Interface(spec['address'])
        ip_elem = ET.SubElement(root, 'ip', address=str(iface.ip), netmask=str(iface.netmask))
        if spec.get('dhcp_ranges') or spec.get('dhcp_hosts'):
            dhcp = ET.SubElement(ip_elem, 'dhcp')
            for rng in spec.get('dhcp_ranges') or []:
                ET.SubElement(dhcp, 'range', start=rng['start'], end=rng['end'])
            for host in spec.get('dhcp_hosts') or []:
                attrs = {'mac': host['mac'], 'ip': host['ip']}
                if host.get('name'):
                    attrs['name'] = host['name']
                ET.SubElement(dhcp, 'host', attrs)
    return _tostring(root)


def project_network(xml_text):
    """Project network XML onto the dict that libvirt_network compares."""
    root = ET.fromstring(xml_text)
    forward = root.find('forward')
    bridge = root.find('bridge')
    mtu = root.find('mtu')
    proj = {
        'name': root.findtext('name'),
        'uuid': root.findtext('uuid'),
        'forward': forward.get('mode', 'nat') if forward is not None else 'none',
        'bridge': bridge.get('name') if bridge is not None else None,
        'mtu': int(mtu.get('size')) if mtu is not None and mtu.get('size') else None,
        'address': None,
        'dhcp_ranges': [],
        'dhcp_hosts': [],
    }
    for ip_elem in root.findall('ip'):
        if ip_elem.get('family', 'ipv4') != 'ipv4':
            continue
        addr = ip_elem.get('address')
        if ip_elem.get('prefix'):
            iface = ipaddress.IPv4Interface('%s/%s' % (addr, ip_elem.get('prefix')))
        elif ip_elem.get('netmask'):
            iface = ipaddress.IPv4Interface('%s/%s' % (addr, ip_elem.get('netmask')))
        else:
            # libvirt derives the prefix from the address class when both are missing.
            iface = ipaddress.IPv4Interface(addr)
        proj['address'] = str(iface)
        for rng in ip_elem.findall('dhcp/range'):
            proj['dhcp_ranges'].append({'start': rng.get('start'), 'end': rng.get('end')})
        for host in ip_elem.findall('dhcp/host'):
            mac = host.get('mac')
            proj['dhcp_hosts'].append({
                'mac': mac.lower() if mac else None,
                'ip': host.get('ip'),
                'name': host.get('name'),
            })
        proj['dhcp_hosts'] = _sorted_hosts(proj['dhcp_hosts'])
        break
    return proj


def network_bridge_mac(xml_text):
    mac = ET.fromstring(xml_text).find('mac')
    return mac.get('address') if mac is not None else None


# ---------------------------------------------------------------------------
# Domains


def validate_domain_params(params):
    """Check the host-independent libvirt_domain options.

    Returns a partial domain spec; the module fills in what needs the host
    (domain type, arch, MACs kept from the old definition, owner files).
    """
    name = _check_name(params.get('name'))
    spec = {
        'name': name,
        'uuid': normalize_uuid(params['uuid'], 'uuid') if params.get('uuid') else None,
        'type': params.get('domain_type') or 'auto',
        'arch': None,
        'memory_mib': _require_int(params.get('memory_mib', 1024), 'memory_mib', 16),
        'vcpus': _require_int(params.get('vcpus', 1), 'vcpus', 1, 4096),
        'cpu_model': params.get('cpu_model') or None,
        'tb_cache_mib': _require_int(params.get('tb_cache_mib', 64), 'tb_cache_mib', 0),
        'kernel': None,
        'initrd': None,
        'cmdline': None,
        'disk': None,
        'cdrom': None,
        'nics': [],
        'hostdevs': [],
        'machine': params.get('machine') or 'pc',
        'iommu': bool(params.get('iommu')),
        'video': [],
        'serial_log': None,
        'owner': params.get('owner') or 'aicluster.lab',
        'files': [],
    }
    if spec['type'] not in DOMAIN_TYPES:
        raise SpecError('domain_type: %s is not one of %s' % (spec['type'], ', '.join(DOMAIN_TYPES)))
    if spec['cpu_model'] is not None and not _MODEL_RE.match(spec['cpu_model']):
        raise SpecError('cpu_model: %s is not a CPU model name' % spec['cpu_model'])

    if params.get('kernel'):
        spec['kernel'] = _require_abs_path(params['kernel'], 'kernel')
    for key in ('initrd', 'cmdline'):
        if params.get(key) and not spec['kernel']:
            raise SpecError('%s: %s needs kernel (direct kernel boot)' % (key, params[key]))
    if params.get('initrd'):
        spec['initrd'] = _require_abs_path(params['initrd'], 'initrd')
    if params.get('cmdline'):
        spec['cmdline'] = params['cmdline']

    disk = params.get('disk')
    if disk:
        if not disk.get('path'):
            raise SpecError('disk.path: is required when disk is given')
        spec['disk'] = {
            'path': _require_abs_path(disk['path'], 'disk.path'),
            'format': disk.get('format') or 'qcow2',
            'base_image': None,
            'size_gib': None,
        }
        if spec['disk']['format'] not in ('qcow2', 'raw'):
            raise SpecError('disk.format: %s is not one of qcow2, raw' % spec['disk']['format'])
        if disk.get('base_image'):
            spec['disk']['base_image'] = _require_abs_path(disk['base_image'], 'disk.base_image')
            if spec['disk']['format'] != 'qcow2':
                raise SpecError('disk.format: %s cannot be an overlay of disk.base_image; use qcow2'
                                % spec['disk']['format'])
            if spec['disk']['base_image'] == spec['disk']['path']:
                raise SpecError('disk.base_image: %s is the same file as disk.path' % disk['base_image'])
        if disk.get('size_gib') is not None:
            if not spec['disk']['base_image']:
                raise SpecError('disk.size_gib: %s only applies when disk.base_image creates the overlay'
                                % disk['size_gib'])
            spec['disk']['size_gib'] = _require_int(disk['size_gib'], 'disk.size_gib', 1)

    if params.get('cloud_init'):
        if not spec['disk']:
            raise SpecError('cloud_init: needs disk.path (the NoCloud seed ISO is written next to the disk)')
        spec['cdrom'] = seed_path_for(spec['disk']['path'], name)

    seen_mac = {}
    for index, nic in enumerate(params.get('nics') or []):
        field = 'nics[%d]' % index
        if not isinstance(nic, dict) or not nic.get('network'):
            raise SpecError('%s.network: is required' % field)
        mac = None
        if nic.get('mac'):
            mac = normalize_mac(nic['mac'], field + '.mac')
            if mac in seen_mac:
                raise SpecError('%s.mac: %s is already used by nics[%d]' % (field, mac, seen_mac[mac]))
            seen_mac[mac] = index
        model = nic.get('model') or 'virtio'
        if not _MODEL_RE.match(model):
            raise SpecError('%s.model: %s is not a NIC model name' % (field, model))
        spec['nics'].append({'network': nic['network'], 'mac': mac, 'model': model})

    if spec['machine'] not in MACHINES:
        raise SpecError('machine: %s is not one of %s' % (spec['machine'], ', '.join(MACHINES)))
    if spec['iommu'] and spec['machine'] != 'q35':
        # QEMU's intel-iommu device exists on q35 only; on pc QEMU refuses to start.
        raise SpecError('iommu: true needs machine q35, not %s' % spec['machine'])
    for index, model in enumerate(params.get('video') or []):
        if model not in VIDEO_MODELS:
            raise SpecError('video[%d]: %s is not one of %s' % (index, model, ', '.join(VIDEO_MODELS)))
        spec['video'].append(model)

    seen_pci = {}
    for index, entry in enumerate(params.get('hostdevs') or []):
        field = 'hostdevs[%d]' % index
        _kind, norm = parse_hostdev(entry, field)
        if norm in seen_pci:
            raise SpecError('%s: %s is already listed as hostdevs[%d]' % (field, entry, seen_pci[norm]))
        seen_pci[norm] = index
        spec['hostdevs'].append(norm)

    if params.get('serial_log'):
        spec['serial_log'] = _require_abs_path(params['serial_log'], 'serial_log')
    if params.get('save_path'):
        _require_abs_path(params['save_path'], 'save_path')
    if params.get('shutdown_timeout') is not None:
        _require_int(params['shutdown_timeout'], 'shutdown_timeout', 0)
    return spec


def resolve_cpu_model(domain_type, cpu_model):
    """Default and check the CPU model for the resolved domain type."""
    if not cpu_model:
        return 'host-passthrough' if domain_type == 'kvm' else 'qemu64'
    if cpu_model in CPU_MODES and domain_type != 'kvm':
        raise SpecError('cpu_model: %s needs domain_type kvm (TCG cannot expose the host CPU)' % cpu_model)
    return cpu_model


def seed_path_for(disk_path, name):
    directory = disk_path.rsplit('/', 1)[0] or '/'
    return '%s/%s-cidata.iso' % (directory.rstrip('/') or '', name)


def build_domain_xml(spec):
    """Render a complete domain spec as XML.

    ``spec['type']`` must already be resolved to qemu or kvm and
    ``spec['cpu_model']`` defaulted (see :func:`resolve_cpu_model`).
    """
    root = ET.Element('domain', type=spec['type'])
    ET.SubElement(root, 'name').text = spec['name']
    if spec.get('uuid'):
        ET.SubElement(root, 'uuid').text = spec['uuid']
    root.append(build_owner_element(spec['owner'], spec.get('files') or []))
    ET.SubElement(root, 'memory', unit='MiB').text = str(spec['memory_mib'])
    ET.SubElement(root, 'currentMemory', unit='MiB').text = str(spec['memory_mib'])
    ET.SubElement(root, 'vcpu').text = str(spec['vcpus'])

    os_elem = ET.SubElement(root, 'os')
    os_type = ET.SubElement(os_elem, 'type')
    os_type.text = 'hvm'
    if spec.get('arch'):
        os_type.set('arch', spec['arch'])
    os_type.set('machine', spec.get('machine') or 'pc')
    if spec.get('kernel'):
        ET.SubElement(os_elem, 'kernel').text = spec['kernel']
        if spec.get('initrd'):
            ET.SubElement(os_elem, 'initrd').text = spec['initrd']
        if spec.get('cmdline'):
            ET.SubElement(os_elem, 'cmdline').text = spec['cmdline']
    else:
        ET.SubElement(os_elem, 'boot', dev='hd')

    features = ET.SubElement(root, 'features')
    # Without ACPI the guest never sees the power button that state=shutdown presses.
    ET.SubElement(features, 'acpi')
    ET.SubElement(features, 'apic')
    if spec.get('iommu'):
        # Interrupt remapping (intremap) needs the IOAPIC in QEMU, not split into KVM.
        ET.SubElement(features, 'ioapic', driver='qemu')
    if spec['type'] == 'qemu' and spec.get('tb_cache_mib'):
        tcg = ET.SubElement(features, 'tcg')
        ET.SubElement(tcg, 'tb-cache', unit='MiB').text = str(spec['tb_cache_mib'])

    if spec['cpu_model'] in CPU_MODES:
        ET.SubElement(root, 'cpu', mode=spec['cpu_model'])
    else:
        cpu = ET.SubElement(root, 'cpu', mode='custom', match='exact')
        ET.SubElement(cpu, 'model', fallback='forbid').text = spec['cpu_model']

    ET.SubElement(root, 'clock', offset='utc')
    ET.SubElement(root, 'on_poweroff').text = 'destroy'
    ET.SubElement(root, 'on_reboot').text = 'restart'
    ET.SubElement(root, 'on_crash').text = 'destroy'

    devices = ET.SubElement(root, 'devices')
    if spec.get('disk'):
        disk = ET.SubElement(devices, 'disk', type='file', device='disk')
        ET.SubElement(disk, 'driver', name='qemu', type=spec['disk']['format'])
        ET.SubElement(disk, 'source', file=spec['disk']['path'])
        ET.SubElement(disk, 'target', dev='vda', bus='virtio')
    if spec.get('cdrom'):
        cdrom = ET.SubElement(devices, 'disk', type='file', device='cdrom')
        ET.SubElement(cdrom, 'driver', name='qemu', type='raw')
        ET.SubElement(cdrom, 'source', file=spec['cdrom'])
        # SATA exists on both i440fx (via an added AHCI controller) and q35; IDE does not on q35.
        ET.SubElement(cdrom, 'target', dev='sda', bus='sata')
        ET.SubElement(cdrom, 'readonly')
    for nic in spec.get('nics') or []:
        iface = ET.SubElement(devices, 'interface', type='network')
        if nic.get('mac'):
            ET.SubElement(iface, 'mac', address=nic['mac'])
        ET.SubElement(iface, 'source', network=nic['network'])
        ET.SubElement(iface, 'model', type=nic.get('model') or 'virtio')
    for model in spec.get('video') or []:
        # libvirt makes the first the primary display (the VGA-compatible one).
        video = ET.SubElement(devices, 'video')
        ET.SubElement(video, 'model', type=model)
    if spec.get('iommu'):
        # caching_mode lets the guest's IOMMU driver announce every mapping, which QEMU needs
        # to emulate one (and vfio in the guest needs it to assign devices).
        iommu = ET.SubElement(devices, 'iommu', model='intel')
        ET.SubElement(iommu, 'driver', intremap='on', caching_mode='on')
    for addr in spec.get('hostdevs') or []:
        pci = parse_pci_address(addr, 'hostdevs')
        hostdev = ET.SubElement(devices, 'hostdev', mode='subsystem', type='pci', managed='yes')
        source = ET.SubElement(hostdev, 'source')
        ET.SubElement(source, 'address', domain='0x%04x' % pci['domain'], bus='0x%02x' % pci['bus'],
                      slot='0x%02x' % pci['slot'], function='0x%x' % pci['function'])
    if spec.get('serial_log'):
        serial = ET.SubElement(devices, 'serial', type='file')
        ET.SubElement(serial, 'source', path=spec['serial_log'])
        ET.SubElement(serial, 'target', port='0')
        console = ET.SubElement(devices, 'console', type='file')
        ET.SubElement(console, 'source', path=spec['serial_log'])
        ET.SubElement(console, 'target', type='serial', port='0')
    else:
        serial = ET.SubElement(devices, 'serial', type='pty')
        ET.SubElement(serial, 'target', port='0')
        console = ET.SubElement(devices, 'console', type='pty')
        ET.SubElement(console, 'target', type='serial', port='0')
    return _tostring(root)


def project_domain(xml_text):
    """Project domain XML onto the dict that libvirt_domain compares."""
    root = ET.fromstring(xml_text)
    proj = {
        'name': root.findtext('name'),
        'uuid': root.findtext('uuid'),
        'type': root.get('type'),
        'memory_mib': _scaled_mib(root.find('memory')),
        'vcpus': int(root.findtext('vcpu').strip()) if root.findtext('vcpu') else None,
        'cpu_model': None,
        'tb_cache_mib': _scaled_mib(root.find('features/tcg/tb-cache'), default_unit='MiB') or 0,
        'features': sorted(child.tag for child in root.findall('features/*') if child.tag in ('acpi', 'apic')),
        'kernel': root.findtext('os/kernel'),
        'initrd': root.findtext('os/initrd'),
        'cmdline': root.findtext('os/cmdline'),
        'disks': [],
        'interfaces': [],
        'hostdevs': [],
        'machine': machine_family(root.find('os/type').get('machine') if root.find('os/type') is not None else None),
        'iommu': None,
        'video': [model.get('type') for model in root.findall('devices/video/model')],
        'serial': None,
        'owner': read_owner(root),
    }
    iommu = root.find('devices/iommu')
    if iommu is not None:
        driver = iommu.find('driver')
        ioapic = root.find('features/ioapic')
        proj['iommu'] = {
            'model': iommu.get('model'),
            'intremap': driver.get('intremap') if driver is not None else None,
            'caching_mode': driver.get('caching_mode') if driver is not None else None,
            'ioapic': ioapic.get('driver') if ioapic is not None else None,
        }
    cpu = root.find('cpu')
    if cpu is not None:
        mode = cpu.get('mode', 'custom')
        proj['cpu_model'] = mode if mode in CPU_MODES else cpu.findtext('model')

    for disk in root.findall('devices/disk'):
        source = disk.find('source')
        target = disk.find('target')
        driver = disk.find('driver')
        path = None
        if source is not None:
            path = source.get('file') or source.get('dev') or source.get('name')
        proj['disks'].append({
            'device': disk.get('device', 'disk'),
            'source': path,
            'target': target.get('dev') if target is not None else None,
            'bus': target.get('bus') if target is not None else None,
            'format': driver.get('type') if driver is not None else None,
            'readonly': disk.find('readonly') is not None,
        })

    for iface in root.findall('devices/interface'):
        source = iface.find('source')
        mac = iface.find('mac')
        model = iface.find('model')
        proj['interfaces'].append({
            'type': iface.get('type'),
            'network': source.get('network') if source is not None else None,
            'mac': mac.get('address').lower() if mac is not None and mac.get('address') else None,
            'model': model.get('type') if model is not None else None,
        })

    for hostdev in root.findall('devices/hostdev'):
        addr = hostdev.find('source/address')
        if hostdev.get('type') != 'pci' or addr is None:
            proj['hostdevs'].append('%s:unsupported' % hostdev.get('type'))
            continue
        proj['hostdevs'].append(format_pci_address({
            'domain': int(addr.get('domain', '0'), 0),
            'bus': int(addr.get('bus', '0'), 0),
            'slot': int(addr.get('slot', '0'), 0),
            'function': int(addr.get('function', '0'), 0),
        }))

    serial = root.find('devices/serial')
    if serial is not None:
        source = serial.find('source')
        proj['serial'] = {
            'type': serial.get('type'),
            'path': source.get('path') if serial.get('type') == 'file' and source is not None else None,
        }
    return proj


def domain_macs(xml_text):
    """MAC addresses of all interfaces in a domain XML, in device order."""
    root = ET.fromstring(xml_text)
    macs = []
    for mac in root.findall('devices/interface/mac'):
        if mac.get('address'):
            macs.append(mac.get('address').lower())
    return macs


def domain_networks(xml_text):
    root = ET.fromstring(xml_text)
    return [src.get('network') for src in root.findall("devices/interface[@type='network']/source")
            if src.get('network')]


# ---------------------------------------------------------------------------
# Owner metadata


def build_owner_element(owner, files):
    """``<metadata>`` holding ``<lab:owner name=...>`` and the files we created.

    libvirt keeps one metadata element per namespace and identifies it by the
    namespace declared on that element itself. ElementTree would hoist a
    registered namespace onto ``<domain>``, so the prefixed tag and its
    ``xmlns:lab`` attribute are written literally instead.
    """
    metadata = ET.Element('metadata')
    owner_elem = ET.SubElement(metadata, '%s:owner' % LAB_PREFIX)
    owner_elem.set('xmlns:%s' % LAB_PREFIX, LAB_NS)
    owner_elem.set('name', owner)
    for entry in files:
        attrs = {'role': entry['role'], 'path': entry['path']}
        if entry.get('digest'):
            attrs['digest'] = entry['digest']
        ET.SubElement(owner_elem, '%s:file' % LAB_PREFIX, attrs)
    return metadata


def read_owner(root_or_xml):
    """Return ``{'name', 'files'}`` from our metadata, or None when absent."""
    root = ET.fromstring(root_or_xml) if isinstance(root_or_xml, str) else root_or_xml
    owner = root.find('metadata/{%s}owner' % LAB_NS)
    if owner is None:
        return None
    files = []
    for entry in owner.findall('{%s}file' % LAB_NS):
        item = {'role': entry.get('role'), 'path': entry.get('path')}
        if entry.get('digest'):
            item['digest'] = entry.get('digest')
        files.append(item)
    return {'name': owner.get('name'), 'files': sort_files(files)}


def sort_files(files):
    return sorted(files, key=lambda f: (f.get('path') or '', f.get('role') or ''))


def merge_files(recorded, created):
    """Union of recorded and newly created file entries, keyed by path.

    A path created again in this run replaces its old entry (new digest).
    """
    by_path = {}
    for entry in list(recorded or []) + list(created or []):
        by_path[entry['path']] = dict(entry)
    return sort_files(by_path.values())


# ---------------------------------------------------------------------------
# Comparison and rendering


def changed_keys(before, after):
    """Top-level keys whose values differ (both dicts are projections)."""
    if before is None:
        return sorted(after or {})
    keys = set(before) | set(after or {})
    return sorted(k for k in keys if before.get(k) != (after or {}).get(k))


def render(value, indent=0):
    """Render a projection as YAML-like text for ``--diff`` output."""
    pad = '  ' * indent
    lines = []
    if isinstance(value, dict):
        if not value:
            return pad + '{}\n'
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append('%s%s:\n%s' % (pad, key, render(item, indent + 1)))
            else:
                lines.append('%s%s: %s\n' % (pad, key, _scalar(item)))
        return ''.join(lines)
    if isinstance(value, list):
        if not value:
            return pad + '[]\n'
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = render(item, indent + 1)
                lines.append('%s- %s' % (pad, body.lstrip(' ')))
            else:
                lines.append('%s- %s\n' % (pad, _scalar(item)))
        return ''.join(lines)
    return pad + _scalar(value) + '\n'


def _scalar(value):
    if value is None:
        return 'null'
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    if isinstance(value, (dict, list)):
        return '{}' if isinstance(value, dict) else '[]'
    return str(value)


def _tostring(root):
    _indent(root)
    return ET.tostring(root, encoding='unicode')


def _indent(elem, level=0):
    # ElementTree.indent() needs Python 3.9; modules must still compile for 3.8.
    pad = '\n' + '  ' * level
    if len(elem):
        if not elem.text or not elem.text.strip():
            elem.text = pad + '  '
        for child in elem:
            _indent(child, level + 1)
        if not child.tail or not child.tail.strip():
            child.tail = pad
    if level and (not elem.tail or not elem.tail.strip()):
        elem.tail = pad
