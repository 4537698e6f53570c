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


# With pytest-xdist workers (./lab test: AICLUSTER_TEST_WORKERS=2) the VM tests run in one
# lane, each alone on the host as they were tuned. AICLUSTER_TEST_VM_LANES=2 runs them in two
# lanes side by side:
# each lab's tests in order in one lane, never beside another test on the same lab, the
# lanes holding about the same work measured serially (lab: seconds). Measured with two
# lanes: about 35 minutes instead of 50, but with five guests on two cores a bond failover's
# traffic gap went over its 300 ms bound (402 ms) and chaos' restarted node3 missed its 240 s,
# so two lanes stay a choice for hosts with cores to spare.
# Every run of full-suite.yml (aiclab's suite, aicbad's refused profiles) stays in one lane:
# the killed-run test tells its state.json from others by the playbook's name.
VM_LANES = int(os.environ.get("AICLUSTER_TEST_VM_LANES", "1"))
LANES = {
    "mollab": "lane-a",   # simple, vlans, vlan-negative, chaos: about 870 s
    "moldhcp": "lane-a",  # dhcp-simple: about 110 s
    "aicpanic": "lane-a",  # the boot watch: about 40 s
    "molgpu": "lane-a",   # gpu, one q35 node: about 250 s
    "aiclab": "lane-b",   # the full suite and its fault cases: about 800 s
    "aicbad": "lane-b",   # bad input, refused before any change: about 150 s
    "molbond": "lane-b",  # bonding-vlans, rdma: about 510 s
}
# The lab of each test module that boots one lab (each also says so in its LAB); molecule
# scenarios name theirs in the test's id, [<scenario>-<lab>].
MODULE_LABS = {"test_full_suite.py": "aiclab", "test_bad_input.py": "aicbad", "test_boot_watch.py": "aicpanic"}


def lab_of(nodeid):
    """The lab a VM test uses, from its id alone (the scheduler sees nothing else)."""
    path, _sep, name = nodeid.partition("::")
    module = path.rsplit("/", 1)[-1]
    if module == "test_molecule.py":
        match = re.search(r"-(\w+)\]$", name)
        return match.group(1) if match else None
    return MODULE_LABS.get(module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    # pytest-xdist's own loadgroup cannot be used: it renames items (item._nodeid), which
    # pytest 9 no longer reads, so its groups are silently ignored. A scope per lane instead:
    # every test of a lane is one unit of work, sent to one worker in collection order.
    from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

    class LabLanes(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            lab = lab_of(nodeid)
            if not lab:
                # A test module is one unit: its module fixtures (sanity started beside
                # ansible-lint, ansible-doc once per kind, a local HTTP server) run once, and
                # its tests never run beside each other.
                return nodeid.partition("::")[0]
            return LANES.get(lab, lab) if VM_LANES > 1 else "vm"

    # Units go out in collection order, where the VM tests come first (below), instead of
    # largest first: the VM lane starts at once and the other modules fill the other worker.
    config.option.loadscopereorder = False
    return LabLanes(config, log)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Every worker sorts alike (xdist wants one order); the sort is stable, so each tier
        # keeps its own order.
        items.sort(key=lambda item: item.get_closest_marker("vm") is None)
    problem = _libvirt_problem() if any(item.get_closest_marker("vm") for item in items) else None
    for item in items:
        if not item.get_closest_marker("vm"):
            continue
        if problem:
            item.add_marker(pytest.mark.skip(reason=problem))
        # A VM test the lanes do not know would run beside its lab's other tests.
        lab = getattr(item, "callspec", None) and item.callspec.params.get("lab")
        lab = lab or getattr(item.module, "LAB", "").rstrip("-")
        if lab_of(item.nodeid) != lab:
            raise pytest.UsageError(f"{item.nodeid}: its lab {lab!r} is not known to the lanes in "
                                    f"tests/integration/conftest.py (MODULE_LABS, LANES), it would run beside "
                                    f"another test on the same lab")


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
