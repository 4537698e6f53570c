# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts: the host's display and accelerator PCI devices from sysfs, the vendor tools'
figures when they answer, and the compute stack to install.

PCI sysfs comes first because it is there on every Linux host, with or without a driver: the
kernel writes each device's ``class``, ``vendor`` and ``device`` at enumeration, and the
``driver`` and ``iommu_group`` links as soon as a driver binds or an IOMMU groups it. The vendor
tools (``nvidia-smi``, ``rocm-smi``, ``xpu-smi``) only answer once the vendor's driver runs; they
add the model, memory and versions.

Reading and judging are apart. read_host() reads the host's files into a *read* (the shape below);
gpu_read.parse() makes the same read from what the plain-sh script of gpu_read.script() printed
on the host, so the roles need no Python there. gather() judges a read, whichever made it: the
gpu_facts module and the gpu_read filter return the same thing. A read is a dict:

  pci_bus       <sysfs>/bus/pci is a directory
  pci           one dict per <sysfs>/bus/pci/devices entry, in any order (pci_entry): address,
                attributes ({name: stripped text or None} of SYSFS_ATTRIBUTES), driver and
                iommu_group (the last part of the link's target, or None), drm (the names in
                its drm directory)
  modules       the text of /proc/modules
  device_nodes  the paths device_nodes() finds, in any order
  os_release    the text of /etc/os-release
  tools         {tool: None (not installed, or not asked for) or {rc, stdout, stderr}}
"""

from __future__ import annotations

import glob
import json
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.aicluster.lab.plugins.module_utils import gpu_stack
from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError

SYSFS_ROOT = '/sys'
PROC_MODULES = '/proc/modules'
DEV_ROOT = '/dev'

VENDOR_NVIDIA = '0x10de'
VENDOR_AMD = '0x1002'
VENDOR_INTEL = '0x8086'
VENDOR_NAMES = {VENDOR_NVIDIA: 'NVIDIA', VENDOR_AMD: 'AMD', VENDOR_INTEL: 'Intel'}
STACKS = {VENDOR_NVIDIA: 'cuda', VENDOR_AMD: 'rocm', VENDOR_INTEL: 'oneapi'}
# When vendors are mixed, the first of these present decides; the reason names the others.
STACK_ORDER = (VENDOR_NVIDIA, VENDOR_AMD, VENDOR_INTEL)

# PCI base classes (PCI Code and ID Assignment specification): 0x03 display controller
# (VGA 0x0300, XGA, 3D 0x0302, other 0x0380), 0x12 processing accelerator.
CLASS_DISPLAY = 0x03
CLASS_ACCELERATOR = 0x12

# Kernel modules that drive each vendor's GPUs, reported with the GPU when loaded.
VENDOR_MODULES = {
    VENDOR_NVIDIA: ('nvidia', 'nvidia_uvm', 'nvidia_drm', 'nvidia_modeset', 'nvidia_peermem', 'nouveau'),
    VENDOR_AMD: ('amdgpu', 'amdkfd', 'radeon'),
    VENDOR_INTEL: ('i915', 'xe'),
}

# Intel's integrated GPUs sit at 0000:00:02.0 on every generation (the i915 and xe drivers'
# documentation and every Intel board's lspci): a discrete Intel GPU (Arc, Flex, Max) sits
# behind a root port on another bus. oneAPI's Level Zero runs on integrated graphics too, but
# they share the host's memory and bandwidth, so an inference node gains nothing worth a
# driver stack from them: they count as display devices, and the host falls back to the CPU.
INTEGRATED_INTEL_ADDRESS = re.compile(r'^[0-9a-f]{4}:00:02\.0$')

SYSFS_ATTRIBUTES = ('class', 'vendor', 'device', 'numa_node', 'current_link_speed',
                    'current_link_width', 'max_link_speed', 'max_link_width')
# The links of a PCI device whose target's last part is read.
SYSFS_LINKS = ('driver', 'iommu_group')

TOOL_COMMANDS = {
    'nvidia-smi': ['-q', '-x'],
    # --showbus adds "PCI Bus", without which a card cannot be tied to its PCI device.
    'rocm-smi': ['--showproductname', '--showmeminfo', 'vram', '--showdriverversion', '--showbus', '--json'],
    'xpu-smi': ['discovery', '-j'],
}
TOOL_VENDORS = {'nvidia-smi': VENDOR_NVIDIA, 'rocm-smi': VENDOR_AMD, 'xpu-smi': VENDOR_INTEL}
# Where the tools are looked for before PATH: ROCm installs its tools here and does not always
# link them into PATH. After PATH come /sbin, /usr/sbin and /usr/local/sbin (get_bin_path's order).
TOOL_DIRS = ('/opt/rocm/bin',)


class ToolOutputError(InputError):
    """A vendor tool's output that cannot be read; the message names the tool."""


# ---------------------------------------------------------------- sysfs

def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _link_name(path):
    """The last part of a sysfs link's target (the driver's name, the IOMMU group), or None."""
    if not os.path.islink(path):
        return None
    return os.path.basename(os.readlink(path).rstrip('/'))


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def normalise_address(address):
    """A PCI address as sysfs spells it, ``0000:01:00.0``: nvidia-smi writes an 8-digit domain
    (``00000000:01:00.0``) and rocm-smi upper-case hex (``0000:A3:00.0``)."""
    text = str(address).strip().lower()
    match = re.match(r'^(?:([0-9a-f]+):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$', text)
    if not match:
        return text
    domain, bus, slot, function = match.groups()
    return '%04x:%02x:%02x.%s' % (int(domain or '0', 16), int(bus, 16), int(slot, 16), function)


def class_kind(pci_class):
    """``display``, ``accelerator`` or None for a sysfs class such as ``0x030200``."""
    value = _int_hex(pci_class)
    if value is None:
        return None
    base = value >> 16
    if base == CLASS_DISPLAY:
        return 'display'
    if base == CLASS_ACCELERATOR:
        return 'accelerator'
    return None


def _int_hex(text):
    try:
        return int(text, 16)
    except (TypeError, ValueError):
        return None


def pci_entry(address):
    """One PCI device of a read, before anything is read of it."""
    return {'address': address, 'attributes': dict.fromkeys(SYSFS_ATTRIBUTES), 'driver': None, 'iommu_group': None,
            'drm': []}


def read_pci(sysfs_root=SYSFS_ROOT):
    """Every entry of <sysfs_root>/bus/pci/devices, whatever its class, as pci_entry dicts."""
    entries = []
    for path in sorted(glob.glob(os.path.join(sysfs_root, 'bus', 'pci', 'devices', '*'))):
        entry = pci_entry(os.path.basename(path))
        for name in SYSFS_ATTRIBUTES:
            entry['attributes'][name] = _read(os.path.join(path, name))
        for name in SYSFS_LINKS:
            entry[name] = _link_name(os.path.join(path, name))
        drm = os.path.join(path, 'drm')
        entry['drm'] = sorted(os.listdir(drm)) if os.path.isdir(drm) else []
        entries.append(entry)
    return entries


def pci_devices(entries):
    """The display and processing-accelerator devices of a read's pci entries, in address order,
    as dicts of what sysfs says of them (absent files give None)."""
    devices = []
    for entry in sorted(entries, key=lambda item: item['address']):
        values = entry['attributes']
        kind = class_kind(values['class'])
        if kind is None:
            continue
        vendor = (values['vendor'] or '').lower()
        numa = _int(values['numa_node'])
        devices.append({
            'address': entry['address'],
            'vendor_id': vendor,
            'vendor': VENDOR_NAMES.get(vendor),
            'device_id': (values['device'] or '').lower(),
            'class': values['class'],
            'kind': kind,
            'driver': entry['driver'],
            'iommu_group': _int(entry['iommu_group']),
            # The kernel writes -1 when the platform gives no NUMA affinity.
            'numa_node': numa if numa is not None and numa >= 0 else None,
            'link': {
                'current_speed': values['current_link_speed'],
                'current_width': _int(values['current_link_width']),
                'max_speed': values['max_link_speed'],
                'max_width': _int(values['max_link_width']),
            },
            'drm': sorted(entry['drm']),
        })
    return devices


def loaded_modules(text):
    """Module names from the text of /proc/modules (the first field of each line). lsmod's
    output reads the same, its header line aside."""
    names = set(line.split()[0] for line in (text or '').splitlines() if line.strip())
    names.discard('Module')
    return names


def device_nodes(dev_root=DEV_ROOT):
    """GPU device nodes present: /dev/nvidia*, /dev/kfd, /dev/dri/renderD*, sorted."""
    found = glob.glob(os.path.join(dev_root, 'nvidia*')) + glob.glob(os.path.join(dev_root, 'dri', 'renderD*'))
    if os.path.exists(os.path.join(dev_root, 'kfd')):
        found.append(os.path.join(dev_root, 'kfd'))
    return sorted(found)


# ---------------------------------------------------------------- vendor tools

def _text(element, path):
    """The text at path below element, None when absent, empty or N/A."""
    node = element.find(path)
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return None if value in ('', 'N/A') else value


def _mib(text):
    """``81920 MiB`` -> 81920."""
    match = re.match(r'^(\d+)\s*MiB$', text or '')
    return int(match.group(1)) if match else None


def parse_nvidia_smi(text):
    """``nvidia-smi -q -x``: {address: figures} for each <gpu>. Elements it does not know are
    ignored (the schema grows with each driver: v12, v13 ...)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ToolOutputError('nvidia-smi -q -x: output is not XML (%s)' % exc)
    if root.tag != 'nvidia_smi_log':
        raise ToolOutputError('nvidia-smi -q -x: root element is <%s>, not <nvidia_smi_log>' % root.tag)
    driver, cuda = _text(root, 'driver_version'), _text(root, 'cuda_version')
    gpus = {}
    for gpu in root.findall('gpu'):
        address = gpu.get('id') or _text(gpu, 'pci/pci_bus_id')
        if not address:
            raise ToolOutputError('nvidia-smi -q -x: a <gpu> has no id attribute and no pci_bus_id')
        gpus[normalise_address(address)] = {
            'tool': 'nvidia-smi',
            'product_name': _text(gpu, 'product_name'),
            'memory_total_mib': _mib(_text(gpu, 'fb_memory_usage/total')),
            'driver_version': driver,
            'cuda_version': cuda,
            'ecc_mode': _text(gpu, 'ecc_mode/current_ecc'),
            'mig_mode': _text(gpu, 'mig_mode/current_mig'),
        }
    return gpus


def _json_object(tool, text):
    # rocm-smi prints warnings ("WARNING: AMD GPU device(s) is/are in a low-power state") on
    # stdout before the JSON, so the document starts at the first brace.
    start = (text or '').find('{')
    if start < 0:
        raise ToolOutputError('%s: no JSON object in its output' % tool)
    try:
        data = json.loads(text[start:])
    except ValueError as exc:
        raise ToolOutputError('%s: output is not JSON (%s)' % (tool, exc))
    if not isinstance(data, dict):
        raise ToolOutputError('%s: JSON output is a %s, not an object' % (tool, type(data).__name__))
    return data


def _field(values, *names):
    """The first of names in values, compared without case (rocm-smi wrote "Card series" in
    ROCm 5.7 and 6.0 and "Card Series" in 6.1)."""
    lowered = dict((str(key).lower(), value) for key, value in values.items())
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, '', 'N/A'):
            return value
    return None


def parse_rocm_smi(text):
    """``rocm-smi ... --json``: ({address: figures}, [warnings]). A card without "PCI Bus"
    cannot be tied to a device: it is named in a warning, not guessed."""
    data = _json_object('rocm-smi', text)
    driver = _field(data.get('system') or {}, 'Driver version')
    gpus, warnings = {}, []
    for card in sorted(key for key in data if str(key).startswith('card')):
        values = data[card]
        if not isinstance(values, dict):
            raise ToolOutputError('rocm-smi: %s is a %s, not an object' % (card, type(values).__name__))
        address = _field(values, 'PCI Bus')
        if not address:
            warnings.append('rocm-smi: %s has no "PCI Bus"; its figures are not tied to a device' % card)
            continue
        vram = _int(_field(values, 'VRAM Total Memory (B)'))
        gpus[normalise_address(address)] = {
            'tool': 'rocm-smi',
            'card': card,
            'product_name': _field(values, 'Card Series', 'Device Name'),
            'memory_total_mib': vram // (1024 * 1024) if vram is not None else None,
            'driver_version': _field(values, 'Driver version') or driver,
        }
    return gpus, warnings


def parse_xpu_smi(text):
    """``xpu-smi discovery -j``: {address: figures} for each entry of device_list (key names as
    xpu-smi's ial/cmn/cmd_discovery.cpp writes them)."""
    data = _json_object('xpu-smi', text)
    devices = data.get('device_list')
    if not isinstance(devices, list):
        raise ToolOutputError('xpu-smi discovery -j: no "device_list" list in its output')
    gpus = {}
    for device in devices:
        if not isinstance(device, dict) or not device.get('pci_bdf_address'):
            raise ToolOutputError('xpu-smi discovery -j: a device_list entry has no pci_bdf_address')
        gpus[normalise_address(device['pci_bdf_address'])] = {
            'tool': 'xpu-smi',
            'product_name': device.get('device_name'),
            'drm_device': device.get('drm_device'),
            'function_type': device.get('device_function_type'),
        }
    return gpus


def parse_tool(tool, text):
    """(figures by address, warnings) of one tool's output; ToolOutputError when unreadable."""
    if tool == 'nvidia-smi':
        return parse_nvidia_smi(text), []
    if tool == 'rocm-smi':
        return parse_rocm_smi(text)
    if tool == 'xpu-smi':
        return parse_xpu_smi(text), []
    raise ValueError('unknown GPU tool %r' % tool)


# ---------------------------------------------------------------- stack

def is_integrated_intel(gpu):
    return gpu['vendor_id'] == VENDOR_INTEL and bool(INTEGRATED_INTEL_ADDRESS.match(gpu['address']))


def compute_stack(gpu):
    """The stack that serves this device, or None (another vendor, Intel integrated)."""
    if is_integrated_intel(gpu):
        return None
    return STACKS.get(gpu['vendor_id'])


def _ids(gpu):
    return '%s:%s' % (gpu['vendor_id'].replace('0x', ''), gpu['device_id'].replace('0x', ''))


def recommend(gpus):
    """(stack, reason): cuda, rocm or oneapi for the first vendor of STACK_ORDER that has a
    device with a stack, else cpu; the reason names the devices that decided."""
    if not gpus:
        return 'cpu', 'no GPU: CPU fallback'
    for vendor in STACK_ORDER:
        chosen = [gpu for gpu in gpus if gpu['vendor_id'] == vendor and gpu['compute_stack']]
        if not chosen:
            continue
        stack = STACKS[vendor]
        first = chosen[0]
        reason = '%s %s at %s' % (VENDOR_NAMES[vendor], _ids(first), first['address'])
        if len(chosen) > 1:
            reason += ' and %d more' % (len(chosen) - 1)
        unbound = [gpu['address'] for gpu in chosen if not gpu['driver']]
        if unbound:
            reason += ' (no driver bound yet: %s)' % ', '.join(unbound)
        reason += ': %s' % stack
        others = sorted(set(VENDOR_NAMES[gpu['vendor_id']] for gpu in gpus
                            if gpu['compute_stack'] and gpu['vendor_id'] != vendor))
        if others:
            reason += '; %s GPUs also present are not served by it' % ' and '.join(others)
        return stack, reason
    described = []
    for gpu in gpus:
        if is_integrated_intel(gpu):
            described.append('Intel integrated graphics %s at %s is not a oneAPI target' % (_ids(gpu), gpu['address']))
        else:
            described.append('display device %s has no compute stack' % _ids(gpu))
    return 'cpu', '%s: CPU fallback' % '; '.join(described)


# ---------------------------------------------------------------- reading the host

def _file_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ''


def read_host(sysfs_root=SYSFS_ROOT, dev_root=DEV_ROOT, proc_modules=PROC_MODULES,
              os_release=gpu_stack.OS_RELEASE, tools=None):
    """A read (see the module's docstring) of this host's files; tools is what the caller ran,
    {tool: {rc, stdout, stderr} or None}, since only a module can run them here."""
    tools = tools or {}
    return {
        'pci_bus': os.path.isdir(os.path.join(sysfs_root, 'bus', 'pci')),
        'pci': read_pci(sysfs_root),
        'modules': _file_text(proc_modules),
        'device_nodes': device_nodes(dev_root),
        'os_release': _file_text(os_release),
        'tools': dict((tool, tools.get(tool)) for tool in sorted(TOOL_COMMANDS)),
    }


# ---------------------------------------------------------------- all together

def _tool_figures(ran_tools):
    """(state by tool, figures by tool, warnings) of the tools' runs. A tool that is absent is not
    an error; one that exited with an error, or whose output cannot be read, gives a warning that
    names it, and its figures are left out."""
    states, figures, failed, warnings = {}, {}, [], []
    for tool in sorted(TOOL_COMMANDS):
        ran = ran_tools.get(tool)
        if ran is None:
            states[tool] = 'absent'
            continue
        if ran['rc'] != 0:
            states[tool] = 'failed'
            said = (ran.get('stderr') or '').strip() or (ran.get('stdout') or '').strip()
            failed.append('%s %s failed (rc %s): %s' % (tool, ' '.join(TOOL_COMMANDS[tool]), ran['rc'], said[-500:]))
            continue
        try:
            parsed, notes = parse_tool(tool, ran.get('stdout') or '')
        except ToolOutputError as exc:
            states[tool] = 'malformed'
            warnings.append(str(exc))
            continue
        states[tool] = 'read'
        warnings.extend(notes)
        figures[tool] = parsed
    return states, figures, failed + warnings


def gather(read):
    """gpu_facts' result, without ``changed``, from a read (read_host's or gpu_read.parse's):
    gpus, recommended_stack, stack_reason, loaded_modules, device_nodes, tools, distribution and
    warnings (the module warns them, the gpu_read filter returns them)."""
    tools, figures, warnings = _tool_figures(read.get('tools') or {})
    modules = loaded_modules(read['modules'])
    nodes = sorted(read['device_nodes'])
    gpus = pci_devices(read['pci'])
    addresses = set(gpu['address'] for gpu in gpus)
    for gpu in gpus:
        vendor = gpu['vendor_id']
        gpu['integrated'] = is_integrated_intel(gpu)
        gpu['compute_stack'] = compute_stack(gpu)
        gpu['modules'] = sorted(modules.intersection(VENDOR_MODULES.get(vendor, ())))
        gpu['device_nodes'] = _nodes_of(gpu, nodes)
        gpu['tool'] = None
        for tool, found in figures.items():
            if TOOL_VENDORS[tool] == vendor and gpu['address'] in found:
                gpu['tool'] = found[gpu['address']]
        del gpu['drm']
    for tool, found in sorted(figures.items()):
        for address in sorted(set(found) - addresses):
            warnings.append('%s reports a GPU at %s that sysfs does not list' % (tool, address))
    if not read['pci_bus']:
        warnings.append('%s/bus/pci is missing: no PCI bus to read, so no GPU is reported' % SYSFS_ROOT)

    stack, reason = recommend(gpus)
    return {
        'gpus': gpus,
        'recommended_stack': stack,
        'stack_reason': reason,
        'loaded_modules': sorted(modules.intersection(set(name for names in VENDOR_MODULES.values() for name in names))),
        'device_nodes': nodes,
        'tools': tools,
        'distribution': gpu_stack.distribution(read['os_release']),
        'warnings': warnings,
    }


def _nodes_of(gpu, nodes):
    """A device's own render nodes (the renderD names of its sysfs drm directory, found under
    <dev>/dri), plus what its vendor's stack opens for every device: <dev>/nvidia* for NVIDIA,
    <dev>/kfd for AMD."""
    own = set(name for name in gpu['drm'] if name.startswith('renderD'))
    mine = [node for node in nodes
            if os.path.basename(node) in own and os.path.basename(os.path.dirname(node)) == 'dri']
    if gpu['vendor_id'] == VENDOR_NVIDIA:
        mine += [node for node in nodes if os.path.basename(node).startswith('nvidia')]
    elif gpu['vendor_id'] == VENDOR_AMD:
        mine += [node for node in nodes if os.path.basename(node) == 'kfd']
    return sorted(mine)
