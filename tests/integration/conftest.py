"""Fixtures of the integration tests: real playbooks, real libvirt, real guests.

Every command's full output goes to tests/output/<test>.log, so a failure can be
read after the fact; assertion messages quote its tail.
"""

import os
import re
import subprocess
import threading
import time

import pytest

from labtools import OUTPUT, ROOT, URI, Run


def _libvirt_problem():
    try:
        done = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"virsh cannot be run ({exc}); run ./lab setup"
    if done.returncode != 0:
        return f"libvirt does not answer on {URI}: {done.stderr.strip()}; run ./lab setup"
    return None


def pytest_collection_modifyitems(config, items):
    problem = _libvirt_problem() if any(item.get_closest_marker("vm") for item in items) else None
    if problem:
        for item in items:
            if item.get_closest_marker("vm"):
                item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture
def run_cmd(request):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log_name = re.sub(r"[^\w.-]+", "_", request.node.name)[:80]

    def _run(argv, timeout=1800, env=None):
        log = OUTPUT / f"{log_name}.log"
        started = time.monotonic()
        full_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                        ANSIBLE_NOCOLOR="1", PY_COLORS="0", **(env or {}))
        # Read the output as it comes, so each line's time is known: the log shows where
        # a slow run spent its time, and benchmarks read stage durations from it.
        lines, stamps = [], []
        with subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, stdin=subprocess.DEVNULL) as proc:
            watchdog = threading.Timer(timeout, proc.kill)
            watchdog.start()
            try:
                for line in proc.stdout:
                    lines.append(line)
                    stamps.append(time.monotonic() - started)
            finally:
                watchdog.cancel()
            returncode = proc.wait()
        seconds = time.monotonic() - started
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(map(str, argv))}  # {seconds:.1f} s, exit {returncode}\n")
            handle.writelines(f"[{stamp:7.1f}s] {line}" for stamp, line in zip(stamps, lines))
        print(f"{' '.join(map(str, argv))}: exit {returncode} in {seconds:.1f} s (log {log.relative_to(ROOT)})")
        return Run(argv, returncode, "".join(lines), seconds, log, stamps=stamps)

    return _run
