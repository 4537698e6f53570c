# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every (distribution family, stack) choice of module_utils/gpu_stack.py, written out in full so
that a change to the data shows here; cpu installs nothing; unknown values are named."""

from __future__ import annotations

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils.gpu_stack import StackChoiceError, stack_choice

CUDA = 'https://developer.download.nvidia.com/compute/cuda/repos/%s/x86_64/'
ROCM_KEY = 'https://repo.radeon.com/rocm/rocm.gpg.key'
INTEL_KEY = 'https://repositories.intel.com/gpu/intel-graphics.key'


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
        'repository': repository, 'key_url': key, 'blacklist_nouveau': nouveau}


@pytest.mark.parametrize('family', ['Debian', 'Ubuntu', 'RHEL'])
def test_cpu_installs_nothing_vendor_specific(family):
    assert stack_choice(family, 'cpu') == {
        'family': family, 'stack': 'cpu', 'driver_packages': [], 'runtime_packages': [], 'repository': None,
        'key_url': None, 'blacklist_nouveau': False}


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
