# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/bench-plan.py runs and reports its figures (no timing is asserted)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench-plan.py"


def test_benchmark_runs_and_reports_time_and_memory():
    # Few hosts and runs: this proves the script works; the figures come from running it by hand.
    result = subprocess.run([sys.executable, str(SCRIPT), "--hosts", "30", "--runs", "2"],
                            capture_output=True, text=True, check=True, timeout=120)
    assert "hosts: 30" in result.stdout
    assert re.search(r"build\+validate median: [0-9.]+ ms", result.stdout), result.stdout
    assert re.search(r"peak memory \(tracemalloc\): [0-9.]+ MiB", result.stdout), result.stdout


def test_the_plan_play_runs_over_the_generated_inventory():
    # The venv's ansible-playbook, as ./lab puts it on the PATH.
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run([sys.executable, str(SCRIPT), "--hosts", "20", "--runs", "1", "--playbook"],
                            capture_output=True, text=True, check=True, timeout=300, env=env)
    assert re.search(r"playbooks/plan.yml: [0-9.]+ s \(an empty play over the same inventory: [0-9.]+ s\)", result.stdout), result.stdout


def test_benchmark_rejects_nonsense():
    result = subprocess.run([sys.executable, str(SCRIPT), "--hosts", "0"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "--hosts and --runs must be at least 1" in result.stderr
