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
  uri:
    description: libvirt connection URI.
    type: str
    default: qemu:///system
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
      - PCI devices to pass through, as addresses like V(0000:01:00.0) (C(01:00.0) is read as domain 0000).
        Each must exist under C(/sys/bus/pci/devices). Attached managed, so libvirt binds them to vfio.
    type: list
    elements: str
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
    hostdevs:
      - "0000:01:00.0"
    nics:
      - network: lab-mgmt

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

import hashlib
import json
import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_conn import (
    connect,
    host_arch,
    host_can_kvm,
    lookup_domain,
    lookup_network,
    macs_of_other_domains,
)
from ansible_collections.aicluster.lab.plugins.module_utils.libvirt_xml import (
    SpecError,
    build_domain_xml,
    changed_keys,
    merge_files,
    project_domain,
    render,
    resolve_cpu_model,
    validate_domain_params,
)

try:
    import libvirt
except ImportError:
    libvirt = None  # connect() reports the missing library.

SYSFS_PCI = '/sys/bus/pci/devices'
SEED_TOOLS = ('cloud-localds', 'genisoimage', 'xorrisofs', 'mkisofs')
STATE_NAMES = {
    0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused',
    4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'pmsuspended',
}
UNDEFINE_FLAGS = 1 | 2  # VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


class DomainRunner(object):

    def __init__(self, module, conn):
        self.module = module
        self.conn = conn
        self.params = module.params
        self.name = module.params['name']
        self.uri = module.params['uri']
        self.created = []
        self.actions = []
        self.restored = False

    # -- helpers -------------------------------------------------------------

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    def state_of(self, dom):
        if dom is None:
            return 'absent'
        return STATE_NAMES.get(dom.state()[0], 'unknown')

    def summary(self, proj, state):
        if proj is None:
            return {}
        return {
            'name': proj['name'],
            'uuid': proj['uuid'],
            'state': state,
            'type': proj['type'],
            'macs': [iface['mac'] for iface in proj['interfaces']],
            'vcpus': proj['vcpus'],
            'memory_mib': proj['memory_mib'],
        }

    def check_owner(self, before):
        owner = self.params['owner']
        recorded = before['owner']
        if recorded is None or recorded['name'] != owner:
            found = "owner '%s'" % recorded['name'] if recorded else 'no owner metadata'
            self.fail("name: domain '%s' exists and was not created by %s (%s); remove it or choose "
                      "another name" % (self.name, owner, found))

    # -- host-dependent validation (no changes) -------------------------------

    def resolve_type(self, spec):
        requested = spec['type']
        can_kvm = host_can_kvm(self.conn)
        if requested == 'auto':
            spec['type'] = 'kvm' if can_kvm else 'qemu'
        elif requested == 'kvm' and not can_kvm:
            self.fail('domain_type: kvm is not usable on %s (libvirt offers no kvm for the host arch or '
                      'the CPU lacks the vmx/svm flag); use qemu or auto' % self.uri)
        spec['cpu_model'] = resolve_cpu_model(spec['type'], spec['cpu_model'])
        spec['arch'] = host_arch(self.conn)

    def check_paths(self, spec):
        for key in ('kernel', 'initrd'):
            if spec[key] and not os.path.isfile(spec[key]):
                self.fail('%s: %s does not exist' % (key, spec[key]))
        writable = [('serial_log', spec['serial_log'])]
        if self.params['state'] == 'saved':
            writable.append(('save_path', self.params['save_path']))
        for key, path in writable:
            if path and not os.path.isdir(os.path.dirname(path)):
                self.fail('%s: %s cannot be written, directory %s does not exist'
                          % (key, path, os.path.dirname(path)))

    def check_hostdevs(self, spec):
        for index, addr in enumerate(spec['hostdevs']):
            if not os.path.exists(os.path.join(SYSFS_PCI, addr)):
                self.fail('hostdevs[%d]: %s does not exist on this host (no %s)'
                          % (index, addr, os.path.join(SYSFS_PCI, addr)))

    def check_nics(self, spec, before, will_start):
        old_macs = [iface['mac'] for iface in before['interfaces']] if before else []
        explicit = {}
        for index, nic in enumerate(spec['nics']):
            net = lookup_network(self.conn, nic['network'])
            if net is None:
                self.fail("nics[%d].network: network '%s' is not defined on %s" % (index, nic['network'], self.uri))
            if will_start and not net.isActive():
                self.fail("nics[%d].network: network '%s' on %s is defined but not active; start it first "
                          "(aicluster.lab.libvirt_network does)" % (index, nic['network'], self.uri))
            if nic['mac']:
                explicit[nic['mac']] = index
        used = macs_of_other_domains(self.conn, before['uuid'] if before else None)
        for index, nic in enumerate(spec['nics']):
            if nic['mac'] is None and index < len(old_macs) and old_macs[index]:
                kept = old_macs[index]
                if kept in explicit:
                    self.fail('nics[%d].mac: the MAC %s it had is now given to nics[%d]; set nics[%d].mac '
                              'explicitly' % (index, kept, explicit[kept], index))
                nic['mac'] = kept
                continue
            if nic['mac'] and nic['mac'] in used:
                self.fail("nics[%d].mac: %s is already used by domain '%s'" % (index, nic['mac'], used[nic['mac']]))

    def qemu_img(self):
        path = self.module.get_bin_path('qemu-img')
        if not path:
            self.fail('disk.base_image: qemu-img is needed to create the overlay and was not found in PATH')
        return path

    def image_info(self, path):
        rc, out, err = self.module.run_command([self.qemu_img(), 'info', '--force-share', '--output=json', path])
        if rc != 0:
            self.fail('disk.base_image: qemu-img cannot read %s: %s' % (path, err.strip()))
        try:
            return json.loads(out)
        except ValueError:
            self.fail('disk.base_image: qemu-img info printed no JSON for %s' % path)

    def plan_disk(self, spec):
        """Return the overlay creation command, or None when the disk exists."""
        disk = spec['disk']
        if not disk:
            return None
        path = disk['path']
        if os.path.exists(path):
            return None
        if not disk['base_image']:
            self.fail('disk.path: %s does not exist; give disk.base_image to create it as an overlay' % path)
        if not os.path.isdir(os.path.dirname(path)):
            self.fail('disk.path: %s cannot be created, directory %s does not exist' % (path, os.path.dirname(path)))
        base = disk['base_image']
        if not os.path.isfile(base):
            self.fail('disk.base_image: %s does not exist' % base)
        info = self.image_info(base)
        base_format = info.get('format')
        if not base_format:
            self.fail('disk.base_image: qemu-img reports no format for %s' % base)
        cmd = [self.qemu_img(), 'create', '-q', '-f', 'qcow2', '-F', base_format, '-b', base, path]
        if disk['size_gib']:
            wanted = disk['size_gib'] * 1024 ** 3
            virtual = int(info.get('virtual-size') or 0)
            if wanted < virtual:
                self.fail('disk.size_gib: %d is smaller than the virtual size of disk.base_image %s (%.1f GiB)'
                          % (disk['size_gib'], base, virtual / 1024.0 ** 3))
            cmd.append('%dG' % disk['size_gib'])
        return cmd

    def plan_seed(self, spec, recorded):
        """Return (entry, files) for the seed ISO, or None when it is up to date or not wanted."""
        cloud_init = self.params.get('cloud_init')
        if not cloud_init:
            return None, None
        docs = {
            'user-data': cloud_init.get('user_data') or '#cloud-config\n{}\n',
            'network-config': cloud_init.get('network_config'),
        }
        digest = hashlib.sha256(json.dumps(docs, sort_keys=True).encode('utf-8')).hexdigest()
        meta = cloud_init.get('meta_data')
        if meta is None:
            # A content-derived instance-id makes cloud-init treat a changed seed as a new instance.
            meta = 'instance-id: %s-%s\nlocal-hostname: %s\n' % (self.name, digest[:12], self.name)
        docs['meta-data'] = meta
        digest = 'sha256:' + hashlib.sha256(json.dumps(docs, sort_keys=True).encode('utf-8')).hexdigest()
        path = spec['cdrom']
        entry = {'role': 'seed', 'path': path, 'digest': digest}
        old = [f for f in recorded if f['path'] == path]
        if os.path.exists(path):
            if not old:
                self.fail('cloud_init: %s exists and was not created by this module for %s; remove it'
                          % (path, self.name))
            if old[0].get('digest') == digest:
                return entry, None
        return entry, dict((k, v) for k, v in docs.items() if v is not None)

    def seed_tool(self):
        for tool in SEED_TOOLS:
            path = self.module.get_bin_path(tool)
            if path:
                return tool, path
        self.fail('cloud_init: building the NoCloud seed ISO needs one of %s and none is installed '
                  '(Debian: apt-get install genisoimage, or cloud-image-utils)' % ', '.join(SEED_TOOLS))

    # -- host changes ---------------------------------------------------------

    def create_overlay(self, cmd, path):
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.fail('disk.path: qemu-img could not create overlay %s: %s' % (path, (err or out).strip()))
        self.created.append(path)

    def build_seed(self, tool, path, docs):
        tool_name, tool_path = tool
        workdir = tempfile.mkdtemp(prefix='aicluster-seed-')
        try:
            names = []
            for doc in ('user-data', 'meta-data', 'network-config'):
                if doc in docs:
                    with open(os.path.join(workdir, doc), 'w') as handle:
                        handle.write(docs[doc])
                    names.append(os.path.join(workdir, doc))
            # Build beside the target and rename, so a failed build never leaves half an ISO in place.
            tmp = '%s.tmp-%d' % (path, os.getpid())
            if tool_name == 'cloud-localds':
                cmd = [tool_path]
                if 'network-config' in docs:
                    cmd += ['-N', os.path.join(workdir, 'network-config')]
                cmd += [tmp, os.path.join(workdir, 'user-data'), os.path.join(workdir, 'meta-data')]
            else:
                cmd = [tool_path, '-quiet', '-o', tmp, '-V', 'cidata', '-J', '-r'] + names
            rc, out, err = self.module.run_command(cmd)
            if rc != 0:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                self.fail('cloud_init: %s failed to build %s: %s' % (tool_name, path, (err or out).strip()))
            existed = os.path.exists(path)
            os.rename(tmp, path)
            if not existed:
                self.created.append(path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def rollback(self):
        for path in self.created:
            try:
                os.unlink(path)
            except OSError:
                pass

    def define(self, xml_text):
        try:
            return self.conn.defineXML(xml_text)
        except libvirt.libvirtError as exc:
            self.rollback()
            self.fail('name: libvirt refused the definition of %s: %s' % (self.name, exc), xml=xml_text)

    def shutdown(self, dom, timeout):
        if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            # A paused or suspended guest cannot react to the ACPI button.
            was = self.state_of(dom)
            dom.destroy()
            return 'destroyed (it was %s, so ACPI could not reach it)' % was
        if timeout > 0:
            try:
                dom.shutdown()
            except libvirt.libvirtError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not dom.isActive():
                    return 'shut down by ACPI'
                time.sleep(0.5)
        if dom.isActive():
            dom.destroy()
            return 'destroyed after %ds without ACPI power-off' % timeout
        return 'shut down by ACPI'

    def remove_if_ours(self, path, recorded):
        if any(f['path'] == path and f['role'] == 'save' for f in recorded):
            try:
                os.unlink(path)
            except OSError:
                pass
            return True
        return False

    def start(self, dom, save_path, recorded):
        """Restore from save_path when possible, else boot. Returns a message."""
        if save_path and os.path.exists(save_path):
            problem = None
            try:
                image_uuid = project_domain(self.conn.saveImageGetXMLDesc(save_path, 0))['uuid']
                if image_uuid != dom.UUIDString():
                    problem = 'the image belongs to domain UUID %s, not %s' % (image_uuid, dom.UUIDString())
                else:
                    self.conn.restoreFlags(save_path, None, 0)
                    self.restored = True
            except libvirt.libvirtError as exc:
                problem = str(exc)
            if self.restored:
                if not self.remove_if_ours(save_path, recorded):
                    self.module.warn('restored %s from %s, which this module did not create; delete it, restoring '
                                     'it again would roll the guest back against a newer disk' % (self.name, save_path))
                return 'restored from %s' % save_path
            if not self.params['restore_fallback']:
                self.fail('save_path: restoring %s from %s failed: %s' % (self.name, save_path, problem))
            self.module.warn('restoring %s from %s failed (%s); booted it cold instead'
                             % (self.name, save_path, problem))
            dom.create()
            if not self.remove_if_ours(save_path, recorded):
                self.module.warn('%s is stale after the cold boot; delete it' % save_path)
            return 'restore from %s failed, booted cold' % save_path
        dom.create()
        return 'started'

    # -- states ---------------------------------------------------------------

    def run_absent(self, dom, before):
        result = {'changed': False, 'domain': {}, 'restart_required': False, 'restored': False,
                  'created_files': [], 'removed_files': [], 'changes': []}
        if dom is None:
            self.module.exit_json(msg='domain %s is absent' % self.name, **result)
        files = before['owner']['files'] if self.params['remove_storage'] else []
        doomed = [f['path'] for f in files if os.path.exists(f['path'])]
        result['changed'] = True
        result['changes'] = changed_keys(before, None)
        result['removed_files'] = doomed
        if self.module._diff:
            result['diff'] = {'before': render(dict(before, state=self.state_of(dom))), 'after': ''}
        if self.module.check_mode:
            self.module.exit_json(msg='domain %s would be removed' % self.name, **result)
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(UNDEFINE_FLAGS)
        for path in doomed:
            try:
                os.unlink(path)
            except OSError as exc:
                self.module.warn('could not delete %s: %s' % (path, exc))
        self.module.exit_json(msg='domain %s removed' % self.name, **result)

    def plan_definition(self, dom, before, current_state, active):
        """Validate the options against the host and build the desired definition.

        Only reads the host: nothing is created before the check-mode exit.
        """
        params = self.params
        state = params['state']
        save_path = params.get('save_path')
        spec = validate_domain_params(params)
        will_start = state == 'running' and not active
        self.resolve_type(spec)
        if spec['uuid'] and before and spec['uuid'] != before['uuid']:
            self.fail("uuid: %s differs from UUID %s of the existing domain '%s'; remove the domain to change it"
                      % (spec['uuid'], before['uuid'], self.name))
        if before and not spec['uuid']:
            spec['uuid'] = before['uuid']
        self.check_paths(spec)
        self.check_hostdevs(spec)
        self.check_nics(spec, before, will_start)
        overlay_cmd = self.plan_disk(spec)
        recorded = before['owner']['files'] if before else []
        seed_entry, seed_docs = self.plan_seed(spec, recorded)
        tool = self.seed_tool() if seed_docs else None

        new_entries = []
        planned_files = []
        if overlay_cmd:
            new_entries.append({'role': 'overlay', 'path': spec['disk']['path']})
            planned_files.append(spec['disk']['path'])
        if seed_entry:
            new_entries.append(seed_entry)
            if seed_docs and not os.path.exists(seed_entry['path']):
                planned_files.append(seed_entry['path'])
        if state == 'saved' and active:
            new_entries.append({'role': 'save', 'path': save_path})
        spec['files'] = merge_files(recorded, new_entries)
        desired_xml = build_domain_xml(spec)
        return (spec, desired_xml, project_domain(desired_xml), planned_files, recorded,
                overlay_cmd, seed_entry, seed_docs, tool)

    def run(self):
        params = self.params
        state = params['state']
        dom = lookup_domain(self.conn, self.name)
        before = project_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if dom else None
        if dom is not None:
            self.check_owner(before)
        if state == 'absent':
            self.run_absent(dom, before)

        current_state = self.state_of(dom)
        active = current_state in ('running', 'paused', 'blocked', 'pmsuspended')
        save_path = params.get('save_path')
        if state == 'saved' and not active and not os.path.exists(save_path):
            self.fail("save_path: domain '%s' is %s and %s does not exist; only a running domain can be saved"
                      % (self.name, current_state, save_path))
        if params['define']:
            spec, desired_xml, desired, planned_files, recorded, overlay_cmd, seed_entry, seed_docs, tool = \
                self.plan_definition(dom, before, current_state, active)
        else:
            # Power state only: the definition stays as libvirt has it.
            if dom is None:
                self.fail("name: domain '%s' does not exist on %s; define it first (define: true)" % (self.name, self.uri))
            desired_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            desired = before
            recorded = before['owner']['files']
            spec = {'files': recorded}
            planned_files, overlay_cmd, seed_entry, seed_docs, tool = [], None, None, None, None
        must_define = before is None or before != desired
        if must_define:
            self.actions.append('define' if before is None else 'redefine')
        if overlay_cmd:
            self.actions.append('create overlay')
        if seed_docs:
            self.actions.append('build seed ISO')

        target_state = current_state if dom else 'shutoff'
        if state == 'running' and current_state != 'running':
            if current_state == 'paused':
                self.actions.append('resume')
            elif save_path and os.path.exists(save_path):
                self.actions.append('restore from %s' % save_path)
            else:
                self.actions.append('start')
            target_state = 'running'
        elif state == 'shutdown' and active:
            self.actions.append('shutdown')
            target_state = 'shutoff'
        elif state == 'saved' and active:
            self.actions.append('save')
            target_state = 'shutoff'

        result = {
            'changed': bool(self.actions),
            'changes': changed_keys(before, desired),
            'restart_required': False,
            'restored': False,
            'created_files': planned_files,
        }
        if self.module._diff:
            result['diff'] = {
                'before': render(dict(before, state=current_state)) if before else '',
                'after': render(dict(desired, state=target_state)),
                'before_header': '%s (libvirt)' % self.name,
                'after_header': '%s (desired)' % self.name,
            }

        if self.module.check_mode:
            if active and target_state != 'shutoff':
                result['restart_required'] = self.live_differs(dom, desired)
            result['domain'] = self.summary(desired, target_state)
            result['xml'] = desired_xml
            msg = 'domain %s: %s' % (self.name, ', '.join(self.actions) if self.actions else 'no change')
            self.module.exit_json(msg=msg + (' (check mode)' if self.actions else ''), **result)

        # From here on the host changes.
        if overlay_cmd:
            self.create_overlay(overlay_cmd, spec['disk']['path'])
        if seed_docs:
            self.build_seed(tool, seed_entry['path'], seed_docs)
        if must_define:
            dom = self.define(desired_xml)

        notes = []
        if state == 'running':
            if current_state == 'paused':
                dom.resume()
                notes.append('resumed')
            elif not active:
                notes.append(self.start(dom, save_path, recorded))
                consumed = [f for f in spec['files'] if f['role'] == 'save' and not os.path.exists(f['path'])]
                if consumed:
                    # The save image is gone (restored or made stale); stop recording it.
                    spec['files'] = [f for f in spec['files'] if f not in consumed]
                    self.define(build_domain_xml(spec))
        elif state == 'shutdown' and active:
            notes.append(self.shutdown(dom, params['shutdown_timeout']))
        elif state == 'saved' and active:
            dom.save(save_path)
            notes.append('saved to %s' % save_path)

        dom = lookup_domain(self.conn, self.name)
        final_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        final = project_domain(final_xml)
        final_state = self.state_of(dom)
        if dom.isActive():
            result['restart_required'] = self.live_differs(dom, final)
        result['restored'] = self.restored
        result['created_files'] = list(self.created)
        result['domain'] = self.summary(final, final_state)
        result['xml'] = final_xml
        msg = 'domain %s: %s' % (self.name, ', '.join(self.actions) if self.actions else 'no change')
        if notes:
            msg += ' (%s)' % '; '.join(notes)
        if result['restart_required']:
            msg += '; the running domain differs from its definition, restart it to apply'
        self.module.exit_json(msg=msg, **result)

    def live_differs(self, dom, desired):
        live = project_domain(dom.XMLDesc(0))
        # The owner metadata has no effect on the guest, and the UUID cannot change while it runs.
        ignore = {'owner', 'uuid'}
        if desired['cpu_model'] == 'host-model':
            # libvirt expands host-model into a concrete custom model once the guest runs.
            ignore.add('cpu_model')
        live_cmp = dict((k, v) for k, v in live.items() if k not in ignore)
        want_cmp = dict((k, v) for k, v in desired.items() if k not in ignore)
        # In check mode a NIC that libvirt will give a MAC has none in the desired spec yet.
        if len(live_cmp['interfaces']) == len(want_cmp['interfaces']):
            want_cmp['interfaces'] = [dict(w, mac=w['mac'] or lv['mac'])
                                      for w, lv in zip(want_cmp['interfaces'], live_cmp['interfaces'])]
        return live_cmp != want_cmp


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
