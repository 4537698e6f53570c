#!/usr/bin/env bash
# verify-teardown.sh URI LAB_NAME RUN_DIR BRIDGE...
# Exits non-zero and names every object of the lab that is still there: domains
# and networks named after the lab, its run directory (overlays, consoles,
# known_hosts) and firewall rules that name its bridges.
set -uo pipefail
uri="$1" lab="$2" run_dir="$3"
shift 3
left=()
while read -r name; do
  [ -n "$name" ] && left+=("domain $name")
done < <(virsh -c "$uri" list --all --name | grep "^$lab-")
while read -r name; do
  [ -n "$name" ] && left+=("network $name")
done < <(virsh -c "$uri" net-list --all --name | grep "^$lab-")
[ -e "$run_dir" ] && left+=("directory $run_dir")
while read -r rule; do
  [ -n "$rule" ] && left+=("firewall rule '$rule'")
done < <(bash "$(dirname "$0")/lab-firewall-rules.sh" "$@")
if [ "${#left[@]}" -gt 0 ]; then
  printf 'left behind by lab %s:\n' "$lab" >&2
  printf '  %s\n' "${left[@]}" >&2
  exit 1
fi
echo "lab $lab: no domain, network, run directory or firewall rule left"
