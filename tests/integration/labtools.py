"""Helpers of the integration tests: the checkout, libvirt names, command results."""

import fcntl
import json
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "output"
URI = "qemu:///system"


class Run:
    """A finished command: exit code, output, and the figures read from a PLAY RECAP."""

    def __init__(self, argv, returncode, output, seconds, log, stamps=None):
        self.argv, self.returncode, self.output, self.seconds, self.log = argv, returncode, output, seconds, log
        self.stamps = stamps or []  # seconds since the start at which each output line came

    def line_times(self, pattern):
        """[(seconds, match)] for each output line matching the regular expression."""
        found = []
        for stamp, line in zip(self.stamps, self.output.splitlines()):
            match = re.search(pattern, line)
            if match:
                found.append((stamp, match))
        return found

    def tail(self, lines=60):
        return "\n".join(self.output.splitlines()[-lines:])

    def reports(self):
        """The report.json files this run wrote, from the paths its report stage printed.

        Read from the run's own output, not from what appeared under results/ meanwhile:
        tests on other labs run beside this one (pytest-xdist) and write reports too."""
        named = re.findall(r"(\S*results/[\w-]+)/summary\.md", self.output)
        return [ROOT / path / "report.json" for path in dict.fromkeys(named)]

    def report(self):
        """The one report.json this run wrote."""
        found = self.reports()
        assert len(found) == 1, f"expected the run to write one report, it named {found}:\n" + self.tail(60)
        return found[0]

    def recap(self):
        """{host: {'ok': n, 'changed': n, ...}} from the last PLAY RECAP."""
        found = {}
        for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output, re.MULTILINE):
            found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
        return found

    def changed_tasks(self):
        """Names of the tasks that reported a change (the task header before each 'changed:')."""
        names, task = [], None
        for line in self.output.splitlines():
            header = re.match(r"^TASK \[(.*)\] \*+$", line)
            if header:
                task = header.group(1)
            elif line.startswith("changed:") and task not in names:
                names.append(task)
        return names


def virsh_names(kind, prefix):
    """Names of libvirt domains ('list') or networks ('net-list') that start with prefix."""
    done = subprocess.run(["virsh", "-c", URI, kind, "--all", "--name"], capture_output=True, text=True, check=True)
    return sorted(n for n in done.stdout.split() if n.startswith(prefix))


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


BENCHMARKS = OUTPUT / "benchmarks.json"


def record_benchmark(name, figures):
    """Add one benchmark's figures to tests/output/benchmarks.json (figures, never assertions)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    # Tests on other labs run in other pytest-xdist workers and record theirs meanwhile.
    with (OUTPUT / "benchmarks.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(BENCHMARKS.read_text()) if BENCHMARKS.exists() else {}
        data[name] = figures
        BENCHMARKS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
