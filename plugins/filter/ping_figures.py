# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ping_figures (the numbers of a ping run, for the suite report) and ping_runs
(the runs of a command that pings more than once)."""

from __future__ import annotations

from ansible_collections.aicluster.lab.plugins.module_utils.ping import parse_ping_summary


class FilterModule:
    def filters(self):
        return {"ping_figures": parse_ping_summary}
