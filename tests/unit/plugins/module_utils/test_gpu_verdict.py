# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu role's verdicts (category hardware) on the gpu fixtures: the CPU-only CI host, a
display device of another vendor, an NVIDIA T4 with nvidia-smi and an AMD RX 6700 XT with
rocm-smi (fixtures/gpu/README.md names their sources), and each way a check fails. The /dev
entries and the AMD host's module list are made here: no capture of them was found."""

from __future__ import annotations

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import gpu_stack, gpu_verdict
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.gpu_sysfs import build_sysfs, fixture_text, gather

DEBIAN = {'id': 'debian', 'version_id': '12', 'family': 'Debian'}
NVIDIA_NODES = ('nvidia0', 'nvidiactl', 'nvidia-uvm')
# /proc/modules lines as the kernel writes them; amdgpu's is made here (see the docstring).
AMDGPU_MODULES = 'amdgpu 9814016 12 - Live 0x0000000000000000\n'


def facts(tmp_path, dump, tools=None, modules='', nodes=(), render=None):
    """gather() on a fixture; render: (address, renderD name) a device's sysfs drm directory holds."""
    dev = tmp_path / 'dev'
    (dev / 'dri').mkdir(parents=True)
    for name in nodes:
        (dev / name).write_text('')
    root = build_sysfs(dump, tmp_path / 'sys')
    if render:
        (tmp_path / 'sys' / 'bus' / 'pci' / 'devices' / render[0] / 'drm' / render[1]).mkdir(parents=True)
    result = gather(root, modules, dev, tools)
    result['distribution'] = dict(DEBIAN)
    return result


def nvidia_host(tmp_path, nodes=NVIDIA_NODES, tool=True):
    return facts(tmp_path, 'tesla-t4-aws', {'nvidia-smi': fixture_text('nvidia-smi', 'tesla-t4.xml')} if tool else {},
                 modules=fixture_text('modules', 'azure-nvidia-lsmod.txt'), nodes=nodes)


def amd_host(tmp_path, nodes=('kfd',), render=None):
    return facts(tmp_path, 'rx6700xt', {'rocm-smi': fixture_text('rocm-smi', 'rx6700xt-rocm612.json')},
                 modules=AMDGPU_MODULES, nodes=nodes, render=render)


def checks_of(result, installed=True, changed=False, rebooted=False):
    plan = gpu_stack.host_plan(result, installed=installed, changed=changed)
    return {record['name']: record for record in gpu_verdict.checks(result, plan, rebooted)}


def assert_records(records):
    for record in records.values():
        assert record['category'] == 'hardware'
        assert all(isinstance(value, (int, float)) and not isinstance(value, bool)
                   for value in record['figures'].values()), record


# ---------------------------------------------------------------- no GPU stack

def test_cpu_only_host_gets_one_passed_fallback_check(tmp_path):
    records = checks_of(facts(tmp_path, 'cpu-only-ci'))
    assert list(records) == ['gpu_cpu_fallback']
    check = records['gpu_cpu_fallback']
    assert check['passed'] and check['description'] == 'no GPU: CPU fallback'
    assert check['message'] == 'no GPU: CPU fallback. Display devices: none. GPU modules loaded: none'
    assert check['figures'] == {'display_devices': 0, 'device_nodes': 0}
    assert_records(records)


def test_display_devices_without_a_stack_fall_back_naming_them(tmp_path):
    records = checks_of(facts(tmp_path, 'qemu-display'))
    assert list(records) == ['gpu_cpu_fallback'] and records['gpu_cpu_fallback']['passed']
    message = records['gpu_cpu_fallback']['message']
    assert 'vendor 0x1234 1234:1111 at 0000:00:01.0, driver none' in message
    assert 'vendor 0x1af4 1af4:1050 at 0000:00:02.0, driver virtio-pci' in message
    assert message.startswith('display device 1234:1111 has no compute stack; display device 1af4:1050 has no')
    assert records['gpu_cpu_fallback']['figures'] == {'display_devices': 2, 'device_nodes': 0}


# ---------------------------------------------------------------- NVIDIA

def test_nvidia_t4_with_driver_tool_and_nodes_passes_everything(tmp_path):
    records = checks_of(nvidia_host(tmp_path))
    assert list(records) == ['gpu_devices', 'gpu_driver', 'gpu_tool', 'gpu_device_nodes', 'gpu_versions', 'gpu_reboot']
    assert all(record['passed'] for record in records.values()), records
    assert records['gpu_devices']['message'] == 'NVIDIA 10de:1eb8 at 0000:00:1e.0 (Tesla T4)'
    assert records['gpu_devices']['figures'] == {'gpus': 1, 'memory_total_mib': 15360}
    assert records['gpu_driver']['message'] == '0000:00:1e.0 bound to nvidia, module loaded'
    assert records['gpu_tool']['message'] == 'nvidia-smi reports 0000:00:1e.0'
    assert records['gpu_versions']['message'] == 'driver 515.105.01, CUDA 11.7'
    assert records['gpu_versions']['figures'] == {'driver_versions': 1, 'driver_major': 515}
    assert records['gpu_reboot']['message'] == 'no reboot pending'
    assert_records(records)


def test_nvidia_without_its_driver_bound_fails_and_needs_a_reboot(tmp_path):
    # The desktop GT 1030 has no driver bound (its lspci capture): the driver was just
    # installed, the host not yet rebooted into it.
    result = facts(tmp_path, 'desktop-uhd630-gt1030')
    records = checks_of(result, installed=True)
    assert not records['gpu_driver']['passed']
    assert records['gpu_driver']['message'] == 'NVIDIA 10de:1d01 at 0000:01:00.0 has no driver bound (nvidia expected)'
    assert records['gpu_reboot']['passed'] is False
    assert records['gpu_reboot']['message'] == (
        'reboot required: NVIDIA 10de:1d01 at 0000:01:00.0 has no driver bound (nvidia expected) '
        '(set gpu_reboot_allowed to let the role reboot)')
    assert not records['gpu_tool']['passed'] and records['gpu_tool']['message'] == 'nvidia-smi is not installed (not in PATH)'
    # The Intel iGPU beside it is not the stack's: only the NVIDIA device is judged.
    assert records['gpu_devices']['figures'] == {'gpus': 1}


def test_nvidia_bound_to_nouveau_fails_naming_it(tmp_path):
    result = nvidia_host(tmp_path)
    result['gpus'][0]['driver'] = 'nouveau'
    records = checks_of(result)
    assert records['gpu_driver']['message'] == 'NVIDIA 10de:1eb8 at 0000:00:1e.0 is bound to nouveau, not nvidia'
    assert 'is bound to nouveau, not nvidia' in records['gpu_reboot']['message']


def test_nvidia_module_not_loaded_fails(tmp_path):
    result = nvidia_host(tmp_path)
    result['gpus'][0]['modules'] = []
    records = checks_of(result)
    assert not records['gpu_driver']['passed']
    assert records['gpu_driver']['message'].endswith('is bound to nvidia, but module nvidia is not loaded')


def test_nvidia_smi_failing_fails_the_tool_and_version_checks(tmp_path):
    result = nvidia_host(tmp_path, tool=False)
    result['tools']['nvidia-smi'] = 'failed'
    result['warnings'] = ['nvidia-smi -q -x failed (rc 9): NVIDIA-SMI has failed because it couldn\'t communicate '
                          'with the NVIDIA driver']
    records = checks_of(result)
    assert not records['gpu_tool']['passed']
    assert records['gpu_tool']['message'].startswith('nvidia-smi failed: nvidia-smi -q -x failed (rc 9): NVIDIA-SMI')
    assert not records['gpu_versions']['passed']
    assert records['gpu_versions']['message'] == 'nvidia-smi reports no driver version for 0000:00:1e.0'


def test_nvidia_smi_malformed_output_fails_the_tool_check(tmp_path):
    result = facts(tmp_path, 'tesla-t4-aws', {'nvidia-smi': '<html>'}, fixture_text('modules', 'azure-nvidia-lsmod.txt'),
                   NVIDIA_NODES)
    records = checks_of(result)
    assert records['gpu_tool']['message'].startswith('nvidia-smi printed what cannot be read: nvidia-smi -q -x: output')


def test_missing_nvidia_device_nodes_fail_naming_them(tmp_path):
    records = checks_of(nvidia_host(tmp_path, nodes=('nvidia-uvm',)))
    check = records['gpu_device_nodes']
    assert not check['passed'] and check['message'] == '0000:00:1e.0 lacks /dev/nvidiactl, /dev/nvidia<N>'


def test_reboot_required_after_a_driver_change_even_when_bound(tmp_path):
    records = checks_of(nvidia_host(tmp_path), installed=True, changed=True)
    assert not records['gpu_reboot']['passed']
    assert records['gpu_reboot']['message'].startswith(
        'reboot required: the driver (cuda-drivers) or the nouveau blacklist changed under the running kernel')
    assert records['gpu_driver']['passed']


def test_after_the_role_rebooted_the_check_says_so(tmp_path):
    records = checks_of(nvidia_host(tmp_path), rebooted=True)
    assert records['gpu_reboot']['passed'] and records['gpu_reboot']['message'] == 'rebooted into the new driver'
    assert records['gpu_reboot']['figures'] == {'rebooted': 1}


# ---------------------------------------------------------------- AMD

def test_amd_with_rocm_smi_kfd_and_render_node_passes(tmp_path):
    # The device's render node is tied to it through its sysfs drm directory, as amdgpu makes it.
    result = amd_host(tmp_path, nodes=('kfd', 'dri/renderD128'), render=('0000:07:00.0', 'renderD128'))
    records = checks_of(result)
    assert all(record['passed'] for record in records.values()), records
    assert records['gpu_devices']['message'] == 'AMD 1002:73df at 0000:07:00.0 (Navi 22 [Radeon RX 6700/6700 XT / 6800M])'
    assert records['gpu_tool']['message'] == 'rocm-smi reports 0000:07:00.0'
    assert records['gpu_versions']['message'] == 'driver 6.3.6'
    assert_records(records)


def test_amd_without_kfd_or_render_node_fails(tmp_path):
    records = checks_of(amd_host(tmp_path, nodes=()))
    assert records['gpu_device_nodes']['message'] == '0000:07:00.0 lacks /dev/kfd, its /dev/dri/renderD* node'


# ---------------------------------------------------------------- the whole list

@pytest.mark.parametrize('dump', ['cpu-only-ci', 'qemu-display', 'tesla-t4-aws', 'rx6700xt', 'desktop-uhd630-gt1030'])
def test_every_fixture_gives_valid_records(tmp_path, dump):
    records = checks_of(facts(tmp_path, dump))
    assert_records(records)
    for record in records.values():
        assert set(record) <= {'name', 'category', 'description', 'passed', 'message', 'figures', 'skip_reason'}
        assert record['message'] or record.get('skip_reason')
