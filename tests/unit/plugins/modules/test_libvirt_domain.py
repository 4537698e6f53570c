# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_domain against libvirt's in-process test driver (real libvirt code, no daemon).

The test driver runs no QEMU, so qemu-img and the ISO tool are small fake executables
put first on PATH: the module still builds and runs the real command lines.
"""

import os
import stat
import sys
import textwrap

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import read_owner  # noqa: E402
from ansible_collections.aicluster.lab.plugins.module_utils import libvirt_domain_runner  # noqa: E402
from ansible_collections.aicluster.lab.plugins.modules import libvirt_domain  # noqa: E402

URI = 'test:///default'
# The test driver's own domain 'test' has this MAC and no owner metadata.
TEST_DOMAIN_MAC = 'aa:bb:cc:dd:ee:ff'

FAKE_QEMU_IMG = '''
import json, sys
with open(sys.argv[0] + '.log', 'a') as log:
    log.write(' '.join(sys.argv[1:]) + '\\n')
if sys.argv[1] == 'info':
    print(json.dumps({'format': 'qcow2', 'virtual-size': 2 * 1024 ** 3}))
elif sys.argv[1] == 'create':
    args = sys.argv[2:]
    path = [a for a in args if not a.startswith('-') and not a.endswith('G')][-1]
    open(path, 'wb').write(b'QFI\\xfb')
'''

FAKE_GENISOIMAGE = '''
import sys
with open(sys.argv[0] + '.log', 'a') as log:
    log.write(' '.join(sys.argv[1:]) + '\\n')
out = sys.argv[sys.argv.index('-o') + 1]
open(out, 'w').write('ISO ' + ' '.join(sys.argv[1:]))
'''


@pytest.fixture
def conn():
    # test:///default resets when its last connection closes; holding one keeps
    # state across the module runs of one test and gives each test a fresh driver.
    handle = libvirt.open(URI)
    net = handle.networkDefineXML("<network><name>aiclt-net</name><bridge name='aicltbr0'/></network>")
    net.create()
    yield handle
    handle.close()


@pytest.fixture
def fakebin(tmp_path, monkeypatch):
    bindir = tmp_path / 'bin'
    bindir.mkdir()

    def install(name, body):
        path = bindir / name
        path.write_text('#!%s\n%s' % (sys.executable, textwrap.dedent(body)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    monkeypatch.setenv('PATH', '%s:%s' % (bindir, os.environ.get('PATH', '')))
    return install


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / 'aiclt-dom.qcow2'
    path.write_bytes(b'QFI\xfb')
    return str(path)


@pytest.fixture
def run(run_module):
    def _run(args, **kwargs):
        return run_module(libvirt_domain, dict({'uri': URI}, **args), **kwargs)
    return _run


def base_args(disk_path, **extra):
    args = {'name': 'aiclt-dom', 'memory_mib': 256, 'disk': {'path': disk_path},
            'nics': [{'network': 'aiclt-net'}, {'network': 'aiclt-net', 'mac': '52:54:00:23:10:02'}]}
    args.update(extra)
    return args


def warnings(result):
    # ansible-core 2.19 reports warnings as structured events, older versions as strings;
    # once controller code is imported in the same process it prints them to stderr instead.
    found = [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]
    return found + [' '.join(result.get('_stderr', '').split())]


def dom_names(conn):
    return sorted(d.name() for d in conn.listAllDomains())


def test_check_mode_then_create_then_idempotent(conn, run, disk):
    check = run(base_args(disk), check_mode=True, diff=True)
    assert check['changed'] is True
    assert 'aiclt-dom' not in dom_names(conn)
    assert 'memory_mib: 256' in check['diff']['after']

    first = run(base_args(disk))
    assert first['changed'] is True
    assert first['domain']['type'] == 'qemu'
    assert first['domain']['state'] == 'shutoff'
    assert first['domain']['macs'][1] == '52:54:00:23:10:02'
    assert first['domain']['macs'][0].startswith('52:54:00:')
    owner = read_owner(conn.lookupByName('aiclt-dom').XMLDesc(0))
    assert owner == {'name': 'aicluster.lab', 'files': []}

    second = run(base_args(disk))
    assert second['changed'] is False, second['changes']
    assert second['created_files'] == []


def test_check_mode_changes_nothing_on_existing(conn, run, disk):
    run(base_args(disk, state='running'))
    xml = conn.lookupByName('aiclt-dom').XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    result = run(base_args(disk, vcpus=2, state='shutdown'), check_mode=True, diff=True)
    assert result['changed'] is True
    assert result['changes'] == ['vcpus']
    assert 'shutdown' in result['msg']
    dom = conn.lookupByName('aiclt-dom')
    assert dom.isActive()
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == xml


def test_uuid_and_macs_kept_on_redefinition(conn, run, disk):
    first = run(base_args(disk))
    second = run(base_args(disk, memory_mib=512, vcpus=2))
    assert second['changed'] is True
    assert sorted(second['changes']) == ['memory_mib', 'vcpus']
    assert second['domain']['uuid'] == first['domain']['uuid']
    assert second['domain']['macs'] == first['domain']['macs']
    assert second['domain']['memory_mib'] == 512


def test_uuid_given_and_change_refused(conn, run, disk):
    uuid = '6c6f6c6c-6162-4000-8000-000000000001'
    assert run(base_args(disk, uuid=uuid))['domain']['uuid'] == uuid
    result = run(base_args(disk, uuid='6c6f6c6c-6162-4000-8000-000000000002'))
    assert result['failed'] is True
    assert result['msg'].startswith('uuid: 6c6f6c6c-6162-4000-8000-000000000002 differs from UUID ' + uuid)


def test_foreign_domain_refused(conn, run, disk):
    xml = conn.lookupByName('test').XMLDesc(0)
    for state in ('present', 'absent'):
        result = run(base_args(disk, name='test', state=state))
        assert result['failed'] is True
        assert result['msg'] == ("name: domain 'test' exists and was not created by aicluster.lab "
                                 "(no owner metadata); remove it or choose another name")
    assert conn.lookupByName('test').XMLDesc(0) == xml


def test_other_owner_refused(conn, run, disk):
    run(base_args(disk, owner='someone-else'))
    result = run(base_args(disk))
    assert result['failed'] is True
    assert result['msg'] == ("name: domain 'aiclt-dom' exists and was not created by aicluster.lab "
                             "(owner 'someone-else'); remove it or choose another name")


def test_unknown_network_refused(conn, run, disk):
    args = base_args(disk)
    args['nics'].append({'network': 'foo'})
    result = run(args)
    assert result['failed'] is True
    assert result['msg'] == "nics[2].network: network 'foo' is not defined on test:///default"
    assert 'aiclt-dom' not in dom_names(conn)


def test_inactive_network_refused_when_starting(conn, run, disk):
    conn.networkLookupByName('aiclt-net').destroy()
    result = run(base_args(disk, state='running'))
    assert result['failed'] is True
    assert result['msg'].startswith("nics[0].network: network 'aiclt-net' on test:///default is defined but not active")
    assert 'aiclt-dom' not in dom_names(conn)


def test_mac_of_other_domain_refused(conn, run, disk):
    args = base_args(disk)
    args['nics'][1]['mac'] = TEST_DOMAIN_MAC.upper()
    result = run(args)
    assert result['failed'] is True
    assert result['msg'] == "nics[1].mac: aa:bb:cc:dd:ee:ff is already used by domain 'test'"
    assert 'aiclt-dom' not in dom_names(conn)


def test_duplicate_mac_in_list_refused(conn, run, disk):
    args = base_args(disk)
    args['nics'][0]['mac'] = '52:54:00:23:10:02'
    result = run(args)
    assert result['failed'] is True
    assert result['msg'] == 'nics[1].mac: 52:54:00:23:10:02 is already used by nics[0]'


def test_kept_mac_given_to_another_nic_refused(conn, run, disk):
    first = run(base_args(disk))
    args = base_args(disk)
    args['nics'][1]['mac'] = first['domain']['macs'][0]
    result = run(args)
    assert result['failed'] is True
    assert result['msg'].startswith('nics[0].mac: the MAC %s it had is now given to nics[1]' % first['domain']['macs'][0])


def test_missing_base_image_refused(conn, run, tmp_path):
    missing = str(tmp_path / 'nope' / 'base.qcow2')
    overlay = str(tmp_path / 'aiclt-dom.qcow2')
    result = run(base_args(overlay, disk={'path': overlay, 'base_image': missing}))
    assert result['failed'] is True
    assert result['msg'] == 'disk.base_image: %s does not exist' % missing
    assert 'aiclt-dom' not in dom_names(conn)


def test_missing_disk_without_base_refused(conn, run, tmp_path):
    path = str(tmp_path / 'aiclt-dom.qcow2')
    result = run(base_args(path))
    assert result['msg'] == 'disk.path: %s does not exist; give disk.base_image to create it as an overlay' % path


def test_overlay_created_recorded_and_removed(conn, run, tmp_path, fakebin):
    qemu_img = fakebin('qemu-img', FAKE_QEMU_IMG)
    base = tmp_path / 'base.qcow2'
    base.write_bytes(b'QFI\xfb')
    overlay = str(tmp_path / 'aiclt-dom.qcow2')
    args = base_args(overlay, disk={'path': overlay, 'base_image': str(base), 'size_gib': 4})

    check = run(args, check_mode=True)
    assert check['changed'] is True and check['created_files'] == [overlay]
    assert not os.path.exists(overlay)

    first = run(args)
    assert first['created_files'] == [overlay]
    assert os.path.exists(overlay)
    log = (tmp_path / 'bin' / 'qemu-img.log').read_text().splitlines()
    assert log[-1] == 'create -q -f qcow2 -F qcow2 -b %s %s 4G' % (base, overlay)
    assert any(line.startswith('info --force-share --output=json %s' % base) for line in log)
    files = read_owner(conn.lookupByName('aiclt-dom').XMLDesc(0))['files']
    assert files == [{'role': 'overlay', 'path': overlay}]

    assert run(args)['changed'] is False

    gone = run(dict(args, state='absent'))
    assert gone['changed'] is True and gone['removed_files'] == [overlay]
    assert not os.path.exists(overlay) and base.exists()
    assert 'aiclt-dom' not in dom_names(conn)
    assert qemu_img.exists()


def test_overlay_smaller_than_base_refused(conn, run, tmp_path, fakebin):
    fakebin('qemu-img', FAKE_QEMU_IMG)
    base = tmp_path / 'base.qcow2'
    base.write_bytes(b'QFI\xfb')
    overlay = str(tmp_path / 'aiclt-dom.qcow2')
    result = run(base_args(overlay, disk={'path': overlay, 'base_image': str(base), 'size_gib': 1}))
    assert result['failed'] is True
    assert result['msg'].startswith('disk.size_gib: 1 is smaller than the virtual size of disk.base_image')
    assert not os.path.exists(overlay)


def test_absent_keeps_files_not_created_by_module(conn, run, disk):
    run(base_args(disk))
    result = run(base_args(disk, state='absent'))
    assert result['removed_files'] == []
    assert os.path.exists(disk)


def test_hostdevs_checked_against_sysfs(conn, run, disk, tmp_path, monkeypatch):
    sysfs = tmp_path / 'sysfs'
    (sysfs / '0000:01:00.0').mkdir(parents=True)
    monkeypatch.setattr(libvirt_domain_runner, 'SYSFS_PCI', str(sysfs))
    result = run(base_args(disk, hostdevs=['0000:01:00.0', '0000:02:00.0']))
    assert result['failed'] is True
    assert result['msg'].startswith('hostdevs[1]: 0000:02:00.0 does not exist on this host')
    result = run(base_args(disk, hostdevs=['01:00.0']))
    assert result['changed'] is True
    assert "<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>" in result['xml']
    assert run(base_args(disk, hostdevs=['0000:01:00.0']))['changed'] is False


def test_bad_pci_address_refused_before_connecting(run, disk):
    result = run(base_args(disk, hostdevs=['01:00'], uri='test:///nonexistent/aiclt.xml'))
    assert result['msg'] == ('hostdevs[0]: 01:00 is neither a PCI address like 0000:01:00.0 '
                             'nor a vendor:device id like 10de:2684')


def _pci_device(sysfs, address, vendor, device):
    (sysfs / address).mkdir(parents=True)
    (sysfs / address / 'vendor').write_text(vendor + '\n')
    (sysfs / address / 'device').write_text(device + '\n')


def test_hostdevs_by_vendor_device_id(conn, run, disk, tmp_path, monkeypatch):
    # Two GPUs and their audio functions, as a two-GPU host lists them (ids as sysfs writes them).
    sysfs = tmp_path / 'sysfs'
    for address, device in (('0000:01:00.0', '0x2684'), ('0000:01:00.1', '0x22ba'),
                            ('0000:02:00.0', '0x2684'), ('0000:02:00.1', '0x22ba')):
        _pci_device(sysfs, address, '0x10de', device)
    monkeypatch.setattr(libvirt_domain_runner, 'SYSFS_PCI', str(sysfs))
    result = run(base_args(disk, hostdevs=['10DE:2684']))
    assert result['changed'] is True
    assert "bus='0x01' slot='0x00' function='0x0'" in result['xml']
    assert "bus='0x02' slot='0x00' function='0x0'" in result['xml']
    assert "function='0x1'" not in result['xml']
    assert run(base_args(disk, hostdevs=['10de:2684']))['changed'] is False
    result = run(base_args(disk, hostdevs=['10de:1aef']))
    assert result['msg'].startswith('hostdevs[0]: no PCI device with vendor:device id 10de:1aef on this host')
    result = run(base_args(disk, hostdevs=['0000:02:00.0', '10de:2684']))
    assert result['msg'] == 'hostdevs[1]: 10de:2684 (0000:02:00.0) is already listed as hostdevs[0]'


def test_q35_with_iommu_and_display_devices(conn, run, disk):
    args = base_args(disk, machine='q35', iommu=True, video=['vga', 'virtio'])
    result = run(args, check_mode=True)
    assert (result['changed'], conn.listDefinedDomains()) == (True, [])
    result = run(args)
    assert result['changed'] is True
    xml = conn.lookupByName(args['name']).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<iommu model='intel'>" in xml and "<ioapic driver='qemu'/>" in xml
    assert run(args)['changed'] is False
    # Back to the plain PC: the machine, IOMMU and displays are all changes.
    result = run(base_args(disk))
    assert result['changes'] == ['iommu', 'machine', 'video']


def test_iommu_needs_q35_before_connecting(run, disk):
    result = run(base_args(disk, iommu=True, uri='test:///nonexistent/aiclt.xml'))
    assert result['msg'] == 'iommu: true needs machine q35, not pc'


def test_domain_type(conn, run, disk):
    assert run(base_args(disk, domain_type='auto'))['domain']['type'] == 'qemu'
    result = run(base_args(disk, name='aiclt-dom2', domain_type='kvm', nics=[]))
    assert result['failed'] is True
    assert result['msg'].startswith('domain_type: kvm is not usable on test:///default')


def test_missing_kernel_refused(conn, run, disk, tmp_path):
    kernel = str(tmp_path / 'vmlinuz')
    result = run(base_args(disk, kernel=kernel, cmdline='console=ttyS0'))
    assert result['msg'] == 'kernel: %s does not exist' % kernel


def test_change_to_running_domain_requires_restart(conn, run, disk):
    run(base_args(disk, state='running'))
    result = run(base_args(disk, state='running', memory_mib=512))
    assert result['changed'] is True
    assert result['restart_required'] is True
    assert conn.lookupByName('aiclt-dom').isActive()
    # Still pending on the next run, which changes nothing.
    again = run(base_args(disk, state='running', memory_mib=512))
    assert again['changed'] is False and again['restart_required'] is True


def test_shutdown_and_running(conn, run, disk):
    assert run(base_args(disk, state='running'))['domain']['state'] == 'running'
    assert run(base_args(disk, state='running'))['changed'] is False
    down = run(base_args(disk, state='shutdown', shutdown_timeout=5))
    assert down['changed'] is True and down['domain']['state'] == 'shutoff'
    assert run(base_args(disk, state='shutdown'))['changed'] is False


def test_save_then_restore(conn, run, disk, tmp_path):
    save = str(tmp_path / 'aiclt-dom.save')
    run(base_args(disk, state='running'))
    saved = run(base_args(disk, state='saved', save_path=save))
    assert saved['changed'] is True and saved['domain']['state'] == 'shutoff'
    assert os.path.exists(save)
    files = read_owner(conn.lookupByName('aiclt-dom').XMLDesc(0))['files']
    assert {'role': 'save', 'path': save} in files
    assert run(base_args(disk, state='saved', save_path=save))['changed'] is False

    back = run(base_args(disk, state='running', save_path=save))
    assert back['changed'] is True and back['restored'] is True
    assert back['domain']['state'] == 'running'
    # The image was consumed: restoring it again would roll memory back against the disk.
    assert not os.path.exists(save)
    assert read_owner(conn.lookupByName('aiclt-dom').XMLDesc(0))['files'] == []


def test_saved_needs_running_domain(conn, run, disk, tmp_path):
    run(base_args(disk))
    save = str(tmp_path / 'aiclt-dom.save')
    result = run(base_args(disk, state='saved', save_path=save))
    assert result['failed'] is True
    assert result['msg'].startswith("save_path: domain 'aiclt-dom' is shutoff and %s does not exist" % save)


def test_restore_failure_falls_back_or_fails(conn, run, disk, tmp_path):
    save = tmp_path / 'aiclt-dom.save'
    save.write_text('not a libvirt save image')
    run(base_args(disk))
    strict = run(base_args(disk, state='running', save_path=str(save), restore_fallback=False))
    assert strict['failed'] is True
    assert strict['msg'].startswith('save_path: restoring aiclt-dom from %s failed' % save)
    assert not conn.lookupByName('aiclt-dom').isActive()

    loose = run(base_args(disk, state='running', save_path=str(save)))
    assert loose['changed'] is True and loose['restored'] is False
    assert 'booted cold' in loose['msg']
    assert any('booted it cold instead' in w for w in warnings(loose))
    assert conn.lookupByName('aiclt-dom').isActive()
    # Not ours, so it is left in place (with a warning) rather than deleted.
    assert save.exists()


def test_cloud_init_seed(conn, run, disk, tmp_path, fakebin, monkeypatch):
    tool = fakebin('genisoimage', FAKE_GENISOIMAGE)
    monkeypatch.setattr(libvirt_domain_runner, 'SEED_TOOLS', ('genisoimage',))
    seed = str(tmp_path / 'aiclt-dom-cidata.iso')
    args = base_args(disk, cloud_init={'user_data': '#cloud-config\nhostname: a\n'})

    check = run(args, check_mode=True)
    assert check['created_files'] == [seed] and not os.path.exists(seed)

    first = run(args)
    assert first['created_files'] == [seed]
    assert open(seed).read().startswith('ISO -quiet -o %s.tmp-' % seed)
    assert '-V cidata -J -r' in open(seed).read()
    assert "<source file='%s'/>" % seed in first['xml']
    owner = read_owner(first['xml'])
    assert owner['files'][0]['role'] == 'seed' and owner['files'][0]['digest'].startswith('sha256:')

    assert run(args)['changed'] is False
    assert len((tmp_path / 'bin' / 'genisoimage.log').read_text().splitlines()) == 1

    changed = run(base_args(disk, cloud_init={'user_data': '#cloud-config\nhostname: b\n'}))
    assert changed['changed'] is True and changed['changes'] == ['owner']
    assert changed['created_files'] == []
    assert len((tmp_path / 'bin' / 'genisoimage.log').read_text().splitlines()) == 2

    gone = run(dict(args, state='absent'))
    assert gone['removed_files'] == [seed] and not os.path.exists(seed)
    assert os.path.exists(disk) and tool.exists()


def test_cloud_init_without_tool_refused(conn, run, disk, monkeypatch):
    monkeypatch.setattr(libvirt_domain_runner, 'SEED_TOOLS', ('aiclt-no-such-iso-tool',))
    result = run(base_args(disk, cloud_init={'user_data': '#cloud-config\n'}))
    assert result['failed'] is True
    assert result['msg'].startswith('cloud_init: building the NoCloud seed ISO needs one of aiclt-no-such-iso-tool')
    assert 'aiclt-dom' not in dom_names(conn)


def test_power_only_keeps_definition_and_save_image(conn, run, disk, tmp_path):
    run(base_args(disk, vcpus=2))
    before = conn.lookupByName('aiclt-dom').XMLDesc(0)
    power = {'name': 'aiclt-dom', 'define': False}
    started = run(dict(power, state='running'))
    assert started['changed'] is True and started['domain']['state'] == 'running'
    assert started['domain']['vcpus'] == 2
    save = str(tmp_path / 'boot.save')
    assert run(dict(power, state='saved', save_path=save))['changed'] is True
    # Not recorded, so a restore keeps the image for the next one.
    assert read_owner(conn.lookupByName('aiclt-dom').XMLDesc(0))['files'] == []
    back = run(dict(power, state='running', save_path=save))
    assert back['restored'] is True and os.path.exists(save)
    assert run(dict(power, state='running', save_path=save))['changed'] is False
    after = conn.lookupByName('aiclt-dom').XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert 'vcpu placement' in after and ">2</vcpu>" in before and ">2</vcpu>" in after


def test_power_only_on_missing_domain_refused(conn, run):
    result = run({'name': 'aiclt-missing', 'define': False, 'state': 'running'})
    assert result['failed'] is True
    assert result['msg'] == "name: domain 'aiclt-missing' does not exist on %s; define it first (define: true)" % URI


def test_power_only_refuses_foreign_domain(conn, run):
    result = run({'name': 'test', 'define': False, 'state': 'shutdown'})
    assert result['failed'] is True
    assert "was not created by aicluster.lab" in result['msg']
