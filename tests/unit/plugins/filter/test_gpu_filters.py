# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu filters' wiring to module_utils and the errors a playbook sees (the read itself is
tested in module_utils/test_gpu_read.py and against the module in modules/test_gpu_facts.py)."""

import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.filter import gpu as filters

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gpu"


@pytest.mark.parametrize("value, runs_tools", [(True, True), ("yes", True), (False, False), ("false", False)])
def test_the_script_runs_the_tools_only_when_asked(value, runs_tools):
    script = filters.gpu_read_script(value)
    assert ("run_tool nvidia-smi -q -x" in script) is runs_tools
    assert script.endswith("printf '### end\\n'\n")


def test_a_vendor_tools_value_that_is_no_boolean_is_refused():
    with pytest.raises(AnsibleFilterError, match="gpu_read_script: vendor_tools must be a boolean"):
        filters.gpu_read_script("sometimes")


def test_the_read_of_a_captured_output():
    facts = filters.gpu_read((FIXTURES / "read" / "cpu-only-ci.txt").read_text())
    assert (facts["recommended_stack"], facts["warnings"]) == ("cpu", [])
    assert filters.gpu_plan(facts)["stack"] == "cpu"


@pytest.mark.parametrize("text, message", [
    ("### pci\n", "gpu_read: gpu read: the output stops before the script's end"),
    (None, "gpu_read: gpu read: the output must be text"),
])
def test_output_that_is_not_the_scripts_is_an_error(text, message):
    with pytest.raises(AnsibleFilterError, match=message):
        filters.gpu_read(text)
