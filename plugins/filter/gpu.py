# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the gpu role: the host's GPUs read with plain sh, what to install on a host, and the
verdicts (module_utils/gpu_read.py, gpu.py, gpu_stack.py and gpu_verdict.py hold the logic and its
tests)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.aicluster.lab.plugins.module_utils import gpu
from ansible_collections.aicluster.lab.plugins.module_utils import gpu_read as reading
from ansible_collections.aicluster.lab.plugins.module_utils import gpu_stack
from ansible_collections.aicluster.lab.plugins.module_utils import gpu_verdict


def _facts(facts, name):
    if not isinstance(facts, dict) or 'recommended_stack' not in facts:
        raise AnsibleFilterError('%s: the input must be what aicluster.lab.gpu_facts returned, got %r' % (name, facts))
    return facts


def gpu_read_script(vendor_tools=True):
    """The plain-sh script that prints what gpu_facts reads (run it with ansible.builtin.raw)."""
    try:
        return reading.script(boolean(vendor_tools, strict=True))
    except TypeError as exc:
        raise AnsibleFilterError('gpu_read_script: vendor_tools must be a boolean: %s' % exc) from exc


def gpu_read(text):
    """What gpu_facts returns, from the output of gpu_read_script, with the warnings as a list."""
    try:
        return gpu.gather(reading.parse(text))
    except reading.GpuReadError as exc:
        raise AnsibleFilterError('gpu_read: %s' % exc) from exc


def gpu_plan(facts, container_runtime=False, installed=False, changed=False, keyring_dir='/etc/apt/keyrings'):
    """What the gpu role installs and writes on the host (see gpu_stack.host_plan)."""
    try:
        return gpu_stack.host_plan(_facts(facts, 'gpu_plan'), bool(container_runtime), bool(installed),
                                   bool(changed), keyring_dir)
    except gpu_stack.StackChoiceError as exc:
        raise AnsibleFilterError('gpu_plan: %s' % exc) from exc


def gpu_checks(facts, plan, rebooted=False):
    """The host's checks (category hardware), as dicts for aicluster.lab.check."""
    if not isinstance(plan, dict) or 'stack' not in plan:
        raise AnsibleFilterError('gpu_checks: plan must be what aicluster.lab.gpu_plan returned, got %r' % (plan,))
    return gpu_verdict.checks(_facts(facts, 'gpu_checks'), plan, bool(rebooted))


class FilterModule:
    def filters(self):
        return {'gpu_read_script': gpu_read_script, 'gpu_read': gpu_read, 'gpu_plan': gpu_plan,
                'gpu_checks': gpu_checks}
