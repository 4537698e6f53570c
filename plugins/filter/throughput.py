# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter throughput_checks: the throughput role's checks from its iperf3 results."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.lab.plugins.module_utils.throughput_verdict import throughput_checks as _checks

_RESULT_KEYS = ("path", "direction")
_PATH_KEYS = ("network", "peer", "address", "interface")


def throughput_checks(results, min_mbps, duration_s):
    """[throughput_<network>_<peer>_<direction>..., throughput_bond_vs_single_link] for aicluster.lab.check."""
    if not isinstance(results, list):
        raise AnsibleFilterError(f"throughput_checks: the input must be a list of iperf3 results, got {results!r}")
    for index, result in enumerate(results):
        if not isinstance(result, Mapping) or any(key not in result for key in _RESULT_KEYS) \
                or not isinstance(result["path"], Mapping) or any(key not in result["path"] for key in _PATH_KEYS):
            raise AnsibleFilterError(f"throughput_checks: result {index} must hold path ({', '.join(_PATH_KEYS)}), "
                                     f"direction, error and figures, got {result!r}")
        if result["direction"] not in ("send", "receive"):
            raise AnsibleFilterError(f"throughput_checks: result {index}: direction {result['direction']!r} is not send or receive")
    try:
        min_mbps = float(min_mbps)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"throughput_checks: min_mbps {min_mbps!r} is not a number") from None
    return _checks([dict(result) for result in results], min_mbps, duration_s)


class FilterModule:
    def filters(self):
        return {"throughput_checks": throughput_checks}
