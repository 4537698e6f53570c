# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every (distribution family, stack) choice of module_utils/gpu_stack.py, written out in full so
that a change to the data shows here; cpu installs nothing; unknown values are named."""

from __future__ import annotations

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.gpu_stack import (
    FAMILIES, StackChoiceError, apt_source, container_choice, distribution, host_plan, stack_choice)

CUDA = 'https://developer.download.nvidia.com/compute/cuda/repos/%s/x86_64/'
ROCM_KEY = 'https://repo.radeon.com/rocm/rocm.gpg.key'
INTEL_KEY = 'https://repositories.intel.com/gpu/intel-graphics.key'


AMDGPU = 'https://repo.radeon.com/amdgpu/6.2/'


@pytest.mark.parametrize('family, stack, driver, runtime, repository, key, nouveau', [
    ('Debian', 'cuda', ['cuda-drivers'], ['cuda-toolkit'], CUDA % 'debian12', CUDA % 'debian12' + '3bf863cc.pub', True),
    ('Ubuntu', 'cuda', ['cuda-drivers'], ['cuda-toolkit'], CUDA % 'ubuntu2204', CUDA % 'ubuntu2204' + '3bf863cc.pub',
     True),
    ('RHEL', 'cuda', ['cuda-drivers'], ['cuda-toolkit'], CUDA % 'rhel9', CUDA % 'rhel9' + 'D42D0685.pub', True),
    ('Debian', 'rocm', ['amdgpu-dkms'], ['rocm'], 'https://repo.radeon.com/rocm/apt/6.2 jammy main', ROCM_KEY, False),
    ('Ubuntu', 'rocm', ['amdgpu-dkms'], ['rocm'], 'https://repo.radeon.com/rocm/apt/6.2 jammy main', ROCM_KEY, False),
    ('RHEL', 'rocm', ['amdgpu-dkms'], ['rocm'], 'https://repo.radeon.com/rocm/el9/6.2/main', ROCM_KEY, False),
    ('Debian', 'oneapi', [], ['intel-opencl-icd', 'libze1'], None, None, False),
    ('Ubuntu', 'oneapi', [], ['intel-opencl-icd', 'intel-level-zero-gpu', 'level-zero'],
     'https://repositories.intel.com/gpu/ubuntu jammy unified', INTEL_KEY, False),
    ('RHEL', 'oneapi', [], ['intel-opencl', 'intel-level-zero-gpu', 'level-zero'],
     'https://repositories.intel.com/gpu/rhel/9.4/unified/', INTEL_KEY, False),
])
def test_every_family_and_vendor(family, stack, driver, runtime, repository, key, nouveau):
    assert stack_choice(family, stack) == {
        'family': family, 'stack': stack, 'driver_packages': driver, 'runtime_packages': runtime,
        'repository': repository, 'key_url': key, 'blacklist_nouveau': nouveau,
        # ROCm's driver (amdgpu-dkms) is in AMD's amdgpu repository, not in the ROCm one.
        'driver_repository': {('Debian', 'rocm'): AMDGPU + 'ubuntu jammy main', ('Ubuntu', 'rocm'): AMDGPU + 'ubuntu jammy main',
                              ('RHEL', 'rocm'): AMDGPU + 'el/9.4/main/x86_64/'}.get((family, stack))}


@pytest.mark.parametrize('family', ['Debian', 'Ubuntu', 'RHEL'])
def test_cpu_installs_nothing_vendor_specific(family):
    assert stack_choice(family, 'cpu') == {
        'family': family, 'stack': 'cpu', 'driver_packages': [], 'runtime_packages': [], 'repository': None,
        'key_url': None, 'driver_repository': None, 'blacklist_nouveau': False}


def test_only_nvidia_blacklists_nouveau():
    assert [(f, s) for f in ('Debian', 'Ubuntu', 'RHEL') for s in ('cuda', 'rocm', 'oneapi', 'cpu')
            if stack_choice(f, s)['blacklist_nouveau']] == [('Debian', 'cuda'), ('Ubuntu', 'cuda'), ('RHEL', 'cuda')]


def test_a_choice_is_a_copy():
    stack_choice('Debian', 'cuda')['driver_packages'].append('x')
    assert stack_choice('Debian', 'cuda')['driver_packages'] == ['cuda-drivers']


@pytest.mark.parametrize('family, stack, message', [
    ('Suse', 'cuda', "gpu stack: distribution family 'Suse' is not one of Debian, Ubuntu, RHEL"),
    ('Debian', 'metal', "gpu stack: stack 'metal' is not one of cuda, rocm, oneapi, cpu"),
])
def test_unknown_values_are_named(family, stack, message):
    with pytest.raises(StackChoiceError) as exc:
        stack_choice(family, stack)
    assert str(exc.value) == message


# ---------------------------------------------------------------- the host's distribution

@pytest.mark.parametrize('text, expected', [
    # Debian 12 as this project's CI host writes it (/etc/os-release, verbatim lines).
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n', ('debian', '12', 'Debian')),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n', ('ubuntu', '22.04', 'Ubuntu')),
    # A derivative of Ubuntu names ubuntu before debian: Ubuntu's repositories serve it.
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\n', ('linuxmint', '21.3', 'Ubuntu')),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n', ('rocky', '9.4', 'RHEL')),
    ('ID=arch\n', ('arch', None, None)),
    ('', (None, None, None)),
])
def test_distribution_family_from_os_release(text, expected):
    found = distribution(text)
    assert (found['id'], found['version_id'], found['family']) == expected


# ---------------------------------------------------------------- containers

TOOLKIT = 'https://nvidia.github.io/libnvidia-container/'


@pytest.mark.parametrize('family, repository', [
    ('Debian', TOOLKIT + 'stable/deb/$(ARCH)'), ('Ubuntu', TOOLKIT + 'stable/deb/$(ARCH)'),
    ('RHEL', TOOLKIT + 'stable/rpm/$basearch')])
def test_cuda_containers_get_the_nvidia_toolkit(family, repository):
    assert container_choice(family, 'cuda') == {
        'packages': ['nvidia-container-toolkit'], 'repository': repository, 'key_url': TOOLKIT + 'gpgkey',
        'runtime': 'nvidia', 'binary': 'nvidia-container-runtime', 'note': ''}


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('stack', ['rocm', 'oneapi', 'cpu'])
def test_other_stacks_need_no_container_runtime(family, stack):
    choice = container_choice(family, stack)
    assert (choice['packages'], choice['repository'], choice['runtime']) == ([], None, None) and choice['note']


# ---------------------------------------------------------------- the role's plan for a host

def host_facts(stack, family='Debian', gpus=(), reason='why'):
    return {'recommended_stack': stack, 'stack_reason': reason, 'gpus': list(gpus),
            'distribution': {'id': 'x', 'version_id': '1', 'family': family}}


T4 = {'address': '0000:00:1e.0', 'vendor': 'NVIDIA', 'vendor_id': '0x10de', 'device_id': '0x1eb8',
      'compute_stack': 'cuda', 'driver': 'nvidia', 'modules': ['nvidia']}


@pytest.mark.parametrize('family', list(FAMILIES) + [None])
def test_a_cpu_host_installs_nothing_on_any_distribution(family):
    plan = host_plan(host_facts('cpu', family, reason='no GPU: CPU fallback'), container_runtime=True,
                     installed=True, changed=True)
    assert plan == {'stack': 'cpu', 'family': family, 'reason': 'no GPU: CPU fallback', 'driver_packages': [],
                    'runtime_packages': [], 'container': None, 'sources': [], 'blacklist_nouveau': False,
                    'initramfs_command': None, 'reboot_reason': ''}


@pytest.mark.parametrize('family, stack, apt, baseurl', [
    ('Debian', 'cuda', 'deb [signed-by=/etc/apt/keyrings/aicluster-gpu-cuda.asc] ' + CUDA % 'debian12' + ' /', None),
    ('Ubuntu', 'cuda', 'deb [signed-by=/etc/apt/keyrings/aicluster-gpu-cuda.asc] ' + CUDA % 'ubuntu2204' + ' /', None),
    ('RHEL', 'cuda', None, CUDA % 'rhel9'),
    ('Debian', 'rocm', 'deb [signed-by=/etc/apt/keyrings/aicluster-gpu-rocm.asc] '
                       'https://repo.radeon.com/rocm/apt/6.2 jammy main', None),
    ('Ubuntu', 'rocm', 'deb [signed-by=/etc/apt/keyrings/aicluster-gpu-rocm.asc] '
                       'https://repo.radeon.com/rocm/apt/6.2 jammy main', None),
    ('RHEL', 'rocm', None, 'https://repo.radeon.com/rocm/el9/6.2/main'),
    ('Ubuntu', 'oneapi', 'deb [signed-by=/etc/apt/keyrings/aicluster-gpu-oneapi.asc] '
                         'https://repositories.intel.com/gpu/ubuntu jammy unified', None),
    ('RHEL', 'oneapi', None, 'https://repositories.intel.com/gpu/rhel/9.4/unified/'),
])
def test_every_family_and_stack_gets_its_source(family, stack, apt, baseurl):
    plan = host_plan(host_facts(stack, family))
    choice = stack_choice(family, stack)
    source = plan['sources'][0]
    assert (source['apt'], source['baseurl'], source['key_url']) == (apt, baseurl, choice['key_url'])
    assert source['name'] == 'aicluster-gpu-%s' % stack
    assert len(plan['sources']) == (2 if stack == 'rocm' else 1), plan['sources']
    assert (plan['driver_packages'], plan['runtime_packages']) == (choice['driver_packages'], choice['runtime_packages'])
    assert plan['blacklist_nouveau'] is (stack == 'cuda')
    assert plan['initramfs_command'] == (['dracut', '--force'] if family == 'RHEL' else ['update-initramfs', '-u'])


@pytest.mark.parametrize('family, apt, baseurl', [
    ('Debian', 'deb [signed-by=/etc/apt/keyrings/aicluster-gpu-rocm-driver.asc] '
               'https://repo.radeon.com/amdgpu/6.2/ubuntu jammy main', None),
    ('RHEL', None, 'https://repo.radeon.com/amdgpu/6.2/el/9.4/main/x86_64/'),
])
def test_rocm_gets_the_amdgpu_repository_for_its_driver(family, apt, baseurl):
    driver = host_plan(host_facts('rocm', family))['sources'][1]
    assert (driver['name'], driver['apt'], driver['baseurl']) == ('aicluster-gpu-rocm-driver', apt, baseurl)
    assert driver['key_url'] == ROCM_KEY


def test_debian_oneapi_needs_no_repository():
    plan = host_plan(host_facts('oneapi', 'Debian'))
    assert plan['sources'] == [] and plan['runtime_packages'] == ['intel-opencl-icd', 'libze1']


def test_container_runtime_adds_the_toolkit_repository():
    plan = host_plan(host_facts('cuda', 'Ubuntu'), container_runtime=True)
    assert [source['name'] for source in plan['sources']] == ['aicluster-gpu-cuda', 'aicluster-gpu-container']
    assert plan['sources'][1]['apt'] == ('deb [signed-by=/etc/apt/keyrings/aicluster-gpu-container.asc] '
                                         + TOOLKIT + 'stable/deb/$(ARCH) /')
    assert plan['container']['packages'] == ['nvidia-container-toolkit']


def test_a_stack_on_an_unknown_distribution_is_refused_naming_it():
    facts = host_facts('cuda', None, reason='NVIDIA 10de:1eb8 at 0000:00:1e.0: cuda')
    facts['distribution']['id'] = 'arch'
    with pytest.raises(StackChoiceError, match=r"needs the cuda stack, but os-release ID 'arch' names no distribution"):
        host_plan(facts)


@pytest.mark.parametrize('driver, modules, installed, changed, reason', [
    ('nvidia', ['nvidia'], True, False, ''),
    ('nvidia', ['nvidia'], True, True, 'the driver (cuda-drivers) or the nouveau blacklist changed under the running kernel'),
    (None, [], True, False, 'NVIDIA 10de:1eb8 at 0000:00:1e.0 has no driver bound (nvidia expected)'),
    ('nouveau', ['nouveau'], True, False, 'NVIDIA 10de:1eb8 at 0000:00:1e.0 is bound to nouveau, not nvidia'),
    # Without the driver packages on the host a reboot cannot help: no reason to reboot.
    (None, [], False, False, ''),
])
def test_reboot_reason(driver, modules, installed, changed, reason):
    facts = host_facts('cuda', gpus=[dict(T4, driver=driver, modules=modules)])
    assert host_plan(facts, installed=installed, changed=changed)['reboot_reason'] == reason


def test_apt_source_of_a_flat_and_a_suite_repository():
    assert apt_source('https://x/y/', '/k.asc') == 'deb [signed-by=/k.asc] https://x/y/ /'
    assert apt_source('https://x/y jammy main', '/k.asc') == 'deb [signed-by=/k.asc] https://x/y jammy main'
