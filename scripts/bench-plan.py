#!/usr/bin/env python
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time the run's plan over many hosts: the build alone, and the plan play as users run it.

Generates a bonding-vlans-like profile (bond0 over eth1+eth2, cluster and storage
VLANs) with N hosts, each with both addresses and a fixed MAC, every tenth host with
renamed NICs, and prints:

- the median time of build_plan (every model, validated) over several runs, and the
  peak memory of one run;
- with --playbook, the wall time of ``ansible-playbook playbooks/plan.yml`` over an
  inventory of those hosts (local connection, nothing is contacted), next to the same
  inventory's empty play: the difference is what handing out the plan costs.

usage: python scripts/bench-plan.py [--hosts 1000] [--runs 5] [--playbook]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

ROOT = pathlib.Path(__file__).resolve().parents[1]
# ./lab links the checkout here as the installed collection (ansible.cfg's collections_path).
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.aicluster.lab.plugins.module_utils.plan import build_plan  # noqa: E402


def generate(count):
    """The profile, the host list and the inventory variables of ``count`` hosts."""
    hosts, entries, host_vars = [], {}, {}
    for index in range(count):
        name = f"node{index + 1:04d}"
        high, low = divmod(index + 10, 256)
        hosts.append(name)
        entries[name] = {
            "addresses": {"cluster": f"10.200.{high}.{low}", "storage": f"10.100.{high}.{low}"},
            "macs": {"eth1": f"52:54:00:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"},
        }
        if index % 10 == 0:
            host_vars[name] = {"network_link_names": {"eth1": "enp65s0f0", "eth2": "enp65s0f1"}}
    profile = {
        "description": f"bonding-vlans with {count} hosts",
        "links": [{"name": "eth1"}, {"name": "eth2"}],
        "bond": {"name": "bond0", "mode": "active-backup", "members": ["eth1", "eth2"], "primary": "eth1", "miimon": 100},
        "networks": {
            "cluster": {"parent": "bond0", "vlan": 200, "subnet": "10.200.0.0/16"},
            "storage": {"parent": "bond0", "vlan": 100, "subnet": "10.100.0.0/16", "mtu": 9000},
        },
        "hosts": entries,
        "k3s": {"cluster_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16"},
    }
    return profile, hosts, host_vars


def time_playbook(playbook, inventory, env):
    start = time.perf_counter()
    result = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook)], env=env,
                            capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"ansible-playbook {playbook.name} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def bench_playbook(profile, hosts, host_vars):
    """Wall seconds of plan.yml and of an empty play over the same inventory."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # JSON is YAML: the inventory plugin reads it as is.
        inventory = {"all": {"vars": {"network_profile": profile, "ansible_connection": "local"},
                             "children": {"lab_nodes": {"hosts": {host: host_vars.get(host, {}) for host in hosts}}}}}
        (tmp / "hosts.yml").write_text(json.dumps(inventory))
        empty = tmp / "empty.yml"
        empty.write_text(json.dumps([{"name": "Nothing", "hosts": "localhost:lab_nodes", "gather_facts": False, "tasks": []}]))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        plan_s = time_playbook(ROOT / "playbooks" / "plan.yml", tmp / "hosts.yml", env)
        empty_s = time_playbook(empty, tmp / "hosts.yml", env)
    return plan_s, empty_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000, help="number of hosts (default 1000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the build; the median is reported (default 5)")
    parser.add_argument("--playbook", action="store_true", help="also time ansible-playbook playbooks/plan.yml over these hosts")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.runs < 1:
        parser.error("--hosts and --runs must be at least 1")

    profile, hosts, host_vars = generate(args.hosts)
    times = []
    for unused_run in range(args.runs):
        start = time.perf_counter()
        plan = build_plan(hosts, host_vars, profile, "bench")
        times.append(time.perf_counter() - start)
    assert len(plan) == args.hosts

    # Memory is measured in a run of its own: tracemalloc slows the allocations it traces.
    tracemalloc.start()
    plan = build_plan(hosts, host_vars, profile, "bench")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    median = statistics.median(times)
    print(f"hosts: {args.hosts}")
    print(f"runs: {args.runs}")
    print(f"build+validate median: {median * 1000:.1f} ms ({median / args.hosts * 1e6:.1f} us per host)")
    print(f"build+validate min/max: {min(times) * 1000:.1f} / {max(times) * 1000:.1f} ms")
    print(f"peak memory (tracemalloc): {peak / 1024 / 1024:.2f} MiB")
    if args.playbook:
        plan_s, empty_s = bench_playbook(profile, hosts, host_vars)
        print(f"playbooks/plan.yml: {plan_s:.1f} s (an empty play over the same inventory: {empty_s:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
