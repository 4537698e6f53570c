"""molecule scenarios, run as a user runs them: `molecule test -s <scenario>`.

The scenario provisions with the collection's own vm_lab role (create), converges,
checks idempotence, verifies with testinfra, and destroys; afterwards libvirt and
the data directory hold nothing of the scenario's lab.
"""

import pathlib

import pytest

from labtools import virsh_names

pytestmark = pytest.mark.vm

# scenario -> its lab's name (inventory vm_lab_name)
SCENARIOS = {"simple": "molsimp", "vlans": "molvlan", "bonding-vlans": "molbond", "dhcp-simple": "moldhcp"}


@pytest.mark.parametrize("scenario, lab", sorted(SCENARIOS.items()))
def test_molecule_scenario_passes_and_leaves_nothing(run_cmd, scenario, lab):
    run = run_cmd(["molecule", "test", "-s", scenario], env={"AICLUSTER_LAB_KEEP": ""})
    assert run.returncode == 0, run.tail(80)
    assert "idempotence: Executed: Successful" in run.output, run.tail(80)
    assert virsh_names("list", lab + "-") == []
    assert virsh_names("net-list", lab + "-") == []
    assert not pathlib.Path(f"/var/lib/aicluster-lab/labs/{lab}").exists()
