# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_facts' main() in-process: sysfs, /proc/modules and /dev are temp trees built from the
captures in fixtures/gpu (see its README.md), and the vendor tools are stand-in scripts in a temp
PATH that print a captured output, or fail as a tool does without its driver. On each of those
hosts the roles' read (the gpu_read_script filter's script run with sh, parsed by the gpu_read
filter) must return what the module returns."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible.utils.display import Display

from ansible_collections.aicluster.lab.plugins.filter import gpu as filters
from ansible_collections.aicluster.lab.plugins.module_utils import gpu, gpu_read, gpu_stack
from ansible_collections.aicluster.lab.plugins.modules import gpu_facts
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.gpu_sysfs import FIXTURES, build_sysfs


def warnings(result):
    """Warning texts: ansible-core 2.19 returns events, older versions strings, and a process that
    has loaded controller code prints them to stderr instead (see test_libvirt_domain)."""
    found = [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]
    printed = [' '.join(line.split()) for line in result.get('_stderr', '').splitlines() if line.strip()]
    return found + [line[len('[WARNING]: '):] if line.startswith('[WARNING]: ') else line for line in printed]


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Point the module at temp trees; ``host(dump, tools={name: fixture path or (rc, stderr)})``."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    monkeypatch.setenv('PATH', '%s:/usr/bin:/bin' % bin_dir)
    monkeypatch.setattr(gpu_facts, 'EXTRA_PATHS', [])
    monkeypatch.setattr(gpu, 'DEV_ROOT', str(tmp_path / 'dev'))
    monkeypatch.setattr(gpu, 'PROC_MODULES', str(tmp_path / 'modules'))

    def _host(dump, tools=None, modules=None):
        monkeypatch.setattr(gpu, 'SYSFS_ROOT', build_sysfs(dump, tmp_path / 'sys'))
        if modules:
            (tmp_path / 'modules').write_text((FIXTURES / modules).read_text())
        for name, output in (tools or {}).items():
            script = bin_dir / name
            if isinstance(output, tuple):
                script.write_text('#!/bin/sh\necho "%s" >&2\nexit %d\n' % (output[1], output[0]))
            else:
                script.write_text('#!/bin/sh\necho "$@" > %s.args\ncat %s\n' % (bin_dir / name, FIXTURES / output))
            os.chmod(str(script), 0o755)
        return bin_dir

    return _host


def test_cpu_only_host(run_module, host):
    host('cpu-only-ci')
    result = run_module(gpu_facts, {})
    assert result['changed'] is False and 'failed' not in result
    assert (result['recommended_stack'], result['stack_reason']) == ('cpu', 'no GPU: CPU fallback')
    assert result['gpus'] == [] and result['loaded_modules'] == [] and result['device_nodes'] == []
    assert result['tools'] == {'nvidia-smi': 'absent', 'rocm-smi': 'absent', 'xpu-smi': 'absent'}
    assert warnings(result) == []


def test_nvidia_host_reads_nvidia_smi(run_module, host):
    bin_dir = host('tesla-t4-aws', {'nvidia-smi': 'nvidia-smi/tesla-t4.xml'}, modules='modules/azure-nvidia-lsmod.txt')
    result = run_module(gpu_facts, {}, check_mode=True)
    assert (bin_dir / 'nvidia-smi.args').read_text().split() == ['-q', '-x']
    assert result['recommended_stack'] == 'cuda'
    assert result['gpus'][0]['tool']['product_name'] == 'Tesla T4'
    assert result['gpus'][0]['modules'] == ['nvidia', 'nvidia_drm', 'nvidia_modeset']
    assert result['tools']['nvidia-smi'] == 'read'


def test_amd_host_reads_rocm_smi_with_its_bus(run_module, host):
    bin_dir = host('rx6700xt', {'rocm-smi': 'rocm-smi/rx6700xt-rocm612.json'})
    result = run_module(gpu_facts, {})
    assert '--showbus' in (bin_dir / 'rocm-smi.args').read_text().split()
    assert (result['recommended_stack'], result['gpus'][0]['tool']['memory_total_mib']) == ('rocm', 12272)


def test_intel_integrated_and_other_vendor_fall_back(run_module, host):
    host('qemu-display')
    result = run_module(gpu_facts, {})
    assert result['recommended_stack'] == 'cpu'
    assert result['stack_reason'].startswith('display device 1234:1111 has no compute stack')


def test_desktop_nvidia_beside_intel_integrated(run_module, host):
    host('desktop-uhd630-gt1030')
    result = run_module(gpu_facts, {})
    assert result['recommended_stack'] == 'cuda'
    assert [gpu_['integrated'] for gpu_ in result['gpus']] == [True, False]


def test_failing_tool_is_a_warning_not_a_failure(run_module, host):
    host('tesla-t4-aws', {'nvidia-smi': (9, 'NVIDIA-SMI has failed because it could not communicate with the '
                                            'NVIDIA driver.')})
    result = run_module(gpu_facts, {})
    assert 'failed' not in result
    assert result['tools']['nvidia-smi'] == 'failed'
    assert any('nvidia-smi -q -x failed (rc 9): NVIDIA-SMI has failed because it could not communicate with the '
               'NVIDIA driver.' in text for text in warnings(result))
    assert result['recommended_stack'] == 'cuda'


def test_malformed_tool_output_is_a_warning_naming_the_tool(run_module, host, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"card0": {"PCI Bus": "0000:07:00.0",')
    host('rx6700xt', {'rocm-smi': str(bad)})
    result = run_module(gpu_facts, {})
    assert result['tools']['rocm-smi'] == 'malformed'
    assert any('rocm-smi: output is not JSON' in text for text in warnings(result))
    assert result['gpus'][0]['tool'] is None


def test_vendor_tools_false_runs_none(run_module, host):
    bin_dir = host('tesla-t4-aws', {'nvidia-smi': 'nvidia-smi/tesla-t4.xml'})
    result = run_module(gpu_facts, {'vendor_tools': False})
    assert not (bin_dir / 'nvidia-smi.args').exists()
    assert result['tools']['nvidia-smi'] == 'absent' and result['gpus'][0]['tool'] is None


def test_distribution_from_os_release(run_module, host, tmp_path, monkeypatch):
    (tmp_path / 'os-release').write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n')
    monkeypatch.setattr(gpu_stack, 'OS_RELEASE', str(tmp_path / 'os-release'))
    host('cpu-only-ci')
    assert run_module(gpu_facts, {})['distribution'] == {'id': 'debian', 'version_id': '12', 'family': 'Debian'}
    monkeypatch.setattr(gpu_stack, 'OS_RELEASE', str(tmp_path / 'missing'))
    assert run_module(gpu_facts, {})['distribution'] == {'id': None, 'version_id': None, 'family': None}


def read_with_sh():
    """The gpu_read filter over the script run with sh on the module's roots and PATH."""
    script = gpu_read.script(True, gpu.SYSFS_ROOT, gpu.DEV_ROOT, gpu.PROC_MODULES, gpu_stack.OS_RELEASE, tool_dirs=[])
    done = subprocess.run(['sh', '-c', script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=True,
                          universal_newlines=True, timeout=120)
    return filters.gpu_read(done.stdout)


@pytest.mark.parametrize('dump, tools, modules', [
    ('cpu-only-ci', None, None),
    ('tesla-t4-aws', {'nvidia-smi': 'nvidia-smi/tesla-t4.xml'}, 'modules/azure-nvidia-lsmod.txt'),
    ('tesla-t4-aws', {'nvidia-smi': (9, 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA '
                                        'driver.')}, None),
    ('rx6700xt', {'rocm-smi': 'rocm-smi/rx6700xt-rocm612.json'}, None),
    ('rx6700xt', {'rocm-smi': 'rocm-smi/mi100-rocm602.json'}, None),
    ('desktop-uhd630-gt1030', None, None),
])
def test_the_gpu_read_filter_returns_what_the_module_returns(run_module, host, monkeypatch, dump, tools, modules):
    # Ansible prints a warning once per process: forget those of the tests before.
    monkeypatch.setattr(Display(), '_warns', set(), raising=False)
    host(dump, tools, modules=modules)
    result = run_module(gpu_facts, {})
    filtered = read_with_sh()
    assert filtered.pop('warnings') == warnings(result)
    for key in ('changed', 'invocation', 'warnings', '_stderr'):
        result.pop(key, None)
    assert result == filtered
