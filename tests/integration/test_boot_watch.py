"""A node that cannot boot stops provisioning at once, with its console line quoted.

The node boots the lab's real kernel and image with init=/bin/false, so the kernel
panics when init exits. Without the console watch the play would wait out the whole
boot timeout; with it, the run fails naming the node, the pattern, the line and the
log. The boot timeout is set far above any boot here (900 s), so a run that ends sooner
can only have been stopped by the watch.
"""

import pathlib
import re
import subprocess

import pytest

from labtools import ROOT, record_benchmark, virsh_names

pytestmark = pytest.mark.vm

LAB = "aicpanic"
BOOT_TIMEOUT = 900


def test_a_node_that_panics_at_boot_stops_the_run_with_the_line_quoted(run_cmd, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("\n".join([
        "all:", "  children:", "    lab_nodes:", "      hosts:", "        node1:", "          ansible_host: 192.168.158.11",
        "  vars:", f"    vm_lab_name: {LAB}", "    vm_lab_mgmt_address: 192.168.158.1/24",
        f"    vm_lab_known_hosts: /var/lib/aicluster-lab/labs/{LAB}/known_hosts",
        "    vm_lab_snapshots: false", f"    vm_lab_boot_timeout: {BOOT_TIMEOUT}",
        "    vm_lab_kernel_cmdline: root=/dev/vda rw console=ttyS0 net.ifnames=0 init=/bin/false",
    ]) + "\n")
    teardown = ["ansible-playbook", "-i", str(inventory), "playbooks/teardown.yml"]
    try:
        run = run_cmd(["ansible-playbook", "-i", str(inventory), "playbooks/provision.yml"])
        assert run.returncode != 0, run.tail()
        text = " ".join(run.output.split())
        found = re.search(r"node node1: kernel panic on its console after ([0-9.]+) s, line [0-9]+ of "
                          rf"(/var/lib/aicluster-lab/labs/{LAB}/node1\.console\.log): ([^\"']*Kernel panic - not syncing[^\"']*)",
                          text)
        assert found, run.tail()
        assert "Attempted to kill init" in found.group(3), found.group(3)
        # The watch, not the timeout, ended the wait.
        assert float(found.group(1)) < BOOT_TIMEOUT and run.seconds < BOOT_TIMEOUT, run.tail()
        record_benchmark("boot watch: kernel panic to failure",
                         {"watch_s": float(found.group(1)), "provision_wall_s": round(run.seconds, 1)})
        print(f"the panic stopped the wait after {found.group(1)} s (provision run {run.seconds:.0f} s)")
    finally:
        subprocess.run(teardown, cwd=ROOT, capture_output=True, check=False)
    assert virsh_names("list", LAB + "-") == []
    assert not pathlib.Path(f"/var/lib/aicluster-lab/labs/{LAB}").exists()
