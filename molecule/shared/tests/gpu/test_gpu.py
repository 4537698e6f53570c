"""The gpu scenario's node as a person would check it by hand after the side effect: the
emulated IOMMU on, the display devices on the PCI bus, nothing vendor-specific installed, and
the passthrough devices back on their own drivers with nothing of the vfio role left.

Only the gpu scenario points its verifier here; elsewhere these tests are skipped with that reason.
"""

import os

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("MOLECULE_SCENARIO_NAME") != "gpu",
                                reason=f"scenario {os.environ.get('MOLECULE_SCENARIO_NAME')!r} has no q35 node "
                                       "(only the gpu scenario does)")

PCI = "/sys/bus/pci/devices"


def devices_of(host, vendor, device):
    out = host.check_output(f"grep -l {device} {PCI}/*/device | xargs -n1 dirname | xargs -n1 basename")
    return [address for address in out.split() if host.file(f"{PCI}/{address}/vendor").content_string.strip() == vendor]


def test_systemd_running_without_failed_units(host):
    state = host.run("systemctl is-system-running --wait").stdout.strip()
    assert (state, host.check_output("systemctl list-units --failed --plain --no-legend")) == ("running", "")


def test_the_kernel_runs_the_emulated_iommu(host):
    assert "intel_iommu=on" in host.file("/proc/cmdline").content_string.split()
    assert "DMAR: IOMMU enabled" in host.check_output("dmesg")
    groups = host.check_output("ls /sys/kernel/iommu_groups").split()
    assert len(groups) > 1, groups
    # Behind its own PCIe root port, each passthrough device is alone in its group (only
    # q35's multifunction chipset devices at 00:1f share one: 16 groups for 18 devices).
    for address in ["0000:02:00.0"] + devices_of(host, "0x1af4", "0x1050"):
        assert host.check_output(f"ls {PCI}/{address}/iommu_group/devices").split() == [address]


def test_the_display_devices_are_on_the_pci_bus(host):
    classes = {address: host.file(f"{PCI}/{address}/class").content_string.strip()
               for address in devices_of(host, "0x1234", "0x1111") + devices_of(host, "0x1af4", "0x1050")}
    assert sorted(classes.values()) == ["0x030000", "0x038000"], classes


def test_nothing_vendor_specific_is_installed(host):
    listed = host.check_output("dpkg-query -W -f '${Package}\\n'").split()
    prefixes = ("nvidia", "cuda", "libnvidia", "rocm", "amdgpu", "hip", "intel-opencl", "intel-level-zero", "level-zero")
    vendor = [name for name in listed if name.startswith(prefixes)]
    assert vendor == []


def test_the_devices_are_back_on_their_own_drivers(host):
    for address in ["0000:02:00.0"] + devices_of(host, "0x1af4", "0x1050"):
        driver = host.file(f"{PCI}/{address}/driver")
        assert driver.is_symlink and os.path.basename(driver.linked_to) == "virtio-pci", address
        assert host.file(f"{PCI}/{address}/driver_override").content_string.strip() == "(null)", address
    # No IOMMU group node is left under /dev/vfio: only the vfio control device, if the module stays loaded.
    vfio = host.file("/dev/vfio")
    groups = [name for name in (vfio.listdir() if vfio.exists else []) if name != "vfio"]
    assert groups == [], groups


def test_nothing_of_the_vfio_role_is_left(host):
    assert not host.file("/etc/systemd/system/aicluster-vfio.service").exists
    assert not host.file("/usr/local/sbin/aicluster-vfio").exists
