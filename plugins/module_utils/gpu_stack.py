# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which packages, repository and key each (distribution family, stack) needs: data, and the one
function that chooses from it. The gpu role (next) installs what stack_choice returns.

Sources, per vendor:
  * NVIDIA: the CUDA Installation Guide for Linux (12.x), network repository method: the
    repository per distribution under developer.download.nvidia.com/compute/cuda/repos, its
    signing key, the cuda-drivers and cuda-toolkit meta packages, and nouveau disabled before
    the driver loads.
  * AMD: ROCm's installation guide (6.2): the amdgpu-install and native package-manager
    methods, repo.radeon.com with rocm.gpg.key, amdgpu-dkms for the driver and the rocm meta
    package. ROCm publishes no Debian repository of its own: Debian 12 uses the Ubuntu 22.04
    (jammy) one, as ROCm's Debian instructions do.
  * Intel: Debian 12 ships the compute runtime in main (intel-opencl-icd 22.43, libze1 1.8,
    checked with apt-cache); Ubuntu and RHEL use Intel's GPU repository
    (repositories.intel.com/gpu) and its intel-graphics key. The kernel's i915 is the driver,
    so there is no driver package.
"""

from __future__ import annotations

FAMILIES = ('Debian', 'Ubuntu', 'RHEL')
STACKS = ('cuda', 'rocm', 'oneapi', 'cpu')

_CUDA_REPO = 'https://developer.download.nvidia.com/compute/cuda/repos/%s/x86_64/'
_ROCM_KEY = 'https://repo.radeon.com/rocm/rocm.gpg.key'
_INTEL_KEY = 'https://repositories.intel.com/gpu/intel-graphics.key'

STACK_DATA = {
    ('Debian', 'cuda'): dict(
        driver_packages=['cuda-drivers'], runtime_packages=['cuda-toolkit'],
        repository=_CUDA_REPO % 'debian12', key_url=(_CUDA_REPO % 'debian12') + '3bf863cc.pub',
        blacklist_nouveau=True),
    ('Ubuntu', 'cuda'): dict(
        driver_packages=['cuda-drivers'], runtime_packages=['cuda-toolkit'],
        repository=_CUDA_REPO % 'ubuntu2204', key_url=(_CUDA_REPO % 'ubuntu2204') + '3bf863cc.pub',
        blacklist_nouveau=True),
    ('RHEL', 'cuda'): dict(
        driver_packages=['cuda-drivers'], runtime_packages=['cuda-toolkit'],
        repository=_CUDA_REPO % 'rhel9', key_url=(_CUDA_REPO % 'rhel9') + 'D42D0685.pub',
        blacklist_nouveau=True),
    ('Debian', 'rocm'): dict(
        driver_packages=['amdgpu-dkms'], runtime_packages=['rocm'],
        repository='https://repo.radeon.com/rocm/apt/6.2 jammy main', key_url=_ROCM_KEY,
        blacklist_nouveau=False),
    ('Ubuntu', 'rocm'): dict(
        driver_packages=['amdgpu-dkms'], runtime_packages=['rocm'],
        repository='https://repo.radeon.com/rocm/apt/6.2 jammy main', key_url=_ROCM_KEY,
        blacklist_nouveau=False),
    ('RHEL', 'rocm'): dict(
        driver_packages=['amdgpu-dkms'], runtime_packages=['rocm'],
        repository='https://repo.radeon.com/rocm/el9/6.2/main', key_url=_ROCM_KEY,
        blacklist_nouveau=False),
    ('Debian', 'oneapi'): dict(
        driver_packages=[], runtime_packages=['intel-opencl-icd', 'libze1'],
        repository=None, key_url=None, blacklist_nouveau=False),
    ('Ubuntu', 'oneapi'): dict(
        driver_packages=[], runtime_packages=['intel-opencl-icd', 'intel-level-zero-gpu', 'level-zero'],
        repository='https://repositories.intel.com/gpu/ubuntu jammy unified', key_url=_INTEL_KEY,
        blacklist_nouveau=False),
    ('RHEL', 'oneapi'): dict(
        driver_packages=[], runtime_packages=['intel-opencl', 'intel-level-zero-gpu', 'level-zero'],
        repository='https://repositories.intel.com/gpu/rhel/9.4/unified/', key_url=_INTEL_KEY,
        blacklist_nouveau=False),
}

_NOTHING = dict(driver_packages=[], runtime_packages=[], repository=None, key_url=None, blacklist_nouveau=False)


class StackChoiceError(ValueError):
    """A family or stack the data does not cover; the message names the field and the value."""


def stack_choice(family, stack):
    """What to install for stack on a host of family: driver_packages, runtime_packages,
    repository, key_url, blacklist_nouveau (and family, stack). cpu installs nothing
    vendor-specific on any known family."""
    if family not in FAMILIES:
        raise StackChoiceError('gpu stack: distribution family %r is not one of %s' % (family, ', '.join(FAMILIES)))
    if stack not in STACKS:
        raise StackChoiceError('gpu stack: stack %r is not one of %s' % (stack, ', '.join(STACKS)))
    data = _NOTHING if stack == 'cpu' else STACK_DATA[(family, stack)]
    choice = dict((key, list(value) if isinstance(value, list) else value) for key, value in data.items())
    choice.update(family=family, stack=stack)
    return choice
