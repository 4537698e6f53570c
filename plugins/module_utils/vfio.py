# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PCI passthrough on a host: can the chosen devices go to vfio-pci, and which are there now.

A device can be handed to a guest only when the host has an IOMMU that groups it, the vfio
modules exist, and every other device of its IOMMU group is either passed through too or bound
to a driver that leaves DMA to its owner: none, vfio-pci, pci-stub or pcieport (the kernel's
drivers with ``driver_managed_dma``; any other driver makes the group unusable for vfio).
Everything here is a function of a sysfs root and the text of /proc/cmdline, /proc/modules and
the kernel's module lists, so it is tested on trees captured from a real guest.
"""

from __future__ import annotations

import os
import re

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.gpu import _link_name, _read, normalise_address

SYSFS_ROOT = '/sys'
DEV_ROOT = '/dev'
PROC_CMDLINE = '/proc/cmdline'
MODULES_ROOT = '/lib/modules'
VFIO_DRIVER = 'vfio-pci'
# Drivers that may hold a device of a passed-through group (they do no DMA of their own).
HARMLESS_DRIVERS = (None, VFIO_DRIVER, 'pci-stub', 'pcieport')
# vfio-pci needs the vfio core and the type-1 IOMMU backend; modprobe vfio-pci pulls them in.
VFIO_MODULES = ('vfio', 'vfio_iommu_type1', 'vfio_pci')
# The kernel parameters that turn an IOMMU on (AMD's is on by default where the firmware has one).
IOMMU_PARAMS = re.compile(r'(?:^|\s)((?:intel_iommu|amd_iommu|iommu)=\S+)')
_PCI_ID = re.compile(r'^([0-9a-f]{4}):([0-9a-f]{4})$')


class DeviceError(InputError):
    """A device entry that is not a PCI address or vendor:device id; the message names it."""


def read_devices(sysfs_root=SYSFS_ROOT):
    """{address: {vendor_id, device_id, class, driver, driver_override, iommu_group}} of every
    PCI device under <sysfs_root>/bus/pci/devices."""
    base = os.path.join(sysfs_root, 'bus', 'pci', 'devices')
    devices = {}
    for address in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        path = os.path.join(base, address)
        override = _read(os.path.join(path, 'driver_override'))
        group = _link_name(os.path.join(path, 'iommu_group'))
        devices[address] = {
            'address': address,
            'vendor_id': (_read(os.path.join(path, 'vendor')) or '').lower(),
            'device_id': (_read(os.path.join(path, 'device')) or '').lower(),
            'class': _read(os.path.join(path, 'class')),
            'driver': _link_name(os.path.join(path, 'driver')),
            # The kernel prints "(null)" when no override is set.
            'driver_override': None if override in (None, '', '(null)') else override,
            'iommu_group': int(group) if group is not None and group.isdigit() else None,
        }
    return devices


def iommu_groups(sysfs_root=SYSFS_ROOT):
    """The group numbers under <sysfs_root>/kernel/iommu_groups, sorted; empty without an IOMMU."""
    base = os.path.join(sysfs_root, 'kernel', 'iommu_groups')
    return sorted(int(name) for name in os.listdir(base) if name.isdigit()) if os.path.isdir(base) else []


def module_state(name, sysfs_root=SYSFS_ROOT, kernel_lists=None):
    """``loaded`` (or built in: /sys/module/<name> exists), ``available`` (modules.dep or
    modules.builtin of the running kernel names it), else ``missing``."""
    if os.path.isdir(os.path.join(sysfs_root, 'module', name)):
        return 'loaded'
    # modules.dep spells names with '-' or '_' as the source file has them; the kernel uses '_'.
    pattern = re.compile(r'(?:^|/)%s\.ko(?:\.[a-z]+)?:?' % re.escape(name).replace('_', '[-_]'), re.M)
    if any(pattern.search(text or '') for text in (kernel_lists or ())):
        return 'available'
    return 'missing'


def resolve(entries, devices):
    """[(entry, [addresses])] for each entry (a PCI address or a vendor:device id); an entry
    that names no device of the host gets []."""
    resolved = []
    for index, entry in enumerate(entries):
        text = str(entry).strip().lower()
        match = _PCI_ID.match(text)
        if match:
            wanted = ('0x' + match.group(1), '0x' + match.group(2))
            resolved.append((entry, [a for a, d in sorted(devices.items()) if (d['vendor_id'], d['device_id']) == wanted]))
            continue
        address = normalise_address(text)
        if not re.match(r'^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$', address):
            raise DeviceError('devices[%d]: %s is neither a PCI address like 0000:01:00.0 nor a vendor:device id '
                              'like 10de:2684' % (index, entry))
        resolved.append((entry, [address] if address in devices else []))
    return resolved


def preflight(entries, sysfs_root=SYSFS_ROOT, cmdline='', kernel_lists=None, dev_root=DEV_ROOT):
    """The module's result: the IOMMU, the vfio modules, each chosen device with its group, and
    ``problems``, each a sentence that names what blocks passthrough. Nothing is changed."""
    devices = read_devices(sysfs_root)
    groups = iommu_groups(sysfs_root)
    params = IOMMU_PARAMS.findall(cmdline or '')
    problems = []
    if not groups:
        problems.append('IOMMU off: %s/kernel/iommu_groups holds no group; the kernel command line has %s. '
                        'Enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on (Intel)'
                        % (sysfs_root, ', '.join(params) if params else 'no intel_iommu= or amd_iommu='))
    modules = dict((name, module_state(name, sysfs_root, kernel_lists)) for name in VFIO_MODULES)
    missing = [name for name, state in modules.items() if state == 'missing']
    if missing:
        problems.append('vfio modules missing: %s neither loaded nor in the running kernel\'s module lists'
                        % ', '.join(missing))

    chosen, unknown = [], []
    for entry, found in resolve(entries, devices):
        if not found:
            unknown.append(entry)
        chosen.extend(address for address in found if address not in chosen)
    for entry in unknown:
        problems.append('device unknown: %s is not a PCI device of this host' % entry)

    report = []
    for address in chosen:
        device = devices[address]
        group = device['iommu_group']
        members = sorted(a for a, d in devices.items() if group is not None and d['iommu_group'] == group)
        blocking = ['%s (%s)' % (a, devices[a]['driver']) for a in members
                    if a not in chosen and devices[a]['driver'] not in HARMLESS_DRIVERS]
        if groups and group is None:
            problems.append('device %s is in no IOMMU group' % address)
        if blocking:
            problems.append('IOMMU group %s of %s is shared with devices not bound to vfio-pci: %s; pass them '
                            'through too or unbind them' % (group, address, ', '.join(blocking)))
        # vfio makes /dev/vfio/<group> once every device of the group is bound to it.
        node = os.path.join(dev_root, 'vfio', str(group)) if group is not None else None
        report.append(dict(device, group_members=members, group_blocking=blocking,
                           bound_to_vfio=device['driver'] == VFIO_DRIVER,
                           vfio_node=node if node and os.path.exists(node) else None))
    return {
        'iommu': {'enabled': bool(groups), 'groups': len(groups), 'cmdline': params},
        'modules': modules,
        'devices': report,
        'unknown': unknown,
        'problems': problems,
        'ready': not problems,
    }


# ---------------------------------------------------------------- verdicts

CATEGORY = 'hardware'


def _record(name, description, problems, message, figures):
    return {'name': name, 'category': CATEGORY, 'description': description, 'passed': not problems,
            'message': '; '.join(problems) if problems else message, 'figures': figures}


def _devices_text(devices):
    return ', '.join('%s (%s:%s, group %s, driver %s)' % (
        d['address'], d['vendor_id'].replace('0x', ''), d['device_id'].replace('0x', ''), d['iommu_group'],
        d['driver'] or 'none') for d in devices) or 'none'


def checks(before, after, state):
    """Checks (category hardware) of a bind: ``vfio_preflight`` on the state read before any
    change and ``vfio_bound`` (every device on vfio-pci, /dev/vfio/<group> there); of a release:
    ``vfio_released`` (none on vfio-pci, no override left, /dev/vfio/<group> gone). Figures are
    numbers only."""
    preflight_record = _record(
        'vfio_preflight', 'PCI passthrough preflight: IOMMU, vfio modules, devices, IOMMU groups',
        before['problems'],
        'IOMMU on with %d groups; vfio modules %s; devices %s' % (
            before['iommu']['groups'], ', '.join('%s %s' % item for item in sorted(before['modules'].items())),
            _devices_text(before['devices'])),
        {'iommu_groups': before['iommu']['groups'], 'devices': len(before['devices']),
         'group_members': sum(len(d['group_members']) for d in before['devices'])})
    records = [preflight_record] if state == 'bound' else []
    devices = after['devices']
    problems = []
    if state == 'bound':
        for device in devices:
            if not device['bound_to_vfio']:
                problems.append('%s is bound to %s, not vfio-pci' % (device['address'], device['driver'] or 'no driver'))
            if not device['vfio_node']:
                problems.append('%s: no /dev/vfio/%s' % (device['address'], device['iommu_group']))
        records.append(_record(
            'vfio_bound', 'devices bound to vfio-pci through driver_override, /dev/vfio/<group> present',
            problems or ([] if devices else ['no device to bind']),
            'bound to vfio-pci: %s; device nodes %s' % (
                _devices_text(devices), ', '.join(d['vfio_node'] or 'none' for d in devices)),
            {'devices': len(devices), 'bound': sum(1 for d in devices if d['bound_to_vfio']),
             'vfio_nodes': sum(1 for d in devices if d['vfio_node'])}))
    else:
        for device in devices:
            if device['bound_to_vfio']:
                problems.append('%s is still bound to vfio-pci' % device['address'])
            if device['driver_override']:
                problems.append('%s keeps driver_override %s' % (device['address'], device['driver_override']))
            if device['vfio_node']:
                problems.append('%s: %s is still there' % (device['address'], device['vfio_node']))
        records.append(_record(
            'vfio_released', 'devices given back to their own drivers, /dev/vfio/<group> gone',
            problems or ([] if devices else ['no device to release']),
            'given back: %s' % _devices_text(devices),
            {'devices': len(devices), 'bound': sum(1 for d in devices if d['bound_to_vfio']),
             'with_driver': sum(1 for d in devices if d['driver']),
             'vfio_nodes': sum(1 for d in devices if d['vfio_node'])}))
    return records
