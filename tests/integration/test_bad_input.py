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


# A profile from the unit corpus (tests/unit/fixtures/bad_profiles) for each family of
# rules, run through the real playbook: the models play stops the run, with the
# corpus's exact message, before the lab (or any node) is touched. The whole corpus
# runs at unit level.
CORPUS = pathlib.Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "bad_profiles"
CORPUS_CASES = [
    "address-used-twice-from-inventory", "bond-primary-not-a-member", "bond-lacp-rate-wrong-mode",
    "network-vlan-out-of-range", "subnets-overlap", "subnet-overlaps-k3s-cluster-cidr",
    "mtu-parent-below-child", "static-network-without-address", "mac-used-twice",
    "link-names-unknown-link", "profile-unknown-key",
]


def one_line(text):
    return " ".join(text.split())


@pytest.mark.parametrize("case", CORPUS_CASES)
def test_bad_profile_stops_the_suite_before_any_change(run_cmd, tmp_path, case):
    import yaml

    data = yaml.safe_load((CORPUS / f"{case}.yml").read_text())
    hosts = data.get("hosts") or list((data["profile"].get("hosts") or {"node1": {}}))
    host_vars = data.get("host_vars") or {}
    lines = ["all:", "  children:", "    lab_nodes:", "      hosts:"]
    for index, name in enumerate(hosts, start=11):
        lines += [f"        {name}:", f"          ansible_host: 192.168.152.{index}"]
        lines += [f"          {key}: {value!r}" for key, value in host_vars.get(name, {}).items()]
    lines += ["  vars:", f"    vm_lab_name: {LAB}", "    vm_lab_mgmt_address: 192.168.152.1/24",
              f"    network_profile: {tmp_path / data.get('name', case)}.yml"]
    (tmp_path / "hosts.yml").write_text("\n".join(lines) + "\n")
    # The profile's name in the message is its file's stem.
    (tmp_path / f"{data.get('name', case)}.yml").write_text(yaml.safe_dump(data["profile"]))
    run = run_cmd(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), "playbooks/full-suite.yml"])
    assert run.returncode != 0, run.tail()
    assert one_line(data["error"]) in one_line(run.output), run.tail()
    assert "Stage provision | the VM lab" not in run.output, "the run went past the models"
    assert_untouched()


@pytest.mark.parametrize("profile_var, message", [
    ("no-such-profile", "network_profile: 'no-such-profile' is not a profile file or a known profile"),
    # A profile subnet the host itself routes as the lab's management network.
    ("{'links': [{'name': 'eth1'}], 'networks': {'cluster': {'parent': 'eth1', 'subnet': '192.168.152.0/24'}},"
     " 'hosts': {'node1': {'addresses': {'cluster': '192.168.152.50'}}}}",
     "network profile inline, host node1: networks.cluster.subnet: 192.168.152.0/24 overlaps the lab's "
     "management network 192.168.152.0/24 (vm_lab_mgmt_address)"),
])
def test_bad_profile_for_the_lab_fails_before_any_change(run_cmd, tmp_path, profile_var, message):
    inventory = write_inventory(tmp_path, {"node1": "192.168.152.11"}, f'network_profile: "{profile_var}"'
                                if not profile_var.startswith("{") else f"network_profile: {profile_var}")
    run = run_cmd(["ansible-playbook", "-i", str(inventory), "playbooks/provision.yml"])
    assert run.returncode != 0, run.tail()
    assert one_line(message) in one_line(run.output), run.tail()
    assert_untouched()


def test_an_inventory_with_a_key_given_twice_stops_the_run(run_cmd, tmp_path):
    # YAML alone keeps the last of two equal keys; ansible.cfg makes it an error
    # (duplicate_dict_key) and an inventory that does not parse a failure (unparsed_is_failed).
    inventory = write_inventory(tmp_path, {"node1": "192.168.152.11"}, "vm_lab_memory_mib: 1024\nvm_lab_memory_mib: 2048")
    run = run_cmd(["ansible-playbook", "-i", str(inventory), "playbooks/provision.yml"])
    assert run.returncode != 0, run.tail()
    assert "Found duplicate mapping key 'vm_lab_memory_mib'" in run.output, run.tail()
    assert f"{inventory}:" in run.output, run.tail()
    assert_untouched()
