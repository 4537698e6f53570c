# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU facts on real captures: sysfs trees (fixtures/gpu/sysfs, built by gpu_sysfs), nvidia-smi
XML and rocm-smi JSON from real hosts, lsmod from an Azure NVIDIA VM. fixtures/gpu/README.md
names where each comes from; values a test builds itself are said to be so where they appear.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import gpu
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.gpu_sysfs import build_sysfs, fixture_text, gather


def facts(tmp_path, dump, tools=None, modules='', dev_root=None):
    root = build_sysfs(dump, tmp_path / 'sys')
    return gather(root, modules, dev_root or tmp_path / 'dev', tools)


# ---------------------------------------------------------------- hosts

def test_cpu_only_host_falls_back_to_the_cpu(tmp_path):
    result = facts(tmp_path, 'cpu-only-ci')
    assert result['gpus'] == []
    assert (result['recommended_stack'], result['stack_reason']) == ('cpu', 'no GPU: CPU fallback')
    assert result['tools'] == {'nvidia-smi': 'absent', 'rocm-smi': 'absent', 'xpu-smi': 'absent'}
    assert result['warnings'] == [] and result['device_nodes'] == []


def test_nvidia_t4_with_nvidia_smi(tmp_path):
    result = facts(tmp_path, 'tesla-t4-aws', {'nvidia-smi': fixture_text('nvidia-smi', 'tesla-t4.xml')},
                   modules=fixture_text('modules', 'azure-nvidia-lsmod.txt'))
    assert result['recommended_stack'] == 'cuda'
    assert result['stack_reason'] == 'NVIDIA 10de:1eb8 at 0000:00:1e.0: cuda'
    assert result['loaded_modules'] == ['nvidia', 'nvidia_drm', 'nvidia_modeset']
    [t4] = result['gpus']
    assert t4 == {
        'address': '0000:00:1e.0', 'vendor_id': '0x10de', 'vendor': 'NVIDIA', 'device_id': '0x1eb8',
        'class': '0x030200', 'kind': 'display', 'driver': 'nvidia', 'iommu_group': None, 'numa_node': None,
        'link': {'current_speed': '8.0 GT/s PCIe', 'current_width': 8, 'max_speed': '8.0 GT/s PCIe', 'max_width': 16},
        'integrated': False, 'compute_stack': 'cuda', 'modules': ['nvidia', 'nvidia_drm', 'nvidia_modeset'],
        'device_nodes': [],
        'tool': {'tool': 'nvidia-smi', 'product_name': 'Tesla T4', 'memory_total_mib': 15360,
                 'driver_version': '515.105.01', 'cuda_version': '11.7', 'ecc_mode': 'Enabled', 'mig_mode': None},
    }
    assert result['warnings'] == []


def test_nvidia_device_nodes_are_the_vendors(tmp_path):
    # The /dev entries are made here: no capture of a GPU host's /dev was found.
    dev = tmp_path / 'dev'
    (dev / 'dri').mkdir(parents=True)
    for name in ('nvidia0', 'nvidiactl', 'nvidia-uvm', 'kfd', 'dri/renderD128'):
        (dev / name).write_text('')
    result = facts(tmp_path, 'tesla-t4-aws', dev_root=dev)
    assert result['device_nodes'] == sorted(str(dev / name) for name in
                                            ('nvidia0', 'nvidiactl', 'nvidia-uvm', 'kfd', 'dri/renderD128'))
    assert result['gpus'][0]['device_nodes'] == sorted(str(dev / name) for name in ('nvidia0', 'nvidiactl', 'nvidia-uvm'))


def test_desktop_nvidia_without_driver_beside_intel_integrated(tmp_path):
    result = facts(tmp_path, 'desktop-uhd630-gt1030')
    assert [(g['address'], g['vendor'], g['integrated'], g['compute_stack'], g['driver'], g['iommu_group'])
            for g in result['gpus']] == [
        ('0000:00:02.0', 'Intel', True, None, 'i915', 0),
        ('0000:01:00.0', 'NVIDIA', False, 'cuda', None, 2)]
    assert result['recommended_stack'] == 'cuda'
    assert result['stack_reason'] == 'NVIDIA 10de:1d01 at 0000:01:00.0 (no driver bound yet: 0000:01:00.0): cuda'


def test_desktop_sysfs_agrees_with_its_lspci_captures(tmp_path):
    """The desktop tree was built from lspci -nnkq and the IOMMU listing: each kept device's
    class, ids, driver and group must be what lspci printed."""
    result = facts(tmp_path, 'desktop-uhd630-gt1030')
    lspci = fixture_text('lspci', 'desktop-uhd630-gt1030-nnkq.txt')
    groups = fixture_text('lspci', 'desktop-uhd630-gt1030-iommu.txt')
    for device in result['gpus']:
        short = device['address'][5:]
        header = re.search(r'^%s .*\[(\w{4})\]: .*\[(\w{4}):(\w{4})\]' % re.escape(short), lspci, re.M)
        assert '0x%s00' % header.group(1) == device['class']
        assert ('0x' + header.group(2), '0x' + header.group(3)) == (device['vendor_id'], device['device_id'])
        block = lspci[header.end():].split('\n0')[0]
        in_use = re.search(r'Kernel driver in use: (\S+)', block)
        assert (in_use.group(1) if in_use else None) == device['driver']
        assert re.search(r'^IOMMU group (\d+) %s ' % re.escape(short), groups, re.M).group(1) == str(device['iommu_group'])


def test_amd_with_rocm_smi(tmp_path):
    result = facts(tmp_path, 'rx6700xt', {'rocm-smi': fixture_text('rocm-smi', 'rx6700xt-rocm612.json')})
    [card] = result['gpus']
    assert (card['vendor'], card['numa_node'], card['link']['max_width'], card['compute_stack']) == ('AMD', 0, 16, 'rocm')
    assert card['tool'] == {'tool': 'rocm-smi', 'card': 'card0',
                            'product_name': 'Navi 22 [Radeon RX 6700/6700 XT / 6800M]',
                            'memory_total_mib': 12272, 'driver_version': '6.3.6'}
    assert (result['recommended_stack'], result['stack_reason']) == ('rocm', 'AMD 1002:73df at 0000:07:00.0: rocm')


def test_rocm_smi_cards_that_sysfs_does_not_list_are_warned_about(tmp_path):
    # The MI100 capture's four cards against the RX 6700 XT's tree: nothing matches.
    result = facts(tmp_path, 'rx6700xt', {'rocm-smi': fixture_text('rocm-smi', 'mi100-rocm602.json')})
    assert result['gpus'][0]['tool'] is None
    assert result['warnings'] == ['rocm-smi reports a GPU at %s that sysfs does not list' % address
                                  for address in ('0000:83:00.0', '0000:a3:00.0', '0000:c3:00.0', '0000:e3:00.0')]


def test_other_vendor_display_devices_fall_back_to_the_cpu(tmp_path):
    result = facts(tmp_path, 'qemu-display')
    assert [(g['address'], g['kind'], g['vendor'], g['compute_stack']) for g in result['gpus']] == [
        ('0000:00:01.0', 'display', None, None), ('0000:00:02.0', 'display', None, None)]
    assert result['recommended_stack'] == 'cpu'
    assert result['stack_reason'] == ('display device 1234:1111 has no compute stack; '
                                      'display device 1af4:1050 has no compute stack: CPU fallback')


def test_intel_integrated_alone_falls_back_to_the_cpu(tmp_path):
    gpus = [g for g in facts(tmp_path, 'desktop-uhd630-gt1030')['gpus'] if g['vendor'] == 'Intel']
    assert gpu.recommend(gpus) == (
        'cpu', 'Intel integrated graphics 8086:3e92 at 0000:00:02.0 is not a oneAPI target: CPU fallback')


def test_intel_discrete_recommends_oneapi():
    # Built here from the xpu-smi capture's figures (device 0x0bda at 0000:29:00.0, an Intel
    # Data Center GPU Max 1100): no sysfs capture of a discrete Intel GPU was found.
    device = {'address': '0000:29:00.0', 'vendor_id': '0x8086', 'device_id': '0x0bda', 'driver': 'i915'}
    device['compute_stack'] = gpu.compute_stack(device)
    assert gpu.recommend([device]) == ('oneapi', 'Intel 8086:0bda at 0000:29:00.0: oneapi')


def test_mixed_vendors_name_the_ones_left_out():
    nvidia = {'address': '0000:01:00.0', 'vendor_id': '0x10de', 'device_id': '0x1eb8', 'driver': 'nvidia',
              'compute_stack': 'cuda'}
    amd = {'address': '0000:07:00.0', 'vendor_id': '0x1002', 'device_id': '0x73df', 'driver': 'amdgpu',
           'compute_stack': 'rocm'}
    assert gpu.recommend([amd, nvidia]) == (
        'cuda', 'NVIDIA 10de:1eb8 at 0000:01:00.0: cuda; AMD GPUs also present are not served by it')


# ---------------------------------------------------------------- tools

@pytest.mark.parametrize('name, address, expected', [
    ('a100-sxm4-80gb.xml', '0000:01:00.0',
     {'product_name': 'NVIDIA A100-SXM4-80GB', 'memory_total_mib': 81920, 'driver_version': '535.54.03',
      'cuda_version': '12.2', 'ecc_mode': 'Enabled', 'mig_mode': 'Enabled'}),
    ('rtx-3080.xml', '0000:0c:00.0',
     {'product_name': 'NVIDIA GeForce RTX 3080', 'memory_total_mib': 10240, 'driver_version': '595.58.03',
      'cuda_version': '13.2', 'ecc_mode': None, 'mig_mode': None}),
])
def test_nvidia_smi_figures(name, address, expected):
    parsed = gpu.parse_nvidia_smi(fixture_text('nvidia-smi', name))
    assert list(parsed) == [address]
    expected['tool'] = 'nvidia-smi'
    assert parsed[address] == expected


def test_rocm_smi_figures_of_four_cards():
    parsed, warnings = gpu.parse_rocm_smi(fixture_text('rocm-smi', 'mi100-rocm602.json'))
    assert warnings == []
    assert sorted(parsed) == ['0000:83:00.0', '0000:a3:00.0', '0000:c3:00.0', '0000:e3:00.0']
    assert parsed['0000:83:00.0'] == {'tool': 'rocm-smi', 'card': 'card0',
                                      'product_name': 'Arcturus GL-XL [Instinct MI100]',
                                      'memory_total_mib': 32752, 'driver_version': '6.3.6'}


def test_rocm_smi_warning_lines_before_the_json_are_skipped():
    text = ('WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n\n'
            + fixture_text('rocm-smi', 'rx6700xt-rocm612.json'))
    assert list(gpu.parse_rocm_smi(text)[0]) == ['0000:07:00.0']


def test_rocm_smi_card_without_bus_is_named_not_guessed():
    parsed, warnings = gpu.parse_rocm_smi('{"card0": {"Card Series": "x"}, "system": {}}')
    assert parsed == {}
    assert warnings == ['rocm-smi: card0 has no "PCI Bus"; its figures are not tied to a device']


def test_xpu_smi_discovery_keys():
    # The key names xpu-smi writes (ial/cmn/cmd_discovery.cpp); no citable capture was found.
    text = ('{"device_list": [{"device_id": 0, "device_name": "Intel(R) Data Center GPU Max 1100", '
            '"pci_bdf_address": "0000:29:00.0", "drm_device": "/dev/dri/card1", '
            '"device_function_type": "physical", "unknown_field": 1}]}')
    assert gpu.parse_xpu_smi(text) == {'0000:29:00.0': {
        'tool': 'xpu-smi', 'product_name': 'Intel(R) Data Center GPU Max 1100', 'drm_device': '/dev/dri/card1',
        'function_type': 'physical'}}


@pytest.mark.parametrize('tool, text, message', [
    ('nvidia-smi', fixture_text('nvidia-smi', 'tesla-t4.xml')[:2000], 'nvidia-smi -q -x: output is not XML'),
    ('nvidia-smi', '<html><body>error</body></html>', 'nvidia-smi -q -x: root element is <html>'),
    ('rocm-smi', 'ERROR: GPU[0] : Unable to open', 'rocm-smi: no JSON object in its output'),
    ('rocm-smi', fixture_text('rocm-smi', 'rx6700xt-rocm612.json')[:500], 'rocm-smi: output is not JSON'),
    ('rocm-smi', '{"card0": "N/A"}', 'rocm-smi: card0 is a str, not an object'),
    ('xpu-smi', '{"errno": 3, "error": "Level Zero Initialization Error"}',
     'xpu-smi discovery -j: no "device_list" list'),
])
def test_malformed_output_is_a_warning_naming_the_tool(tmp_path, tool, text, message):
    with pytest.raises(gpu.ToolOutputError, match=re.escape(message)):
        gpu.parse_tool(tool, text)
    result = facts(tmp_path, 'tesla-t4-aws', {tool: text})
    assert result['tools'][tool] == 'malformed'
    assert result['warnings'][0].startswith(message)
    assert result['recommended_stack'] == 'cuda'


@pytest.mark.parametrize('given, expected', [
    ('00000000:01:00.0', '0000:01:00.0'), ('0000:A3:00.0', '0000:a3:00.0'), ('01:00.0', '0000:01:00.0'),
    ('0000:00:1E.0', '0000:00:1e.0'),
])
def test_addresses_are_spelled_as_sysfs_spells_them(given, expected):
    assert gpu.normalise_address(given) == expected


@pytest.mark.parametrize('pci_class, kind', [
    ('0x030000', 'display'), ('0x030200', 'display'), ('0x038000', 'display'), ('0x120000', 'accelerator'),
    ('0x040300', None), ('0xffff00', None), (None, None), ('garbage', None),
])
def test_class_kinds(pci_class, kind):
    assert gpu.class_kind(pci_class) == kind
