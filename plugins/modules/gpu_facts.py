#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: gpu_facts
short_description: Find the node's GPUs and the compute stack to install for them
description:
  - Lists the display (PCI class C(0x03xxxx)) and processing-accelerator (C(0x12xxxx)) devices
    from C(/sys/bus/pci/devices), with class, vendor and device ids, the bound driver, the IOMMU
    group, the NUMA node and the PCIe link (C(current_link_speed), C(current_link_width),
    C(max_link_speed), C(max_link_width)). sysfs lists a device whether or not a driver runs it.
  - Adds the GPU kernel modules loaded (C(/proc/modules)) and the device nodes present
    (C(/dev/nvidia*), C(/dev/kfd), C(/dev/dri/renderD*)).
  - Runs the vendor tools that are installed, C(nvidia-smi -q -x),
    C(rocm-smi --showproductname --showmeminfo vram --showdriverversion --showbus --json) and
    C(xpu-smi discovery -j), and ties their figures (model, memory, driver and CUDA versions, ECC
    and MIG modes) to the PCI devices by address. A tool that is not installed is not an error;
    one that fails or prints what cannot be read gives a warning naming it, and its figures are
    left out. Fields a tool adds in later versions are ignored.
  - "Recommends a compute stack, RV(recommended_stack), with the reason: V(cuda) for NVIDIA
    (vendor C(0x10de)), V(rocm) for AMD (C(0x1002)), V(oneapi) for a discrete Intel GPU
    (C(0x8086)), V(cpu) otherwise. A device of any other vendor is a display device without a
    compute stack."
  - Intel integrated graphics (an Intel display device at C(00:02.0), where every Intel iGPU
    sits) do not count for V(oneapi). They share the host's memory and bandwidth, so an
    inference node falls back to the CPU beside them.
  - When vendors are mixed, NVIDIA comes before AMD and AMD before Intel, and the reason names
    the vendors left out.
  - Adds the distribution from C(/etc/os-release), with the family whose repositories and packages
    the stack would come from (C(family) of RV(distribution)), so the gpu role needs no second module call.
  - It only reads, so it never reports C(changed) and runs the same in check mode.
  - The collection's roles read the same with no Python on the host, a plain-sh script over
    M(ansible.builtin.raw) (filter P(aicluster.lab.gpu_read_script#filter)) parsed on the controller
    (filter P(aicluster.lab.gpu_read#filter)); the filter returns what this module returns, its
    warnings as a list.
version_added: 0.5.0
author:
  - aicluster.lab contributors (@aicluster)
options:
  vendor_tools:
    description:
      - Run the vendor tools that are installed. V(false) reads sysfs, C(/proc/modules) and
        C(/dev) only, which is quicker and never touches a driver.
    type: bool
    default: true
notes:
  - Supports C(check_mode); it reads only, so check mode returns the same facts.
  - The tools are looked for in C(PATH) and in C(/opt/rocm/bin) (where ROCm installs
    rocm-smi).
  - Linux only.
seealso:
  - plugin: aicluster.lab.gpu_read
    plugin_type: filter
  - name: Linux PCI sysfs attributes
    description: The files this module reads under C(/sys/bus/pci/devices).
    link: https://www.kernel.org/doc/Documentation/ABI/testing/sysfs-bus-pci
'''

EXAMPLES = r'''
- name: Find the GPUs
  aicluster.lab.gpu_facts:
  register: gpu

- name: Say which stack the node gets
  ansible.builtin.debug:
    msg: "{{ gpu.recommended_stack }}: {{ gpu.stack_reason }}"

- name: Only what the kernel knows (no vendor tool runs)
  aicluster.lab.gpu_facts:
    vendor_tools: false
  register: gpu_sysfs

- name: Stop when an NVIDIA GPU has no driver bound
  ansible.builtin.assert:
    that: gpu.gpus | selectattr('vendor', 'equalto', 'NVIDIA') | rejectattr('driver') | list | length == 0
    fail_msg: "{{ gpu.stack_reason }}"
'''

RETURN = r'''
# Samples: an AWS Tesla T4 node (fixtures/gpu in the collection's tests).
gpus:
  description: The display and processing-accelerator PCI devices, in address order.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: PCI address as sysfs spells it.
      type: str
      sample: "0000:00:1e.0"
    vendor_id:
      description: PCI vendor id.
      type: str
      sample: "0x10de"
    vendor:
      description: V(NVIDIA), V(AMD), V(Intel), or null for any other vendor.
      type: str
      sample: NVIDIA
    device_id:
      description: PCI device id.
      type: str
      sample: "0x1eb8"
    class:
      description: PCI class, base class, subclass and programming interface.
      type: str
      sample: "0x030200"
    kind:
      description: V(display) (class 0x03) or V(accelerator) (class 0x12).
      type: str
      sample: display
    integrated:
      description: True for Intel integrated graphics.
      type: bool
      sample: false
    compute_stack:
      description: V(cuda), V(rocm) or V(oneapi) when the device has one, else null.
      type: str
      sample: cuda
    driver:
      description: The driver bound to the device, null when none is.
      type: str
      sample: nvidia
    modules:
      description: The vendor's GPU kernel modules that are loaded.
      type: list
      elements: str
      sample: [nvidia, nvidia_drm, nvidia_modeset]
    iommu_group:
      description: The device's IOMMU group, null without an IOMMU.
      type: int
      sample: 2
    numa_node:
      description: The device's NUMA node, null when the platform gives none.
      type: int
      sample: null
    link:
      description: The PCIe link, each value null when sysfs has no such file.
      type: dict
      sample: {current_speed: 8.0 GT/s PCIe, current_width: 8, max_speed: 8.0 GT/s PCIe, max_width: 16}
    device_nodes:
      description: The device nodes its stack uses (its render node; /dev/nvidia* for NVIDIA, /dev/kfd for AMD).
      type: list
      elements: str
      sample: [/dev/nvidia-uvm, /dev/nvidia0, /dev/nvidiactl]
    tool:
      description:
        - The vendor tool's figures for this device, null when no tool reported it.
        - C(tool) names the tool. C(product_name), C(memory_total_mib) and C(driver_version) come
          from nvidia-smi and rocm-smi; C(cuda_version), C(ecc_mode) and C(mig_mode) from
          nvidia-smi (null where it says N/A); C(card) from rocm-smi; C(drm_device) and
          C(function_type) from xpu-smi.
      type: dict
      sample: {tool: nvidia-smi, product_name: Tesla T4, memory_total_mib: 15360, driver_version: 515.105.01,
               cuda_version: '11.7', ecc_mode: Enabled, mig_mode: null}
recommended_stack:
  description: V(cuda), V(rocm), V(oneapi) or V(cpu).
  returned: always
  type: str
  sample: cuda
stack_reason:
  description: Why, naming the device that decided, or each device found when none has a stack.
  returned: always
  type: str
  sample: "NVIDIA 10de:1eb8 at 0000:00:1e.0: cuda"
loaded_modules:
  description: GPU kernel modules loaded, of any vendor.
  returned: always
  type: list
  elements: str
  sample: [nvidia, nvidia_drm, nvidia_modeset]
device_nodes:
  description: GPU device nodes present.
  returned: always
  type: list
  elements: str
  sample: [/dev/nvidia-uvm, /dev/nvidia0, /dev/nvidiactl]
distribution:
  description:
    - The host's C(/etc/os-release) C(ID) and C(VERSION_ID), and its family for the GPU stacks,
      V(Debian), V(Ubuntu) or V(RHEL) (from C(ID), then C(ID_LIKE)); null where none applies or
      the file is missing.
  returned: always
  type: dict
  sample: {id: debian, version_id: '12', family: Debian}
tools:
  description: For each vendor tool, V(read), V(absent) (not installed, or O(vendor_tools) false),
    V(failed) (it exited with an error) or V(malformed) (its output could not be read).
  returned: always
  type: dict
  sample: {nvidia-smi: read, rocm-smi: absent, xpu-smi: absent}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aicluster.lab.plugins.module_utils import gpu
from ansible_collections.aicluster.lab.plugins.module_utils import gpu_stack

# Where the tools are looked for before PATH (ROCm's bin directory).
EXTRA_PATHS = list(gpu.TOOL_DIRS)


def run_tools(module):
    """{tool: {rc, stdout, stderr}, or None when it is not installed} (gpu.py's read of tools)."""
    ran = {}
    for tool, args in sorted(gpu.TOOL_COMMANDS.items()):
        path = module.get_bin_path(tool, opt_dirs=EXTRA_PATHS)
        if not path:
            ran[tool] = None
            continue
        rc, out, err = module.run_command([path] + args)
        ran[tool] = {'rc': rc, 'stdout': out, 'stderr': err}
    return ran


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vendor_tools=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    tools = run_tools(module) if module.params['vendor_tools'] else None
    # The same read and judgement as the gpu_read filter's over plain sh (module_utils/gpu_read.py).
    result = gpu.gather(gpu.read_host(gpu.SYSFS_ROOT, gpu.DEV_ROOT, gpu.PROC_MODULES, gpu_stack.OS_RELEASE, tools))
    for message in result.pop('warnings'):
        module.warn(message)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
