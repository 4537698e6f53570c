#!/usr/bin/env python
# Copyright: aicluster.lab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time building and validating the network models of many hosts.

Generates a bonding-vlans-like profile (bond0 over eth1+eth2, cluster and storage
VLANs) with N hosts, each with both addresses and a fixed MAC, every tenth host with
renamed NICs, and prints the median time of build_models over several runs and the
peak memory of one run. The playbook builds all models in one task, so this is the
figure that grows with the inventory.

usage: python scripts/bench-network-model.py [--hosts 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time
import tracemalloc

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_model_module():
    # By path: the checkout need not sit under ansible_collections/aicluster/lab, and
    # network_model.py imports nothing from Ansible.
    spec = importlib.util.spec_from_file_location("network_model", ROOT / "plugins" / "module_utils" / "network_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000, help="number of hosts (default 1000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported (default 5)")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.runs < 1:
        parser.error("--hosts and --runs must be at least 1")

    module = load_model_module()
    profile, hosts, host_vars = generate(args.hosts)
    times = []
    for unused_run in range(args.runs):
        start = time.perf_counter()
        models = module.build_models(profile, hosts, host_vars, "bench")
        times.append(time.perf_counter() - start)
    assert len(models) == args.hosts

    # Memory is measured in a run of its own: tracemalloc slows the allocations it traces.
    tracemalloc.start()
    models = module.build_models(profile, hosts, host_vars, "bench")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    median = statistics.median(times)
    print(f"hosts: {args.hosts}")
    print(f"runs: {args.runs}")
    print(f"build+validate median: {median * 1000:.1f} ms ({median / args.hosts * 1e6:.1f} us per host)")
    print(f"build+validate min/max: {min(times) * 1000:.1f} / {max(times) * 1000:.1f} ms")
    print(f"peak memory (tracemalloc): {peak / 1024 / 1024:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
