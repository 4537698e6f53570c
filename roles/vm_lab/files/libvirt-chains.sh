#!/usr/bin/env bash
# libvirt-chains.sh list|clean URI
# libvirt creates LIBVIRT_* chains in iptables for its networks and leaves them
# behind when the last network is gone. 'list' prints the chains that exist;
# 'clean' removes them (and the jumps to them) only when no libvirt network is
# active, so a network somebody else runs keeps its firewall.
set -euo pipefail
action="$1" uri="$2"

chains() {  # prints "tool table chain" for every LIBVIRT_ chain
  local tool table
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      "$tool" -w -t "$table" -S 2>/dev/null | awk -v t="$tool" -v tb="$table" '$1 == "-N" && $2 ~ /^LIBVIRT_/ {print t, tb, $2}'
    done
  done
}

case "$action" in
  list) chains ;;
  clean)
    active="$(virsh -c "$uri" net-list --name | grep -c . || true)"
    if [ "$active" -gt 0 ]; then
      echo "kept: $active libvirt network(s) still active"
      exit 0
    fi
    found="$(chains)"
    [ -z "$found" ] && { echo "none left"; exit 0; }
    while read -r tool table chain; do
      # Drop every jump into the chain, then the chain itself.
      "$tool" -w -t "$table" -S | awk -v c="$chain" '$1 == "-A" && $0 ~ ("-j " c "$") {sub(/^-A/, "-D"); print}' |
        while read -r rule; do eval "$tool -w -t $table $rule"; done
    done <<<"$found"
    while read -r tool table chain; do
      "$tool" -w -t "$table" -F "$chain"
      "$tool" -w -t "$table" -X "$chain"
    done <<<"$found"
    echo "removed: $(echo "$found" | awk '{print $1 "/" $2 "/" $3}' | tr '\n' ' ')"
    ;;
  *) echo "usage: $0 list|clean URI" >&2; exit 2 ;;
esac
