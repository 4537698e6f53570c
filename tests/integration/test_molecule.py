"""molecule scenarios, run as a user runs them: `molecule test -s <scenario>`.

The scenario provisions with the collection's own vm_lab role (create), converges,
checks idempotence, verifies with testinfra, and destroys; afterwards libvirt and
the data directory hold nothing of the scenario's lab.
"""

import pathlib

import pytest

from labtools import record_benchmark, virsh_names

pytestmark = pytest.mark.vm

# Molecule announces each action as "<scenario> ➜ <action>: Executing" on a terminal
# and as "[<scenario> > <action>] Executing" otherwise.
ACTION_START = r"(?:➜|>) (\w+)\]?:? Executing\s*$"
ACTION_END = r"(?:➜|>) (\w+)\]?:? Executed"

# scenario -> its lab's name (inventory vm_lab_name)
SCENARIOS = {"simple": "molsimp", "vlans": "molvlan", "bonding-vlans": "molbond", "dhcp-simple": "moldhcp"}


@pytest.mark.parametrize("scenario, lab", sorted(SCENARIOS.items()))
def test_molecule_scenario_passes_and_leaves_nothing(run_cmd, scenario, lab):
    run = run_cmd(["molecule", "test", "-s", scenario], env={"AICLUSTER_LAB_KEEP": ""})
    assert run.returncode == 0, run.tail(80)
    assert "idempotence: Executed: Successful" in run.output, run.tail(80)
    # Each action's wall time: from molecule announcing it to its "Executed" line.
    starts = [(stamp, match.group(1)) for stamp, match in run.line_times(ACTION_START)]
    ends = [(stamp, match.group(1)) for stamp, match in run.line_times(ACTION_END)]
    actions = {}
    for start, action in starts:
        end = next((stamp for stamp, name in ends if name == action and stamp >= start), None)
        key = f"{action}_s" if f"{action}_s" not in actions else f"{action}_again_s"
        if end is not None:
            actions[key] = round(end - start, 1)
    record_benchmark(f"molecule {scenario}", {"wall_s": round(run.seconds, 1), **actions})
    assert virsh_names("list", lab + "-") == []
    assert virsh_names("net-list", lab + "-") == []
    assert not pathlib.Path(f"/var/lib/aicluster-lab/labs/{lab}").exists()
