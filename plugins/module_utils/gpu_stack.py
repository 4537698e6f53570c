# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which packages, repository and key each (distribution family, stack) needs: data, and the one
function that chooses from it. The gpu role (next) installs what stack_choice returns.

Sources, per vendor:
  * NVIDIA: the CUDA Installation Guide for Linux (12.x), network repository method: the
    repository per distribution under developer.download.nvidia.com/compute/cuda/repos, its
    signing key, the cuda-drivers and cuda-toolkit meta packages, and nouveau disabled before
    the driver loads. The key file names (3bf863cc for the Debian and Ubuntu repositories,
    D42D0685 for the EL ones) are the short ids of NVIDIA's table of active repository keys
    (its cuda-repo-management project).
  * AMD: ROCm's installation guide (6.2): the amdgpu-install and native package-manager
    methods, repo.radeon.com with rocm.gpg.key, amdgpu-dkms for the driver and the rocm meta
    package. They come from two repositories, both signed with that key: the driver from
    amdgpu/<version> and the runtime from rocm/apt/<version> (rocm/el9/<version> on EL).
    ROCm publishes no Debian repository of its own: Debian 12 uses the Ubuntu 22.04 (jammy)
    ones, as ROCm's Debian instructions do.
  * Intel: Debian 12 ships the compute runtime in main (intel-opencl-icd 22.43, libze1 1.8,
    checked with apt-cache); Ubuntu and RHEL use Intel's GPU repository
    (repositories.intel.com/gpu) and its intel-graphics key. The kernel's i915 is the driver,
    so there is no driver package.
"""

from __future__ import annotations

from ansible_collections.aicluster.lab.plugins.module_utils.errors import InputError
from ansible_collections.aicluster.lab.plugins.module_utils.os_release import family_of, parse_os_release

FAMILIES = ('Debian', 'Ubuntu', 'RHEL')
STACKS = ('cuda', 'rocm', 'oneapi', 'cpu')

_CUDA_REPO = 'https://developer.download.nvidia.com/compute/cuda/repos/%s/x86_64/'
_ROCM_KEY = 'https://repo.radeon.com/rocm/rocm.gpg.key'
_INTEL_KEY = 'https://repositories.intel.com/gpu/intel-graphics.key'

STACK_DATA = {
    ('Debian', 'cuda'): dict(
        driver_packages=['cuda-drivers'], runtime_packages=['cuda-toolkit'],
        repository=_CUDA_REPO % 'debian12', key_url=(_CUDA_REPO % 'debian12') + '3bf863cc.pub',
        driver_repository=None, blacklist_nouveau=True),
    ('Ubuntu', 'cuda'): dict(
        driver_packages=['cuda-drivers'], runtime_packages=['cuda-toolkit'],
        repository=_CUDA_REPO % 'ubuntu2204', key_url=(_CUDA_REPO % 'ubuntu2204') + '3bf863cc.pub',
        driver_repository=None, blacklist_nouveau=True),
    ('RHEL', 'cuda'): dict(
        driver_packages=['cuda-drivers'], runtime_packages=['cuda-toolkit'],
        repository=_CUDA_REPO % 'rhel9', key_url=(_CUDA_REPO % 'rhel9') + 'D42D0685.pub',
        driver_repository=None, blacklist_nouveau=True),
    ('Debian', 'rocm'): dict(
        driver_packages=['amdgpu-dkms'], runtime_packages=['rocm'],
        repository='https://repo.radeon.com/rocm/apt/6.2 jammy main', key_url=_ROCM_KEY,
        driver_repository='https://repo.radeon.com/amdgpu/6.2/ubuntu jammy main', blacklist_nouveau=False),
    ('Ubuntu', 'rocm'): dict(
        driver_packages=['amdgpu-dkms'], runtime_packages=['rocm'],
        repository='https://repo.radeon.com/rocm/apt/6.2 jammy main', key_url=_ROCM_KEY,
        driver_repository='https://repo.radeon.com/amdgpu/6.2/ubuntu jammy main', blacklist_nouveau=False),
    ('RHEL', 'rocm'): dict(
        driver_packages=['amdgpu-dkms'], runtime_packages=['rocm'],
        repository='https://repo.radeon.com/rocm/el9/6.2/main', key_url=_ROCM_KEY,
        driver_repository='https://repo.radeon.com/amdgpu/6.2/el/9.4/main/x86_64/', blacklist_nouveau=False),
    ('Debian', 'oneapi'): dict(
        driver_packages=[], runtime_packages=['intel-opencl-icd', 'libze1'],
        repository=None, key_url=None, driver_repository=None, blacklist_nouveau=False),
    ('Ubuntu', 'oneapi'): dict(
        driver_packages=[], runtime_packages=['intel-opencl-icd', 'intel-level-zero-gpu', 'level-zero'],
        repository='https://repositories.intel.com/gpu/ubuntu jammy unified', key_url=_INTEL_KEY,
        driver_repository=None, blacklist_nouveau=False),
    ('RHEL', 'oneapi'): dict(
        driver_packages=[], runtime_packages=['intel-opencl', 'intel-level-zero-gpu', 'level-zero'],
        repository='https://repositories.intel.com/gpu/rhel/9.4/unified/', key_url=_INTEL_KEY,
        driver_repository=None, blacklist_nouveau=False),
}

_NOTHING = dict(driver_packages=[], runtime_packages=[], repository=None, key_url=None, driver_repository=None,
                blacklist_nouveau=False)


class StackChoiceError(InputError):
    """A family or stack the data does not cover; the message names the field and the value."""


def stack_choice(family, stack):
    """What to install for stack on a host of family: driver_packages, runtime_packages,
    repository, key_url, driver_repository (the driver's own repository, signed with the same
    key, where it is not the runtime's), blacklist_nouveau (and family, stack). cpu installs nothing
    vendor-specific on any known family."""
    if family not in FAMILIES:
        raise StackChoiceError('gpu stack: distribution family %r is not one of %s' % (family, ', '.join(FAMILIES)))
    if stack not in STACKS:
        raise StackChoiceError('gpu stack: stack %r is not one of %s' % (stack, ', '.join(STACKS)))
    data = _NOTHING if stack == 'cpu' else STACK_DATA[(family, stack)]
    choice = dict((key, list(value) if isinstance(value, list) else value) for key, value in data.items())
    choice.update(family=family, stack=stack)
    return choice


# ---------------------------------------------------------------- the host's distribution

# os-release IDs of each family (os-release(5): ID, then each ID_LIKE in order). Ubuntu's
# derivatives name ubuntu before debian in ID_LIKE, so they get Ubuntu's repositories.
FAMILY_IDS = {
    'debian': 'Debian',
    'ubuntu': 'Ubuntu',
    'rhel': 'RHEL', 'centos': 'RHEL', 'rocky': 'RHEL', 'almalinux': 'RHEL', 'ol': 'RHEL', 'fedora': 'RHEL',
}
OS_RELEASE = '/etc/os-release'


def distribution(os_release_text):
    """{id, version_id, family} from the text of /etc/os-release; family is None when neither
    ID nor ID_LIKE names a family of FAMILIES."""
    values = parse_os_release(os_release_text)
    family = family_of(values, FAMILY_IDS)
    return {'id': values.get('ID') or None, 'version_id': values.get('VERSION_ID') or None, 'family': family}


# ---------------------------------------------------------------- containers (k3s)

# NVIDIA Container Toolkit install guide: its own repository (libnvidia-container), the same
# for every Debian and Ubuntu release (apt expands $(ARCH)), one for every EL release
# (dnf expands $basearch), signed with one key.
_TOOLKIT_REPO = 'https://nvidia.github.io/libnvidia-container/stable/'
CONTAINER_DATA = {
    'cuda': dict(
        packages=['nvidia-container-toolkit'],
        repositories={'Debian': _TOOLKIT_REPO + 'deb/$(ARCH)', 'Ubuntu': _TOOLKIT_REPO + 'deb/$(ARCH)',
                      'RHEL': _TOOLKIT_REPO + 'rpm/$basearch'},
        key_url='https://nvidia.github.io/libnvidia-container/gpgkey',
        # The binary k3s looks for in PATH when it starts (pkg/agent/containerd: "nvidia"
        # among its alternative runtimes) and writes into containerd's config as runtime
        # "nvidia"; the RuntimeClass's handler must be that runtime's name.
        runtime='nvidia', binary='nvidia-container-runtime'),
}


def container_choice(family, stack):
    """What the stack needs for containers on k3s: packages, repository, key_url, runtime
    (the containerd runtime name and the RuntimeClass handler), binary; and note, why
    nothing is needed when the stack has no container runtime of its own."""
    stack_choice(family, stack)  # names a bad family or stack the same way
    data = CONTAINER_DATA.get(stack)
    if data is None:
        note = {'cpu': 'no GPU stack: containers run on the CPU with the default runtime',
                'rocm': 'ROCm containers need no runtime of their own: the device plugin passes /dev/kfd and /dev/dri',
                'oneapi': 'oneAPI containers need no runtime of their own: the device plugin passes /dev/dri'}[stack]
        return dict(packages=[], repository=None, key_url=None, runtime=None, binary=None, note=note)
    return dict(packages=list(data['packages']), repository=data['repositories'][family], key_url=data['key_url'],
                runtime=data['runtime'], binary=data['binary'], note='')


# ---------------------------------------------------------------- what the gpu role does

# The driver each stack binds to its devices, and the module that must be loaded for it.
STACK_DRIVERS = {'cuda': ('nvidia',), 'rocm': ('amdgpu',), 'oneapi': ('i915', 'xe')}


def apt_source(repository, keyring):
    """One-line apt source for a repository as STACK_DATA writes it: a URL alone is a flat
    repository (suite '/'), a URL followed by words is URL, suite and components."""
    parts = repository.split()
    if len(parts) == 1:
        parts.append('/')
    return 'deb [signed-by=%s] %s' % (keyring, ' '.join(parts))


def driver_problems(facts, stack):
    """{address: why} for each of the stack's devices that does not run on its driver yet
    (empty when they all do, and for cpu): no driver bound, another driver bound (nouveau),
    the driver's module not loaded."""
    drivers = STACK_DRIVERS.get(stack)
    if not drivers:
        return {}
    problems = {}
    for device in facts.get('gpus') or []:
        if device.get('compute_stack') != stack:
            continue
        where = '%s %s:%s at %s' % (device.get('vendor'), device['vendor_id'].replace('0x', ''),
                                    device['device_id'].replace('0x', ''), device['address'])
        if not device.get('driver'):
            problems[device['address']] = '%s has no driver bound (%s expected)' % (where, ' or '.join(drivers))
        elif device['driver'] not in drivers:
            problems[device['address']] = '%s is bound to %s, not %s' % (where, device['driver'], ' or '.join(drivers))
        elif device['driver'] not in (device.get('modules') or []):
            problems[device['address']] = '%s is bound to %s, but module %s is not loaded' % (
                where, device['driver'], device['driver'])
    return problems


def host_plan(facts, container_runtime=False, installed=False, changed=False, keyring_dir='/etc/apt/keyrings'):
    """What the gpu role does on a host, from gpu_facts' result (with its distribution):
    stack, family, reason, driver_packages, runtime_packages, container (container_choice, or
    None when container_runtime is off), sources ({name, apt, keyring, key_url, baseurl} per
    repository), blacklist_nouveau, initramfs_command, reboot_reason.

    installed: the driver packages are on the host (the role installed them, or found them):
    only then can a reboot help a device that does not run on its driver, so only then is
    reboot_reason set for it. changed: this run installed or upgraded the driver packages or
    the nouveau blacklist; a driver changed under a running kernel needs a reboot even when
    the old one is still bound. A cpu host gets nothing to install, whatever its family.
    """
    stack = facts.get('recommended_stack') or 'cpu'
    family = (facts.get('distribution') or {}).get('family')
    plan = dict(stack=stack, family=family, reason=facts.get('stack_reason') or '', driver_packages=[],
                runtime_packages=[], container=None, sources=[], blacklist_nouveau=False,
                initramfs_command=None, reboot_reason='')
    if stack == 'cpu':
        return plan
    if family is None:
        os_id = (facts.get('distribution') or {}).get('id')
        raise StackChoiceError('gpu stack: %s needs the %s stack, but os-release ID %r names no distribution '
                               'family of %s' % (plan['reason'], stack, os_id, ', '.join(FAMILIES)))
    choice = stack_choice(family, stack)
    plan.update(driver_packages=choice['driver_packages'], runtime_packages=choice['runtime_packages'],
                blacklist_nouveau=choice['blacklist_nouveau'],
                # Debian's initramfs-tools and EL's dracut: the blacklist must be in the
                # initramfs, or nouveau loads from it before the root file system's modprobe.d.
                initramfs_command=(['dracut', '--force'] if family == 'RHEL' else ['update-initramfs', '-u']))
    if choice['repository']:
        plan['sources'].append(_source('aicluster-gpu-%s' % stack, choice['repository'], choice['key_url'],
                                       family, keyring_dir))
    if choice['driver_repository']:
        plan['sources'].append(_source('aicluster-gpu-%s-driver' % stack, choice['driver_repository'],
                                       choice['key_url'], family, keyring_dir))
    if container_runtime:
        container = container_choice(family, stack)
        plan['container'] = container
        if container['repository']:
            plan['sources'].append(_source('aicluster-gpu-container', container['repository'],
                                           container['key_url'], family, keyring_dir))
    problems = driver_problems(facts, stack) if installed else {}
    if problems:
        plan['reboot_reason'] = '; '.join(problems[address] for address in sorted(problems))
    elif installed and changed and (plan['driver_packages'] or plan['blacklist_nouveau']):
        plan['reboot_reason'] = 'the driver (%s) or the nouveau blacklist changed under the running kernel' % (
            ', '.join(plan['driver_packages']) or 'the kernel\'s')
    return plan


def _source(name, repository, key_url, family, keyring_dir):
    keyring = '%s/%s.asc' % (keyring_dir, name)
    if family == 'RHEL':
        return dict(name=name, apt=None, keyring=None, key_url=key_url, baseurl=repository)
    return dict(name=name, apt=apt_source(repository, keyring), keyring=keyring, key_url=key_url, baseurl=None)
