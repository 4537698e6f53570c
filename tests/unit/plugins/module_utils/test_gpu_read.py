# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU read over plain sh (module_utils/gpu_read.py) against gpu_facts' own read (gpu.read_host):

* the script run with sh on this machine, whose sysfs is real, reads what gpu.read_host reads, and
  gather() judges both the same;
* the script run on temp trees built from the sysfs dumps of fixtures/gpu, with stand-in vendor
  tools printing the captured outputs, under paths with odd characters, with no PATH at all;
* the parser on the captured output of fixtures/gpu/read and on sections holding the captured
  tool outputs, and its refusals.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from ansible.module_utils.common.process import get_bin_path

from ansible_collections.aicluster.lab.plugins.module_utils import gpu, gpu_read, gpu_stack
from ansible_collections.aicluster.lab.tests.unit.plugins.module_utils.gpu_sysfs import (
    FIXTURES, build_sysfs, build_sysfs_lines, fixture_text)

# The stand-in tools run with the script's empty PATH.
CAT = shutil.which('cat')
SHELLS = [shell for shell in ('sh', 'dash', 'bash') if shutil.which(shell)]


def run_script(text, shell='sh', path=None):
    env = dict(os.environ, LC_ALL='C')
    if path is not None:
        env['PATH'] = path
    done = subprocess.run([shutil.which(shell), '-c', text], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=env, check=False, universal_newlines=True, timeout=120)
    assert done.returncode == 0 and done.stderr == '', done.stderr
    return done.stdout


def lines_of(read):
    """A read with its texts as lines (the script's sections end without the file's last newline)
    and its lists in order (the shell's globs follow the locale; gather() sorts)."""
    read = dict(read, modules=read['modules'].splitlines(), os_release=read['os_release'].splitlines(),
                pci=sorted(read['pci'], key=lambda entry: entry['address']), device_nodes=sorted(read['device_nodes']))
    read['tools'] = dict((tool, ran and dict(ran, stdout=ran['stdout'].strip(), stderr=ran['stderr'].strip()))
                         for tool, ran in read['tools'].items())
    return read


def run_tools_here():
    """The vendor tools of this machine, run as gpu_facts runs them."""
    ran = {}
    for tool, args in sorted(gpu.TOOL_COMMANDS.items()):
        try:
            path = get_bin_path(tool, opt_dirs=list(gpu.TOOL_DIRS))
        except ValueError:
            ran[tool] = None
            continue
        done = subprocess.run([path] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              check=False, universal_newlines=True, timeout=120)
        ran[tool] = {'rc': done.returncode, 'stdout': done.stdout, 'stderr': done.stderr}
    return ran


# ---------------------------------------------------------------- this machine

@pytest.mark.parametrize('shell', SHELLS)
def test_the_script_reads_this_machine_as_gpu_facts_does(shell):
    """The real /sys, /dev, /proc/modules and /etc/os-release: every PCI device's attributes and
    links (GPU or not), then the facts; the vendor tools are asked for (run where installed)."""
    output = run_script(gpu_read.script(vendor_tools=True), shell)
    parsed = gpu_read.parse(output)
    direct = gpu.read_host(tools=run_tools_here())
    assert lines_of(parsed) == lines_of(direct)
    assert gpu.gather(parsed) == gpu.gather(direct)
    if os.path.isdir('/sys/bus/pci/devices'):
        assert len(parsed['pci']) == len(os.listdir('/sys/bus/pci/devices'))


# ---------------------------------------------------------------- temp trees

ODD = "a root with spaces, 'quotes', \"double\", $HOME, `x`, \\n and %s"


@pytest.fixture(name='tree')
def fixture_tree(tmp_path):
    """host(dump, tools={name: fixture path, or (rc, stderr)}, modules=text, os_release=text,
    nodes=[...], render=(address, renderD name)) builds a host under a root whose name holds
    characters a shell would trip on, and returns its script's keyword arguments and the runs
    gpu_facts would have seen."""
    root = tmp_path / ODD
    root.mkdir()
    bin_dir = root / 'bin'
    bin_dir.mkdir()

    def _host(dump, tools=None, modules='', os_release='', nodes=(), render=None, lines=None):
        sysfs = build_sysfs_lines(lines, root / 'sys') if lines is not None else build_sysfs(dump, root / 'sys')
        (root / 'dev' / 'dri').mkdir(parents=True, exist_ok=True)
        for name in nodes:
            (root / 'dev' / name).write_text('')
        if render:
            (root / 'sys' / 'bus' / 'pci' / 'devices' / render[0] / 'drm' / render[1]).mkdir(parents=True)
        (root / 'modules').write_text(modules)
        (root / 'os-release').write_text(os_release)
        runs = {}
        for name, output in (tools or {}).items():
            script = bin_dir / name
            if isinstance(output, tuple):
                script.write_text('#!/bin/sh\necho "%s" >&2\nexit %d\n' % (output[1], output[0]))
                runs[name] = {'rc': output[0], 'stdout': '', 'stderr': output[1] + '\n'}
            else:
                script.write_text('#!/bin/sh\necho "$@" > %s\n%s %s\n' % (
                    shlex.quote('%s.args' % script), CAT, shlex.quote(str(FIXTURES / output))))
                runs[name] = {'rc': 0, 'stdout': (FIXTURES / output).read_text(), 'stderr': ''}
            os.chmod(str(script), 0o755)
        kwargs = dict(sysfs_root=sysfs, dev_root=str(root / 'dev'), proc_modules=str(root / 'modules'),
                      os_release=str(root / 'os-release'), tool_dirs=[str(bin_dir)])
        return kwargs, runs

    return _host


def direct(kwargs, runs, vendor_tools=True):
    return gpu.read_host(kwargs['sysfs_root'], kwargs['dev_root'], kwargs['proc_modules'], kwargs['os_release'],
                         runs if vendor_tools else None)


def assert_same(kwargs, runs, vendor_tools=True, shell='sh'):
    """The script, with no PATH (it starts no process but the tools, found in tool_dirs), against
    read_host; returns the facts."""
    parsed = gpu_read.parse(run_script(gpu_read.script(vendor_tools, **kwargs), shell, path=''))
    expected = direct(kwargs, runs, vendor_tools)
    assert lines_of(parsed) == lines_of(expected)
    facts = gpu.gather(parsed)
    assert facts == gpu.gather(expected)
    return facts


@pytest.mark.parametrize('shell', SHELLS)
@pytest.mark.parametrize('dump', ['cpu-only-ci', 'desktop-uhd630-gt1030', 'qemu-display', 'rx6700xt', 'tesla-t4-aws'])
def test_each_sysfs_dump_reads_the_same(tree, dump, shell):
    kwargs, runs = tree(dump)
    facts = assert_same(kwargs, runs, shell=shell)
    assert facts['tools'] == {'nvidia-smi': 'absent', 'rocm-smi': 'absent', 'xpu-smi': 'absent'}


def test_nvidia_host_with_nvidia_smi_modules_and_nodes(tree):
    kwargs, runs = tree('tesla-t4-aws', {'nvidia-smi': 'nvidia-smi/tesla-t4.xml'},
                        modules=fixture_text('modules', 'azure-nvidia-lsmod.txt'),
                        os_release='ID=debian\nVERSION_ID="12"\n',
                        nodes=('nvidia0', 'nvidiactl', 'nvidia-uvm', 'dri/renderD128'),
                        render=('0000:00:1e.0', 'renderD128'))
    facts = assert_same(kwargs, runs)
    [t4] = facts['gpus']
    assert (t4['tool']['product_name'], t4['modules']) == ('Tesla T4', ['nvidia', 'nvidia_drm', 'nvidia_modeset'])
    assert [os.path.relpath(node, kwargs['dev_root']) for node in t4['device_nodes']] == [
        'dri/renderD128', 'nvidia-uvm', 'nvidia0', 'nvidiactl']
    assert facts['distribution'] == {'id': 'debian', 'version_id': '12', 'family': 'Debian'}
    args = os.path.join(kwargs['tool_dirs'][0], 'nvidia-smi.args')
    with open(args) as handle:
        assert handle.read().split() == gpu.TOOL_COMMANDS['nvidia-smi']


def test_amd_host_with_rocm_smi_and_kfd(tree):
    kwargs, runs = tree('rx6700xt', {'rocm-smi': 'rocm-smi/rx6700xt-rocm612.json'},
                        modules='amdgpu 9814016 12 - Live 0x0000000000000000\n', nodes=('kfd',))
    facts = assert_same(kwargs, runs)
    assert (facts['recommended_stack'], facts['gpus'][0]['tool']['memory_total_mib']) == ('rocm', 12272)
    assert [os.path.basename(node) for node in facts['gpus'][0]['device_nodes']] == ['kfd']


def test_a_failing_and_a_malformed_tool_warn_the_same(tree, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"card0": {"PCI Bus": "0000:07:00.0",')
    kwargs, runs = tree('tesla-t4-aws', {
        'nvidia-smi': (9, 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'),
        'rocm-smi': str(bad)})
    facts = assert_same(kwargs, runs)
    assert facts['tools'] == {'nvidia-smi': 'failed', 'rocm-smi': 'malformed', 'xpu-smi': 'absent'}
    assert facts['warnings'][0] == ('nvidia-smi -q -x failed (rc 9): NVIDIA-SMI has failed because it could not '
                                    'communicate with the NVIDIA driver.')
    assert facts['warnings'][1].startswith('rocm-smi: output is not JSON')


def test_without_vendor_tools_none_is_looked_for(tree):
    kwargs, runs = tree('tesla-t4-aws', {'nvidia-smi': 'nvidia-smi/tesla-t4.xml'})
    assert 'nvidia-smi' not in gpu_read.script(False, **kwargs)
    facts = assert_same(kwargs, runs, vendor_tools=False)
    assert facts['tools']['nvidia-smi'] == 'absent'
    assert not os.path.exists(os.path.join(kwargs['tool_dirs'][0], 'nvidia-smi.args'))


def test_odd_values_missing_files_and_no_last_newline(tree):
    # Made here: values no sysfs writes, to show they pass through as read_host reads them.
    lines = ['0000:00:01.0/class:0x030000', '0000:00:01.0/vendor:0x1234', '0000:00:01.0/device:\\n %s $x `y`',
             '0000:00:01.0/current_link_speed:   8.0 GT/s PCIe  ', '0000:00:01.0/numa_node:',
             '0000:00:02.0/class:0x120000']
    kwargs, runs = tree(None, lines=lines, modules='nvidia 1 0 - Live 0x0', os_release='ID="ubuntu"')
    facts = assert_same(kwargs, runs)
    assert [device['device_id'] for device in facts['gpus']] == ['\\n %s $x `y`', '']
    assert facts['gpus'][0]['link']['current_speed'] == '8.0 GT/s PCIe'
    assert (facts['loaded_modules'], facts['distribution']['family']) == (['nvidia'], 'Ubuntu')


def test_no_pci_bus_and_no_files_at_all(tmp_path):
    kwargs = dict(sysfs_root=str(tmp_path / 'sys'), dev_root=str(tmp_path / 'dev'),
                  proc_modules=str(tmp_path / 'modules'), os_release=str(tmp_path / 'os-release'), tool_dirs=[])
    facts = assert_same(kwargs, {})
    assert facts['gpus'] == [] and facts['recommended_stack'] == 'cpu'
    assert facts['warnings'] == ['/sys/bus/pci is missing: no PCI bus to read, so no GPU is reported']
    assert facts['distribution'] == {'id': None, 'version_id': None, 'family': None}


def test_the_roots_must_be_absolute():
    with pytest.raises(gpu_read.GpuReadError, match="the sysfs path must be absolute, got 'sys'"):
        gpu_read.script(sysfs_root='sys')


# ---------------------------------------------------------------- the parser

def test_the_captured_output_of_a_cpu_only_host():
    read = gpu_read.parse(fixture_text('read', 'cpu-only-ci.txt'))
    assert read['pci_bus'] and read['modules'] == '' and read['device_nodes'] == []
    assert read['tools'] == {'nvidia-smi': None, 'rocm-smi': None, 'xpu-smi': None}
    facts = gpu.gather(read)
    assert (facts['gpus'], facts['recommended_stack'], facts['warnings']) == ([], 'cpu', [])
    assert facts['distribution'] == {'id': 'debian', 'version_id': '12', 'family': 'Debian'}


def test_the_captured_output_agrees_with_the_sysfs_dump_of_those_devices(tmp_path):
    """The same six devices captured twice, by the script and by the dump's commands."""
    read = gpu_read.parse(fixture_text('read', 'cpu-only-ci.txt'))
    assert read['pci'] == gpu.read_pci(build_sysfs('cpu-only-ci', tmp_path / 'sys'))


def output(*found):
    """Script output of (section, text) pairs, and its end."""
    return ''.join('### %s\n%s\n' % (name, text) for name, text in found) + '### end\n'


def test_captured_tool_outputs_in_their_sections():
    text = output(
        ('pci_bus', 'present'),
        ('pci', 'device 0000:00:1e.0\nattr class 0x030200\nattr vendor 0x10de\nattr device 0x1eb8\nlink driver nvidia'),
        ('tool:nvidia-smi:stdout', fixture_text('nvidia-smi', 'tesla-t4.xml')),
        ('tool:nvidia-smi:stderr', ''), ('tool:nvidia-smi:rc', '0'),
        ('tool:rocm-smi:stdout', 'WARNING: AMD GPU device(s) is/are in a low-power state.\n'
         + fixture_text('rocm-smi', 'mi100-rocm602.json')),
        ('tool:rocm-smi:stderr', ''), ('tool:rocm-smi:rc', '0'))
    read = gpu_read.parse(text)
    assert read['tools']['nvidia-smi']['stdout'].strip() == fixture_text('nvidia-smi', 'tesla-t4.xml').strip()
    facts = gpu.gather(read)
    assert facts['gpus'][0]['tool']['cuda_version'] == '11.7' and facts['gpus'][0]['driver'] == 'nvidia'
    assert facts['tools'] == {'nvidia-smi': 'read', 'rocm-smi': 'read', 'xpu-smi': 'absent'}
    assert facts['warnings'][0] == 'rocm-smi reports a GPU at 0000:83:00.0 that sysfs does not list'


@pytest.mark.parametrize('text, message', [
    (fixture_text('read', 'cpu-only-ci.txt').replace('### end\n', ''), 'the output stops before the script\'s end'),
    ('', 'the output stops before the script\'s end'),
    (output(('pci', 'attr class 0x030000')), "section pci: 'attr class 0x030000' comes before any device line"),
    (output(('pci', 'device 0000:00:01.0\nattr colour blue')), "'attr colour blue' is not a line the script prints"),
    (output(('pci', 'device 0000:00:01.0\nlink driver')), "'link driver' is not a line the script prints"),
    (output(('tool:xpu-smi:rc', 'Killed')), "xpu-smi exit status 'Killed' is not a number"),
    (None, 'the output must be text, got None'),
])
def test_output_that_is_not_the_scripts_is_refused(text, message):
    with pytest.raises(gpu_read.GpuReadError, match=message.replace('(', r'\(')):
        gpu_read.parse(text)


def test_the_module_and_the_script_name_the_same_files():
    text = gpu_read.script()
    for path in (gpu.SYSFS_ROOT, gpu.DEV_ROOT, gpu.PROC_MODULES, gpu_stack.OS_RELEASE) + gpu.TOOL_DIRS:
        assert path in text
    for tool, args in gpu.TOOL_COMMANDS.items():
        assert 'run_tool %s %s\n' % (tool, ' '.join(args)) in text
