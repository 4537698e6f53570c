# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the bond_failover role: the verdict on each try and the outcome over all tries."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.aicluster.lab.plugins.module_utils.failover_verdict import (
    failback_verdict,
    failover_outcome,
    failover_verdict,
)


def bond_failover_verdict(probe, cut, bound_ms, stall_ms, not_cut=''):
    if not isinstance(probe, dict):
        raise AnsibleFilterError(f"bond_failover_verdict: the probe's result must be a dict, got {type(probe).__name__}")
    return failover_verdict(probe, cut, float(bound_ms), float(stall_ms), not_cut=not_cut or '')


def bond_failback_verdict(probe, cut, primary, bound_ms, stall_ms):
    if not isinstance(probe, dict):
        raise AnsibleFilterError(f"bond_failback_verdict: the probe's result must be a dict, got {type(probe).__name__}")
    return failback_verdict(probe, cut, primary, float(bound_ms), float(stall_ms))


def bond_failover_outcome(tries):
    if not isinstance(tries, list):
        raise AnsibleFilterError(f"bond_failover_outcome: the tries must be a list of verdicts, got {type(tries).__name__}")
    return failover_outcome(tries)


class FilterModule:
    def filters(self):
        return {"bond_failover_verdict": bond_failover_verdict, "bond_failback_verdict": bond_failback_verdict,
                "bond_failover_outcome": bond_failover_outcome}
