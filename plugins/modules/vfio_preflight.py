#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: vfio_preflight
short_description: Say whether PCI devices can be passed through, before anything is defined
description:
  - Reads, on the host that would pass the devices to a guest (the hypervisor), everything PCI
    passthrough needs, and names each problem in a sentence.
  - "IOMMU off: C(/sys/kernel/iommu_groups) holds no group; the message quotes the C(intel_iommu=),
    C(amd_iommu=) or C(iommu=) parameters of C(/proc/cmdline), or says there are none."
  - "vfio modules missing: C(vfio), C(vfio_iommu_type1) or C(vfio_pci) is neither loaded (or built in,
    C(/sys/module/NAME)) nor listed in the running kernel's C(modules.dep) or C(modules.builtin)."
  - "Device unknown: an address that is not under C(/sys/bus/pci/devices), or a vendor:device id no
    device carries."
  - "Group shared: another device of a chosen device's IOMMU group is bound to a driver other than
    vfio-pci, pci-stub or pcieport (the drivers that leave DMA to the group's owner) and is not chosen
    itself; the message names each such device with its driver. The kernel refuses such a group to vfio."
  - It only reads, so it never reports C(changed) and runs the same in check mode.
version_added: 0.6.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  devices:
    description:
      - The devices to pass through, each a PCI address like V(0000:01:00.0) or a vendor:device id like
        V(10de:2684), which stands for every device that carries it (as in
        O(aicluster.lab.libvirt_domain#module:hostdevs)).
    type: list
    elements: str
    required: true
  fail_on_problems:
    description:
      - Fail, with the problems as the message, when any is found. V(false) returns them in
        RV(problems) for a check to judge.
    type: bool
    default: true
notes:
  - Supports C(check_mode); it reads only.
  - Linux only.
seealso:
  - module: aicluster.lab.libvirt_domain
  - name: VFIO - Virtual Function I/O (groups, viability)
    description: The kernel's account of IOMMU groups and what makes one usable by vfio.
    link: https://docs.kernel.org/driver-api/vfio.html
'''

EXAMPLES = r'''
- name: Before defining the GPU guest, check that its GPU and audio function can be passed through
  aicluster.lab.vfio_preflight:
    devices:
      - "0000:01:00.0"
      - "10de:22ba"

- name: Read the state only, for a check of the report
  aicluster.lab.vfio_preflight:
    devices: "{{ vfio_devices }}"
    fail_on_problems: false
  register: passthrough
'''

RETURN = r'''
# Samples: the gpu scenario's q35 lab node (emulated Intel IOMMU), its spare NIC chosen.
ready:
  description: True when no problem was found.
  returned: always
  type: bool
  sample: true
problems:
  description: Each problem as a sentence naming the device, group, driver or module.
  returned: always
  type: list
  elements: str
  sample: ["IOMMU group 2 of 0000:01:00.0 is shared with devices not bound to vfio-pci: 0000:01:00.1 (snd_hda_intel);
           pass them through too or unbind them"]
iommu:
  description: Whether the kernel runs an IOMMU.
  returned: always
  type: dict
  contains:
    enabled:
      description: True when the kernel made IOMMU groups.
      type: bool
      sample: true
    groups:
      description: Number of IOMMU groups.
      type: int
      sample: 9
    cmdline:
      description: The IOMMU parameters of the kernel command line.
      type: list
      elements: str
      sample: [intel_iommu=on]
modules:
  description: State of each vfio module, V(loaded) (or built in), V(available) or V(missing).
  returned: always
  type: dict
  sample: {"vfio": "loaded", "vfio_iommu_type1": "loaded", "vfio_pci": "available"}
devices:
  description: The chosen devices that exist, with their group.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: PCI address.
      type: str
      sample: "0000:02:00.0"
    vendor_id:
      description: PCI vendor id.
      type: str
      sample: "0x1af4"
    device_id:
      description: PCI device id.
      type: str
      sample: "0x1041"
    class:
      description: PCI class.
      type: str
      sample: "0x020000"
    driver:
      description: The bound driver, null when none.
      type: str
      sample: virtio-pci
    driver_override:
      description: The driver the device is reserved for (C(driver_override)), null when none.
      type: str
    bound_to_vfio:
      description: True when vfio-pci holds the device.
      type: bool
      sample: false
    iommu_group:
      description: The IOMMU group, null without an IOMMU.
      type: int
      sample: 10
    group_members:
      description: Every device of the group, the device itself included.
      type: list
      elements: str
      sample: ["0000:02:00.0"]
    group_blocking:
      description: Members not chosen and bound to a driver that makes the group unusable, as C(address (driver)).
      type: list
      elements: str
      sample: []
unknown:
  description: The entries of O(devices) that name no device of the host.
  returned: always
  type: list
  elements: str
  sample: []
'''

import glob
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils import vfio


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            devices=dict(type='list', elements='str', required=True),
            fail_on_problems=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    kernel = os.path.join(vfio.MODULES_ROOT, os.uname()[2])
    lists = [_read(path) for path in glob.glob(os.path.join(kernel, 'modules.dep'))
             + glob.glob(os.path.join(kernel, 'modules.builtin'))]
    try:
        result = vfio.preflight(module.params['devices'], sysfs_root=vfio.SYSFS_ROOT,
                                cmdline=_read(vfio.PROC_CMDLINE) or '', kernel_lists=lists, dev_root=vfio.DEV_ROOT)
    except vfio.DeviceError as exc:
        module.fail_json(msg=str(exc))
    if result['problems'] and module.params['fail_on_problems']:
        module.fail_json(msg='PCI passthrough is not possible: ' + '; '.join(result['problems']), **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
