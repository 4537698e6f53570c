# Everything the L1, L2 and network checks compare, read in one round trip with no
# Python on the host (a module costs seconds on an emulated guest; this costs a fraction
# of one). Each section starts with a "### <name>" line; the validate_checks filter
# splits them. Run by the validate role through ansible.builtin.raw, so plain sh.
echo '### system_state'; systemctl is-system-running --wait 2>&1
echo '### failed_units'; systemctl list-units --failed --plain --no-legend 2>&1
echo '### uname'; uname -nr
echo '### links'; ip -d -j link show
echo '### addrs'; ip -j addr show
echo '### routes'; ip -j route show
