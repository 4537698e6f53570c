"""Bad input stops provisioning before the host is changed, with a message that
names the field and the value. Each case runs the real provision playbook on a
throwaway lab name and checks that libvirt holds nothing of that lab afterwards.
"""

import pathlib
import subprocess

import pytest

from labtools import URI, virsh_names

pytestmark = pytest.mark.vm

LAB = "aicbad"


def write_inventory(tmp_path, hosts, lab_vars=""):
    lines = ["all:", "  children:", "    lab_nodes:", "      hosts:"]
    for name, address in hosts.items():
        lines += [f"        {name}:", f"          ansible_host: {address}"]
    lines += ["  vars:", f"    vm_lab_name: {LAB}", "    vm_lab_mgmt_address: 192.168.152.1/24",
              f"    vm_lab_known_hosts: /var/lib/aicluster-lab/labs/{LAB}/known_hosts"]
    lines += [f"    {line}" for line in lab_vars.splitlines() if line]
    path = tmp_path / "hosts.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_untouched():
    assert virsh_names("list", LAB + "-") == []
    assert virsh_names("net-list", LAB + "-") == []
    assert not pathlib.Path(f"/var/lib/aicluster-lab/labs/{LAB}").exists()


@pytest.mark.parametrize("hosts, lab_vars, message", [
    ({"node1": "10.9.9.9"}, "",
     "host node1: ansible_host: 10.9.9.9 is not a usable address of the management network 192.168.152.0/24"),
    ({"node1": "192.168.152.11", "node2": "192.168.152.11"}, "",
     "host node2: ansible_host: 192.168.152.11 is already used by host node1"),
    # The role's argument spec answers first, naming the variable and the value.
    ({"node1": "192.168.152.11"}, "vm_lab_memory_mib: lots",
     "argument 'vm_lab_memory_mib' is of type str and we were unable to convert to int: \"'lots'\""),
    ({"node1": "192.168.152.250"}, "",
     "host node1: ansible_host: 192.168.152.250 lies in the dynamic range 192.168.152.239-192.168.152.254"),
])
def test_bad_inventory_fails_before_any_change(run_cmd, tmp_path, hosts, lab_vars, message):
    inventory = write_inventory(tmp_path, hosts, lab_vars)
    run = run_cmd(["ansible-playbook", "-i", str(inventory), "playbooks/provision.yml"])
    assert run.returncode != 0, run.tail()
    assert message in run.output, run.tail()
    assert_untouched()


def test_a_foreign_domain_with_a_lab_name_is_refused(run_cmd, tmp_path):
    # A domain this collection did not create, under the name the lab would use.
    xml = (f"<domain type='qemu'><name>{LAB}-node1</name><memory unit='MiB'>64</memory>"
           "<os><type arch='x86_64'>hvm</type></os></domain>")
    xml_file = tmp_path / "foreign.xml"
    xml_file.write_text(xml)
    subprocess.run(["virsh", "-c", URI, "define", str(xml_file)], check=True, capture_output=True)
    try:
        inventory = write_inventory(tmp_path, {"node1": "192.168.152.11"})
        run = run_cmd(["ansible-playbook", "-i", str(inventory), "playbooks/provision.yml"])
        assert run.returncode != 0, run.tail()
        assert f"name: domain '{LAB}-node1' exists and was not created by aicluster.lab" in run.output, run.tail()
        # The foreign domain is still there, untouched, and nothing else was made.
        assert virsh_names("list", LAB + "-") == [f"{LAB}-node1"]
        assert virsh_names("net-list", LAB + "-") == []
    finally:
        subprocess.run(["virsh", "-c", URI, "undefine", f"{LAB}-node1"], capture_output=True, check=False)
    assert_untouched()
