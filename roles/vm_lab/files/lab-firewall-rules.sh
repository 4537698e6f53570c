#!/usr/bin/env bash
# lab-firewall-rules.sh BRIDGE...
# Prints every iptables/ip6tables rule that names one of the bridges (each an
# extended regular expression, so 'aiclab-[^ ]+' covers every bridge of a lab). libvirt adds
# such rules when it starts a network and should drop them when the network goes;
# an empty answer after teardown shows it did. libvirt's own LIBVIRT_* base chains
# are left alone: libvirtd creates them once per start, and a network started
# after they were deleted fails until libvirtd restarts.
set -uo pipefail
for tool in iptables ip6tables; do
  command -v "$tool" >/dev/null || continue
  for table in filter nat mangle; do
    rules="$("$tool" -w -t "$table" -S 2>/dev/null)" || continue
    for bridge in "$@"; do
      grep -E -- "(-i|-o|--in-interface|--out-interface) $bridge( |$)" <<<"$rules" | sed "s|^|$tool/$table: |"
    done
  done
done
exit 0
