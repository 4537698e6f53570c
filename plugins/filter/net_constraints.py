# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the net_constraints role: net_constraints_problems (every profile's values, before any
host changes), net_constraints_link (the interface's MTU and root qdisc, read with plain sh),
net_constraints_script (the plain-sh script of the baseline or of one profile), net_constraints_run
(a run of that script as the phases the verdicts take) and net_constraints_checks (the two checks
of one profile, from its figures)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import net_constraints_script as scripts
from ansible_collections.aicluster.lab.plugins.module_utils.net_constraints_verdict import TOLERANCES, constraint_checks
from ansible_collections.aicluster.lab.plugins.module_utils.tc_constraint import ConstraintError, validate

VALUES = ("delay_ms", "jitter_ms", "loss_percent", "rate_mbit")


def net_constraints_problems(profiles, interface):
    """One message per profile whose values net_constraint would refuse on this interface, naming the
    profile, the option and the value; [] when every profile can be applied.

    The same validation the module runs, on the controller: checking each profile with the module in
    check mode started Python on the host once per profile (5-12 s each on an emulated guest)."""
    if not isinstance(profiles, list) or not all(isinstance(profile, Mapping) for profile in profiles):
        raise AnsibleFilterError(f"net_constraints_problems: the input must be a list of constraint profiles, got {profiles!r}")
    problems = []
    for profile in profiles:
        params = {"interface": interface, "state": "present", **{key: profile.get(key) for key in VALUES}}
        try:
            validate(params)
        except ConstraintError as exc:
            problems.append(f"constraint profile {profile.get('name', '?')}: {exc.msg}")
    return problems


def net_constraints_link(result, interface):
    """{interface, mtu, constraint, error, remove} of the link read: see net_constraints_script.read_link."""
    try:
        return scripts.read_link(result, interface)
    except scripts.ScriptError as exc:
        raise AnsibleFilterError(f"net_constraints_link: {exc}") from None


def _dict(value):
    return dict(value) if isinstance(value, Mapping) else value


def _profile(step, name, steps):
    """None for the baseline, the profile as a dict; anything else fails."""
    if step == "baseline":
        return None
    if isinstance(step, Mapping) and "name" in step:
        return dict(step)
    raise AnsibleFilterError(f"{name}: the input must be {steps} or a constraint profile with a name, got {step!r}")


def net_constraints_script(step, link, probe=None):
    """The plain-sh script of a step: 'link' (read the interface), 'baseline' (measure) or a profile
    (apply it, measure, remove it, measure again)."""
    try:
        if step == "link":
            if not isinstance(link, Mapping):
                raise scripts.ScriptError(f"the link must be a dict with the interface, got {link!r}")
            return scripts.link_script(link.get("interface"))
        return scripts.measure_script(_profile(step, "net_constraints_script", "'link', 'baseline'"), _dict(link),
                                      _dict(probe))
    except scripts.ScriptError as exc:
        raise AnsibleFilterError(f"net_constraints_script: {exc}") from None


def net_constraints_run(result, step, link):
    """{measured, applied, commands, error} of a registered run of net_constraints_script ('baseline' or a profile)."""
    try:
        return scripts.read_run(_dict(result), _profile(step, "net_constraints_run", "'baseline'"), _dict(link))
    except scripts.ScriptError as exc:
        raise AnsibleFilterError(f"net_constraints_run: {exc}") from None


def net_constraints_checks(profile, measured, tolerances=None, path=None):
    """[constraint_<name>, constraint_<name>_removed] as dicts for aicluster.lab.check."""
    if not isinstance(profile, Mapping) or "name" not in profile:
        raise AnsibleFilterError(f"net_constraints_checks: the input must be a constraint profile with a name, got {profile!r}")
    if not isinstance(measured, Mapping):
        raise AnsibleFilterError(f"net_constraints_checks: measured must be the phases baseline, during and after, got {measured!r}")
    unknown = sorted(set(tolerances or {}) - set(TOLERANCES))
    if unknown:
        raise AnsibleFilterError(f"net_constraints_checks: unknown tolerance(s) {', '.join(unknown)} (known: {', '.join(TOLERANCES)})")
    return constraint_checks(dict(profile), dict(measured), dict(tolerances or {}), dict(path or {}))


class FilterModule:
    def filters(self):
        return {"net_constraints_checks": net_constraints_checks, "net_constraints_problems": net_constraints_problems,
                "net_constraints_link": net_constraints_link, "net_constraints_script": net_constraints_script,
                "net_constraints_run": net_constraints_run}
