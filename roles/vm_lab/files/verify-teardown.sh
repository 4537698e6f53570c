#!/usr/bin/env bash
# verify-teardown.sh URI LAB_NAME RUN_DIR
# Exits non-zero and names every object of the lab that is still there.
set -uo pipefail
uri="$1" lab="$2" run_dir="$3"
left=()
while read -r name; do
  [ -n "$name" ] && left+=("domain $name")
done < <(virsh -c "$uri" list --all --name | grep "^$lab-")
while read -r name; do
  [ -n "$name" ] && left+=("network $name")
done < <(virsh -c "$uri" net-list --all --name | grep "^$lab-")
[ -e "$run_dir" ] && left+=("directory $run_dir")
if [ "$(virsh -c "$uri" net-list --name | grep -c .)" -eq 0 ]; then
  while read -r tool table chain; do
    [ -n "$chain" ] && left+=("firewall chain $tool/$table/$chain")
  done < <(bash "$(dirname "$0")/libvirt-chains.sh" list "$uri")
fi
if [ "${#left[@]}" -gt 0 ]; then
  printf 'left behind by lab %s: %s\n' "$lab" "${left[*]}" >&2
  exit 1
fi
echo "lab $lab: no domain, network, directory or firewall chain left"
