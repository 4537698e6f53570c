# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters iperf3_figures (the numbers of an iperf3 -J client run) and iperf3_run (its
figures or its error, from a registered result), for the suite report."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils import iperf3


def iperf3_figures(data):
    """Throughput and the test's settings from ``iperf3 -J`` output; iperf3's error raises."""
    try:
        return iperf3.iperf3_figures(data)
    except iperf3.Iperf3Error as exc:
        raise AnsibleFilterError(f"iperf3_figures: {exc}") from None


def iperf3_run(result):
    """{error, figures} of a registered iperf3 -J run (raw or command): never raises on iperf3's failure."""
    if not isinstance(result, dict) or "stdout" not in result:
        raise AnsibleFilterError(f"iperf3_run: the input must be a registered result with stdout, got {type(result).__name__}")
    return iperf3.iperf3_run(result.get("stdout"), result.get("stderr") or "", result.get("rc", 0))


class FilterModule:
    def filters(self):
        return {"iperf3_figures": iperf3_figures, "iperf3_run": iperf3_run}
