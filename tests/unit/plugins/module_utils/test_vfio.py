# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The passthrough preflight and the vfio verdicts on real trees: the gpu scenario's q35 node
(emulated Intel IOMMU) with its spare NIC and virtio-gpu on vfio-pci and given back
(fixtures/vfio, README.md there), the CPU-only CI host without an IOMMU and the desktop whose
GT 1030 shares its group with its audio function (fixtures/gpu)."""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.aicluster.lab.plugins.module_utils import vfio
from gpu_sysfs import build_sysfs, build_sysfs_lines

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / 'fixtures' / 'vfio'
SPARE_NIC = '0000:02:00.0'
VIRTIO_GPU = '1af4:1050'


def capture(name, tmp_path):
    """A capture of fixtures/vfio as (sysfs root, /dev root, cmdline, modules.dep lines)."""
    sections, current = {'dump': []}, 'dump'
    for line in (FIXTURES / ('%s.txt' % name)).read_text().splitlines():
        if line.startswith('# '):
            continue
        if line.startswith('## '):
            current = line[3:]
            sections[current] = []
        elif line.strip():
            sections[current].append(line)
    root = pathlib.Path(build_sysfs_lines(sections['dump'], tmp_path / 'sys'))
    for path in sections['ls -d /sys/module/vfio*']:
        (root / 'module' / pathlib.PurePosixPath(path).name).mkdir(parents=True)
    dev = tmp_path / 'dev'
    for node in sections['ls /dev/vfio']:
        (dev / 'vfio').mkdir(parents=True, exist_ok=True)
        (dev / 'vfio' / node).write_text('')
    return str(root), str(dev), sections['/proc/cmdline'][0], ['\n'.join(sections['grep vfio modules.dep'])]


def run(name, tmp_path, devices=(SPARE_NIC, VIRTIO_GPU)):
    root, dev, cmdline, lists = capture(name, tmp_path)
    return vfio.preflight(list(devices), sysfs_root=root, cmdline=cmdline, kernel_lists=lists, dev_root=dev)


def test_q35_node_before_binding_is_ready(tmp_path):
    result = run('q35-released', tmp_path)
    assert result['problems'] == [] and result['ready'] is True
    assert result['iommu']['enabled'] is True and result['iommu']['cmdline'] == ['intel_iommu=on']
    assert result['iommu']['groups'] > 5
    by_address = dict((d['address'], d) for d in result['devices'])
    assert SPARE_NIC in by_address and len(by_address) == 2
    for device in by_address.values():
        # One group per device on q35, and the device on its own virtio driver.
        assert device['group_members'] == [device['address']] and device['group_blocking'] == []
        assert (device['driver'], device['driver_override'], device['vfio_node']) == ('virtio-pci', None, None)
    assert [d['class'] for d in result['devices'] if d['address'] != SPARE_NIC] == ['0x038000']


def test_q35_node_bound_to_vfio(tmp_path):
    result = run('q35-bound', tmp_path)
    assert result['ready'] is True
    assert result['modules'] == {'vfio': 'loaded', 'vfio_iommu_type1': 'loaded', 'vfio_pci': 'loaded'}
    for device in result['devices']:
        assert device['bound_to_vfio'] and device['driver_override'] == 'vfio-pci'
        assert device['vfio_node'].endswith('/vfio/%d' % device['iommu_group'])


def test_round_trip_verdicts_on_the_captures(tmp_path):
    released = run('q35-released', tmp_path / 'a')
    bound = run('q35-bound', tmp_path / 'b')
    checks = dict((c['name'], c) for c in vfio.checks(released, bound, 'bound'))
    assert [checks[name]['passed'] for name in ('vfio_preflight', 'vfio_bound')] == [True, True]
    assert checks['vfio_bound']['figures'] == {'devices': 2, 'bound': 2, 'vfio_nodes': 2}
    assert all(isinstance(value, int) for c in checks.values() for value in c['figures'].values())
    back = vfio.checks(bound, released, 'released')
    assert [(c['name'], c['passed']) for c in back] == [('vfio_released', True)]
    assert back[0]['figures'] == {'devices': 2, 'bound': 0, 'with_driver': 2, 'vfio_nodes': 0}
    # Judged the wrong way round, each fails and says why.
    failed = dict((c['name'], c) for c in vfio.checks(released, released, 'bound'))
    assert not failed['vfio_bound']['passed']
    assert '%s is bound to virtio-pci, not vfio-pci' % SPARE_NIC in failed['vfio_bound']['message']
    kept = vfio.checks(bound, bound, 'released')[0]
    assert not kept['passed'] and 'still bound to vfio-pci' in kept['message'] and 'keeps driver_override' in kept['message']


def test_iommu_off_on_the_cpu_only_host(tmp_path):
    root = build_sysfs('cpu-only-ci', tmp_path / 'sys')
    result = vfio.preflight(['0000:00:03.0'], sysfs_root=root, cmdline='root=/dev/vda rw console=ttyS0',
                            kernel_lists=['kernel/drivers/vfio/vfio.ko:\n'], dev_root=str(tmp_path / 'dev'))
    assert result['ready'] is False
    assert result['problems'][0].startswith('IOMMU off: ')
    assert 'the kernel command line has no intel_iommu= or amd_iommu=' in result['problems'][0]
    assert result['problems'][1] == ("vfio modules missing: vfio_iommu_type1, vfio_pci neither loaded nor in the "
                                     "running kernel's module lists")
    assert result['modules']['vfio'] == 'available'


def test_group_shared_with_a_device_on_another_driver(tmp_path):
    root = build_sysfs('desktop-uhd630-gt1030', tmp_path / 'sys')
    (pathlib.Path(root) / 'module' / 'vfio_pci').mkdir(parents=True)
    lists = ['kernel/drivers/vfio/vfio.ko:\nkernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko\n']
    gpu_only = vfio.preflight(['0000:01:00.0'], sysfs_root=root, cmdline='intel_iommu=on iommu=pt', kernel_lists=lists)
    assert gpu_only['iommu']['cmdline'] == ['intel_iommu=on', 'iommu=pt']
    assert gpu_only['problems'] == [
        'IOMMU group 2 of 0000:01:00.0 is shared with devices not bound to vfio-pci: 0000:01:00.1 (snd_hda_intel); '
        'pass them through too or unbind them']
    # The whole group (the GPU by its id, the audio function by address) is fine.
    both = vfio.preflight(['10de:1d01', '01:00.1'], sysfs_root=root, cmdline='intel_iommu=on', kernel_lists=lists)
    assert both['ready'] is True
    assert [d['address'] for d in both['devices']] == ['0000:01:00.0', '0000:01:00.1']


def test_unknown_devices_are_named(tmp_path):
    result = run('q35-released', tmp_path, devices=['0000:09:00.0', '10de:2684', SPARE_NIC])
    assert result['unknown'] == ['0000:09:00.0', '10de:2684']
    assert result['problems'] == ['device unknown: 0000:09:00.0 is not a PCI device of this host',
                                  'device unknown: 10de:2684 is not a PCI device of this host']


@pytest.mark.parametrize('entry', ['01:00', 'gpu0', '10de:26840'])
def test_bad_entries_are_refused(tmp_path, entry):
    with pytest.raises(vfio.DeviceError, match='devices\\[0\\]: %s is neither a PCI address' % entry):
        run('q35-released', tmp_path, devices=[entry])


def test_the_filter_names_bad_input():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.aicluster.lab.plugins.filter.vfio import vfio_checks
    with pytest.raises(AnsibleFilterError, match='vfio_checks: after must be what aicluster.lab.vfio_preflight returned'):
        vfio_checks({'problems': []}, {}, 'bound')
    with pytest.raises(AnsibleFilterError, match="vfio_checks: state 'present' is not bound or released"):
        vfio_checks({'problems': []}, {'problems': []}, 'present')
