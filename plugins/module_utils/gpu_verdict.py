# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu role's verdicts, as dicts for aicluster.lab.check (category ``hardware``), judged on
gpu_facts' result read after the role's changes and on the role's plan (gpu_stack.host_plan).

A host whose recommended stack is cpu (no GPU, or display devices without a compute stack)
gets one passed check, ``gpu_cpu_fallback``, naming what was found. A host with a stack gets:
- ``gpu_devices``: the stack's devices listed, by address, ids and model;
- ``gpu_driver``: each bound to the stack's driver, with the driver's module loaded;
- ``gpu_tool``: the vendor tool (nvidia-smi, rocm-smi) answered and reported every device;
  skipped with the reason for oneAPI, whose runtime packages bring no such tool;
- ``gpu_device_nodes``: the nodes the stack opens (/dev/nvidiactl and /dev/nvidia<N>;
  /dev/kfd and a render node per device; a render node per device for oneAPI);
- ``gpu_versions``: the driver version (and CUDA's) the tool reports for every device;
- ``gpu_reboot``: no reboot pending; fails with "reboot required" and the reason when the
  driver was installed but the host was not allowed to reboot into it.
Figures are numbers only (the report refuses text in figures): names are in the messages.
"""

from __future__ import annotations

import os
import re

from ansible_collections.aicluster.lab.plugins.module_utils.gpu_stack import STACK_DRIVERS, driver_problems

CATEGORY = 'hardware'
STACK_TOOLS = {'cuda': 'nvidia-smi', 'rocm': 'rocm-smi'}
STACK_NAMES = {'cuda': 'CUDA', 'rocm': 'ROCm', 'oneapi': 'oneAPI'}


def _record(name, description, problem, message, figures=None, skip_reason=''):
    record = {'name': name, 'category': CATEGORY, 'description': description, 'passed': not problem,
              'message': problem or message, 'figures': figures or {}}
    if skip_reason:
        record['skip_reason'] = skip_reason
    return record


def _ids(device):
    return '%s:%s' % ((device.get('vendor_id') or '').replace('0x', ''), (device.get('device_id') or '').replace('0x', ''))


def _name(device):
    model = (device.get('tool') or {}).get('product_name')
    vendor = device.get('vendor') or 'vendor ' + (device.get('vendor_id') or '?')
    return '%s %s at %s%s' % (vendor, _ids(device), device.get('address'), ' (%s)' % model if model else '')


def cpu_fallback_check(facts):
    """The one check of a host without a compute stack: passed, naming what was found."""
    devices = facts.get('gpus') or []
    found = '; '.join('%s, driver %s' % (_name(device), device.get('driver') or 'none') for device in devices)
    modules = ', '.join(facts.get('loaded_modules') or []) or 'none'
    message = '%s. Display devices: %s. GPU modules loaded: %s' % (
        facts.get('stack_reason') or 'no GPU: CPU fallback', found or 'none', modules)
    return _record('gpu_cpu_fallback', 'no GPU: CPU fallback', '', message,
                   {'display_devices': len(devices), 'device_nodes': len(facts.get('device_nodes') or [])})


def _served(facts, stack):
    return [device for device in facts.get('gpus') or [] if device.get('compute_stack') == stack]


def devices_check(devices, stack):
    memory = [(device.get('tool') or {}).get('memory_total_mib') for device in devices]
    figures = {'gpus': len(devices)}
    if memory and all(isinstance(value, int) for value in memory):
        figures['memory_total_mib'] = sum(memory)
    return _record('gpu_devices', '%s GPUs listed on the PCI bus' % STACK_NAMES[stack],
                   '' if devices else 'no device of the %s stack is listed' % stack,
                   '; '.join(_name(device) for device in devices), figures)


def driver_check(facts, devices, stack):
    problems = driver_problems(facts, stack)
    bound = [device for device in devices if device['address'] not in problems]
    return _record('gpu_driver', 'each GPU bound to %s with its module loaded' % ' or '.join(STACK_DRIVERS[stack]),
                   '; '.join(problems[address] for address in sorted(problems)),
                   '%s bound to %s, module loaded' % (', '.join(d['address'] for d in bound), bound[0]['driver'])
                   if bound else '', {'gpus_bound': len(bound)})


def _tool_warning(facts, tool):
    for text in facts.get('warnings') or []:
        text = text.get('event', {}).get('msg', '') if isinstance(text, dict) else str(text)
        if text.startswith(tool):
            return ': ' + text
    return ''


def tool_check(facts, devices, stack):
    tool = STACK_TOOLS.get(stack)
    description = '%s answers for every GPU' % (tool or 'the vendor tool')
    if tool is None:
        return _record('gpu_tool', description, '', '',
                       skip_reason='the %s stack installs no vendor tool that reports its devices' % STACK_NAMES[stack])
    state = (facts.get('tools') or {}).get(tool, 'absent')
    reported = [device for device in devices if (device.get('tool') or {}).get('tool') == tool]
    if state == 'absent':
        problem = '%s is not installed (not in PATH)' % tool
    elif state == 'failed':
        problem = '%s failed%s' % (tool, _tool_warning(facts, tool) or ' (see the gpu_facts warning)')
    elif state == 'malformed':
        problem = '%s printed what cannot be read%s' % (tool, _tool_warning(facts, tool))
    elif len(reported) < len(devices):
        missing = [device['address'] for device in devices if device not in reported]
        problem = '%s does not report %s' % (tool, ', '.join(missing))
    else:
        problem = ''
    return _record('gpu_tool', description, problem, '%s reports %s' % (tool, ', '.join(d['address'] for d in reported)),
                   {'gpus_reported': len(reported)})


_NVIDIA_MINOR = re.compile(r'^nvidia\d+$')


def _missing_nodes(device, stack):
    """The nodes the stack needs for this device that are not present (basenames)."""
    names = set(os.path.basename(node) for node in device.get('device_nodes') or [])
    missing = []
    if stack == 'cuda':
        if 'nvidiactl' not in names:
            missing.append('/dev/nvidiactl')
        if not any(_NVIDIA_MINOR.match(name) for name in names):
            missing.append('/dev/nvidia<N>')
    else:
        if stack == 'rocm' and 'kfd' not in names:
            missing.append('/dev/kfd')
        if not any(name.startswith('renderD') for name in names):
            missing.append('its /dev/dri/renderD* node')
    return missing


def device_nodes_check(devices, stack, facts):
    problems = []
    for device in devices:
        missing = _missing_nodes(device, stack)
        if missing:
            problems.append('%s lacks %s' % (device['address'], ', '.join(missing)))
    wanted = {'cuda': '/dev/nvidiactl and /dev/nvidia<N>', 'rocm': '/dev/kfd and a render node per GPU',
              'oneapi': 'a render node per GPU'}[stack]
    nodes = facts.get('device_nodes') or []
    return _record('gpu_device_nodes', 'the device nodes %s opens: %s' % (STACK_NAMES[stack], wanted),
                   '; '.join(problems), 'present: %s' % ', '.join(nodes), {'device_nodes': len(nodes)})


def _major(version):
    match = re.match(r'^(\d+)', str(version or ''))
    return int(match.group(1)) if match else None


def versions_check(devices, stack):
    tool = STACK_TOOLS.get(stack)
    description = 'the driver%s version each GPU reports' % (' and CUDA' if stack == 'cuda' else '')
    if tool is None:
        return _record('gpu_versions', description, '', '',
                       skip_reason='the %s stack installs no vendor tool that reports versions' % STACK_NAMES[stack])
    versions = sorted(set((d.get('tool') or {}).get('driver_version') for d in devices) - {None})
    unknown = [d['address'] for d in devices if not (d.get('tool') or {}).get('driver_version')]
    cuda = sorted(set((d.get('tool') or {}).get('cuda_version') for d in devices) - {None})
    message = 'driver %s' % ', '.join(versions)
    figures = {'driver_versions': len(versions)}
    if versions and _major(versions[0]) is not None:
        figures['driver_major'] = _major(versions[0])
    if stack == 'cuda' and cuda:
        message += ', CUDA %s' % ', '.join(cuda)
    problem = '%s reports no driver version for %s' % (tool, ', '.join(unknown)) if unknown else ''
    if not problem and len(versions) > 1:
        problem = 'the GPUs run different driver versions: %s' % ', '.join(versions)
    return _record('gpu_versions', description, problem, message, figures)


def reboot_check(reboot_reason, rebooted=False):
    problem = 'reboot required: %s (set gpu_reboot_allowed to let the role reboot)' % reboot_reason if reboot_reason else ''
    return _record('gpu_reboot', 'no reboot pending for the GPU driver', problem,
                   'rebooted into the new driver' if rebooted else 'no reboot pending', {'rebooted': int(bool(rebooted))})


def checks(facts, plan, rebooted=False):
    """Every check of the host, in the order a person reads them."""
    stack = plan.get('stack') or facts.get('recommended_stack') or 'cpu'
    if stack == 'cpu':
        return [cpu_fallback_check(facts)]
    devices = _served(facts, stack)
    return [
        devices_check(devices, stack),
        driver_check(facts, devices, stack),
        tool_check(facts, devices, stack),
        device_nodes_check(devices, stack, facts),
        versions_check(devices, stack),
        reboot_check(plan.get('reboot_reason') or '', rebooted),
    ]
