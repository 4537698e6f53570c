#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: libvirt_domain
short_description: Define, run, save or remove a libvirt lab VM that aicluster.lab owns
description:
  - Manages one persistent libvirt domain (VM) built from a compact spec, with CPU and memory, direct
    kernel boot or disk boot, a qcow2 overlay disk created on demand, an optional cloud-init NoCloud seed
    ISO, NICs on libvirt networks, PCI passthrough devices and a serial console.
  - Ownership is recorded in the domain XML as C(<metadata><lab:owner xmlns:lab="https://aicluster.lab/xmlns/lab/1"
    name="OWNER">) with one C(<lab:file role=... path=...>) child per file the module created (overlay,
    seed ISO, save image). A domain of the same name without that metadata, or with another owner, is
    never changed.
  - Idempotent. The desired definition and libvirt's normalised XML are both projected onto the options
    this module controls and compared; controllers, PCI addresses and other defaults libvirt adds do not
    count as changes.
  - A change to a running domain rewrites its persistent definition only and returns
    RV(restart_required=true); the module never restarts a guest on its own.
  - Every input check (field values, existence of networks, files, PCI devices, MAC collisions with other
    domains) runs before anything on the host changes.
  - File operations (overlay, seed ISO, existence checks) run where the module runs, so that must be the
    libvirt host, which is the case for the default local O(uri).
version_added: 0.1.0
author:
  - aicluster.lab developers (@aicluster)
requirements:
  - libvirt-python
  - qemu-img, when O(disk.base_image) creates an overlay
  - one of cloud-localds, genisoimage, xorrisofs or mkisofs, when O(cloud_init) is used
extends_documentation_fragment:
  - aicluster.lab.libvirt
options:
  name:
    description: Domain name.
    type: str
    required: true
  state:
    description:
      - V(present) defines the domain and leaves its run state alone.
      - V(running) also starts it (or restores it from O(save_path), see there); a paused domain is resumed.
      - V(shutdown) asks the guest for an ACPI shutdown, waits O(shutdown_timeout) seconds, then destroys it.
      - V(saved) saves the running domain's memory to O(save_path); the domain stops.
      - V(absent) destroys and undefines the domain and, with O(remove_storage), deletes the files this
        module created for it.
    type: str
    choices: [present, running, shutdown, absent, saved]
    default: present
  owner:
    description:
      - Owner recorded in the domain's metadata. A domain with this name that exists with another
        owner, or with no owner metadata, makes the module fail before any change.
    type: str
    default: aicluster.lab
  uuid:
    description:
      - UUID of the domain. When omitted an existing domain keeps its UUID and a new one gets libvirt's.
      - Changing the UUID of an existing domain is refused; remove the domain first.
    type: str
  vcpus:
    description: Number of virtual CPUs.
    type: int
    default: 1
  memory_mib:
    description: Memory in MiB (at least 16).
    type: int
    default: 1024
  domain_type:
    description:
      - Hypervisor type. V(auto) picks V(kvm) only when the host capabilities offer kvm for the host
        architecture and C(/proc/cpuinfo) has the vmx or svm flag; otherwise V(qemu) (TCG emulation).
      - V(kvm) on a host that cannot run it fails before any change.
    type: str
    choices: [auto, qemu, kvm]
    default: auto
  cpu_model:
    description:
      - Guest CPU model, for example V(qemu64), V(Haswell-noTSX), or the modes V(host-passthrough) and
        V(host-model) (kvm only).
      - Default V(qemu64) for qemu, V(host-passthrough) for kvm.
    type: str
  tb_cache_mib:
    description:
      - Size of QEMU's TCG translation block cache in MiB, as C(<features><tcg><tb-cache>). Only used with
        domain type qemu; V(0) leaves QEMU's default (which is 1 GiB for system emulation, a lot for a lab
        of small guests).
    type: int
    default: 64
  kernel:
    description: Kernel image for direct kernel boot. Without it the domain boots from O(disk).
    type: path
  initrd:
    description: Initrd for direct kernel boot; needs O(kernel).
    type: path
  cmdline:
    description: Kernel command line for direct kernel boot; needs O(kernel).
    type: str
  disk:
    description: The boot/root disk, attached as virtio C(vda).
    type: dict
    suboptions:
      path:
        description:
          - Disk image path. When it does not exist, O(disk.base_image) is required and the module creates
            it as a qcow2 overlay.
        type: path
        required: true
      base_image:
        description:
          - Backing image for the overlay created at O(disk.path) when that file does not exist. Its format
            is read with C(qemu-img info) and passed with C(-F). An existing O(disk.path) is used as is.
        type: path
      size_gib:
        description:
          - Virtual size of a newly created overlay in GiB, to grow it beyond the base image. Must not be
            smaller than the base image. Not applied to an overlay that already exists.
        type: int
      format:
        description:
          - Format of the image at O(disk.path). Never probed from the file, since a guest can write any
            header into a raw disk. Overlays are always qcow2.
        type: str
        choices: [qcow2, raw]
        default: qcow2
  cloud_init:
    description:
      - Build a cloud-init NoCloud seed ISO (volume label C(cidata)) named C(NAME-cidata.iso) in the
        directory of O(disk.path) and attach it as a read-only SATA cdrom. This is the path for booting a
        stock cloud image from disk instead of direct kernel boot. Needs O(disk).
      - The ISO is rebuilt when the content changes. Its default C(meta-data) carries an C(instance-id)
        derived from the content, so cloud-init applies a changed seed on the next boot.
      - Built with whichever of cloud-localds, genisoimage, xorrisofs or mkisofs is installed.
    type: dict
    suboptions:
      user_data:
        description: The C(user-data) document, usually starting with C(#cloud-config).
        type: str
      meta_data:
        description: The C(meta-data) document. Default sets C(instance-id) and C(local-hostname).
        type: str
      network_config:
        description: The C(network-config) document (cloud-init network config v1 or v2).
        type: str
  nics:
    description:
      - Network interfaces, in guest order.
      - On redefinition a NIC without O(nics[].mac) keeps the MAC the NIC at the same position had.
    type: list
    elements: dict
    default: []
    suboptions:
      network:
        description: Name of a libvirt network defined on O(uri).
        type: str
        required: true
      mac:
        description:
          - MAC address; libvirt generates one when omitted. Must not be used by another domain on O(uri).
            Quote it in YAML.
        type: str
      model:
        description: NIC model.
        type: str
        default: virtio
  hostdevs:
    description:
      - PCI devices to pass through, each a PCI address like V(0000:01:00.0) (C(01:00.0) is read as domain
        0000), or a vendor:device id like V(10de:2684), which stands for every device of the host that
        carries it (read from C(/sys/bus/pci/devices/*/vendor) and C(device)).
      - Each address must exist under C(/sys/bus/pci/devices) and each id must match at least one device;
        a device listed twice, directly or through an id, is refused. Attached managed, so libvirt binds
        them to vfio-pci when the domain starts.
      - On the host, the devices' IOMMU groups must be viable; M(aicluster.lab.vfio_preflight) says
        whether they are before anything is defined.
    type: list
    elements: str
    default: []
  machine:
    description:
      - QEMU machine type. V(pc) is the i440fx PC, V(q35) the Q35 chipset with PCI Express, which an
        emulated IOMMU (O(iommu)) and most GPU passthrough set-ups need.
      - libvirt stores the versioned name (C(pc-q35-7.2)); the module compares the family only.
    type: str
    choices: [pc, q35]
    default: pc
  iommu:
    description:
      - Give the guest an emulated Intel IOMMU (C(<iommu model='intel'>) with interrupt remapping and
        caching mode, plus C(<ioapic driver='qemu'/>), which interrupt remapping needs). Needs O(machine=q35).
      - The guest kernel must be told to use it, C(intel_iommu=on) on its command line. It then sees
        IOMMU groups (one per device on a q35 guest) and can bind devices to vfio-pci, which makes a
        lab guest a stand-in for a passthrough host. Works under TCG.
    type: bool
    default: false
  video:
    description:
      - Display devices, in order; the first is the primary. V(vga) is QEMU's std VGA (PCI id
        C(1234:1111), class C(0x030000)); V(virtio) is virtio-vga as the first and virtio-gpu (C(1af4:1050),
        class C(0x038000)) after another. Without any the guest has no display device, as a serial-console
        lab node needs none.
    type: list
    elements: str
    choices: [vga, virtio, bochs, qxl, cirrus]
    default: []
  serial_log:
    description:
      - File that receives the serial console output (C(<serial type='file'>) plus a matching console).
        When omitted the serial console is a pty (C(virsh console NAME)).
    type: path
  save_path:
    description:
      - Memory image file for O(state=saved) (required there).
      - With O(state=running), a domain that is not running is restored from this file when it exists,
        instead of booting cold; RV(restored) tells which happened. An image saved by this module is deleted
        once it has been restored (or once a cold start made it stale), because restoring it a second time
        would roll the guest's memory back against a disk that has moved on.
    type: path
  restore_fallback:
    description:
      - When restoring from O(save_path) fails, boot the domain cold instead of failing. A warning says so.
    type: bool
    default: true
  shutdown_timeout:
    description: Seconds O(state=shutdown) waits for the guest to power off before destroying it.
    type: int
    default: 60
  remove_storage:
    description:
      - With O(state=absent), also delete the overlay, seed ISO and save image files this module created
        for the domain (as recorded in its metadata). Other files are never deleted.
    type: bool
    default: true
  define:
    description:
      - When V(true), the domain is defined from the options given, and redefined when it differs.
      - When V(false), only the power state of the existing domain is managed (start, restore from
        O(save_path), save, shut down); its definition stays as libvirt has it, the definition options
        are ignored, and a missing domain is an error. A save image used this way is not recorded in
        the domain's metadata, so it is kept after a restore and can be restored again.
    type: bool
    default: true
notes:
  - Supports C(check_mode) (computes everything, creates no file, defines and starts nothing) and
    C(diff_mode) (before/after of the projected definition and run state).
seealso:
  - module: aicluster.lab.libvirt_network
'''

EXAMPLES = r'''
- name: Lab node with direct kernel boot, two NICs and a serial log, running
  aicluster.lab.libvirt_domain:
    name: lab-node1
    state: running
    vcpus: 2
    memory_mib: 4096
    kernel: /var/lib/aicluster/images/vmlinuz
    initrd: /var/lib/aicluster/images/initrd.img
    cmdline: console=ttyS0 root=/dev/vda rw
    disk:
      path: /var/lib/libvirt/images/lab-node1.qcow2
      base_image: /var/lib/aicluster/images/node-base.qcow2
      size_gib: 20
    nics:
      - network: lab-mgmt
        mac: "52:54:00:15:00:11"
      - network: lab-trunk
    serial_log: /var/log/aicluster/lab-node1.serial.log

- name: Boot a stock cloud image from disk, configured by a cloud-init NoCloud seed
  aicluster.lab.libvirt_domain:
    name: lab-cloud1
    state: running
    memory_mib: 2048
    disk:
      path: /var/lib/libvirt/images/lab-cloud1.qcow2
      base_image: /var/lib/aicluster/images/debian-12-genericcloud-amd64.qcow2
      size_gib: 10
    cloud_init:
      user_data: |
        #cloud-config
        users:
          - name: lab
            sudo: ALL=(ALL) NOPASSWD:ALL
            ssh_authorized_keys:
              - "{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"
      network_config: |
        version: 2
        ethernets:
          eth0:
            match: {name: "e*"}
            dhcp4: true
    nics:
      - network: lab-mgmt

- name: GPU node with a passed-through PCI device on a KVM host
  aicluster.lab.libvirt_domain:
    name: lab-gpu1
    domain_type: kvm
    vcpus: 8
    memory_mib: 32768
    disk:
      path: /var/lib/libvirt/images/lab-gpu1.qcow2
      base_image: /var/lib/aicluster/images/node-base.qcow2
    machine: q35
    hostdevs:
      - "0000:01:00.0"
      - "10de:1aef"      # and every device with this vendor:device id (here the GPU's audio function)
    nics:
      - network: lab-mgmt

- name: Lab node that stands in for a passthrough host (emulated IOMMU, a display device, a spare NIC)
  aicluster.lab.libvirt_domain:
    name: lab-gpu-standin
    machine: q35
    iommu: true
    video: [vga]
    kernel: /var/lib/aicluster/images/vmlinuz
    initrd: /var/lib/aicluster/images/initrd.img
    cmdline: console=ttyS0 root=/dev/vda rw intel_iommu=on
    disk:
      path: /var/lib/libvirt/images/lab-gpu-standin.qcow2
      base_image: /var/lib/aicluster/images/node-base.qcow2
    nics:
      - network: lab-mgmt
        mac: "52:54:00:15:00:21"
      - network: lab-trunk

- name: Save the node's memory to disk (the domain stops)
  aicluster.lab.libvirt_domain:
    name: lab-node1
    state: saved
    save_path: /var/lib/libvirt/qemu/save/lab-node1.save

- name: Bring it back from the saved image (cold boot if the image is unusable)
  aicluster.lab.libvirt_domain:
    name: lab-node1
    state: running
    save_path: /var/lib/libvirt/qemu/save/lab-node1.save
  register: node1

- name: Power off, waiting at most 30 s for the guest
  aicluster.lab.libvirt_domain:
    name: lab-node1
    state: shutdown
    shutdown_timeout: 30

- name: Remove the node and the overlay the module created for it
  aicluster.lab.libvirt_domain:
    name: lab-node1
    state: absent
'''

RETURN = r'''
domain:
  description: The domain after the run (in check mode, as it would be). Empty dict when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: lab-node1
    uuid:
      description: Domain UUID; null for a domain that check mode would create without O(uuid).
      type: str
      sample: b80d5451-f77d-45e1-9ef9-5dbdbc0954c0
    state:
      description: libvirt run state (running, paused, shutoff, ...).
      type: str
      sample: running
    type:
      description: Domain type chosen (qemu or kvm).
      type: str
      sample: qemu
    macs:
      description: MAC addresses of the NICs in order; null entries are still to be generated by libvirt.
      type: list
      elements: str
      sample: ["52:54:00:15:00:11", "52:54:00:9a:3c:01"]
    vcpus:
      description: Number of virtual CPUs.
      type: int
      sample: 2
    memory_mib:
      description: Memory in MiB.
      type: int
      sample: 4096
restart_required:
  description:
    - True when the domain is running with a definition that differs from its persistent one (changed by
      this run or an earlier one); restart it to apply the change.
  returned: always
  type: bool
  sample: false
restored:
  description: True when O(state=running) started the domain from O(save_path) instead of booting it.
  returned: always
  type: bool
  sample: false
xml:
  description: Persistent XML definition as libvirt reports it (the desired XML in check mode).
  returned: unless state=absent
  type: str
created_files:
  description: Files created by this run (overlay, seed ISO; in check mode, those it would create).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/libvirt/images/lab-node1.qcow2]
removed_files:
  description: Files deleted by O(state=absent) with O(remove_storage).
  returned: when state=absent
  type: list
  elements: str
changes:
  description: Projection keys that differ between the old and the new definition.
  returned: always
  type: list
  elements: str
  sample: [memory_mib, interfaces]
'''
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_conn import connect
from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_domain_runner import DomainRunner
from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import SpecError, validate_domain_params

try:
    import libvirt
except ImportError:
    libvirt = None  # connect() reports the missing library.


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present',
                       choices=['present', 'running', 'shutdown', 'absent', 'saved']),
            uri=dict(type='str', default='qemu:///system'),
            owner=dict(type='str', default='aicluster.lab'),
            uuid=dict(type='str'),
            vcpus=dict(type='int', default=1),
            memory_mib=dict(type='int', default=1024),
            domain_type=dict(type='str', default='auto', choices=['auto', 'qemu', 'kvm']),
            cpu_model=dict(type='str'),
            tb_cache_mib=dict(type='int', default=64),
            kernel=dict(type='path'),
            initrd=dict(type='path'),
            cmdline=dict(type='str'),
            disk=dict(type='dict', options=dict(
                path=dict(type='path', required=True),
                base_image=dict(type='path'),
                size_gib=dict(type='int'),
                format=dict(type='str', default='qcow2', choices=['qcow2', 'raw']),
            )),
            cloud_init=dict(type='dict', options=dict(
                user_data=dict(type='str'),
                meta_data=dict(type='str'),
                network_config=dict(type='str'),
            )),
            nics=dict(type='list', elements='dict', default=[], options=dict(
                network=dict(type='str', required=True),
                mac=dict(type='str'),
                model=dict(type='str', default='virtio'),
            )),
            hostdevs=dict(type='list', elements='str', default=[]),
            machine=dict(type='str', default='pc', choices=['pc', 'q35']),
            iommu=dict(type='bool', default=False),
            video=dict(type='list', elements='str', default=[], choices=['vga', 'virtio', 'bochs', 'qxl', 'cirrus']),
            serial_log=dict(type='path'),
            save_path=dict(type='path'),
            restore_fallback=dict(type='bool', default=True),
            shutdown_timeout=dict(type='int', default=60),
            remove_storage=dict(type='bool', default=True),
            define=dict(type='bool', default=True),
        ),
        required_if=[('state', 'saved', ('save_path',))],
        supports_check_mode=True,
    )
    if module.params['state'] != 'absent':
        # Catch bad values before even connecting.
        try:
            validate_domain_params(module.params)
        except SpecError as exc:
            module.fail_json(msg=str(exc))

    conn = connect(module, module.params['uri'])
    try:
        DomainRunner(module, conn).run()
    except SpecError as exc:
        module.fail_json(msg=str(exc))
    except libvirt.libvirtError as exc:
        module.fail_json(msg='domain %s: libvirt error on %s: %s' % (module.params['name'], module.params['uri'], exc))
    finally:
        conn.close()


if __name__ == '__main__':
    main()
