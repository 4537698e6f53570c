#!/usr/bin/env bash
# Build the lab's guest image from Debian packages: a root file system in a qcow2
# file plus the kernel and initrd beside it for direct kernel boot.
#
# usage: build-image.sh OUT_DIR SUITE MIRROR SIZE_GIB AUTHORIZED_KEY_FILE PACKAGE...
#
# MIRROR is a mirror URL or an apt sources file; empty leaves the choice to
# mmdebstrap (its default Debian mirror).
#
# OUT_DIR is written only when the build succeeds (built in OUT_DIR.tmp, then
# renamed), so an interrupted build never leaves a half image under the cache key.
set -euo pipefail

out="$1" suite="$2" mirror="$3" size_gib="$4" pubkey="$5"
shift 5
packages="$(IFS=,; echo "$*")"

[ -s "$pubkey" ] || { echo "authorized key file '$pubkey' is missing or empty" >&2; exit 2; }
for tool in mmdebstrap mkfs.ext4 qemu-img; do
  command -v "$tool" >/dev/null || { echo "'$tool' is not installed (run ./lab setup)" >&2; exit 2; }
done

tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/rootfs"

# The customize hook runs with the finished tree as $1. Everything here is what
# makes a guest boot fast and be reachable without cloud-init.
hook='
set -e
r="$1"
echo "/dev/vda / ext4 defaults,noatime 0 1" > "$r/etc/fstab"

# The hostname comes from the kernel command line (systemd.hostname=).
: > "$r/etc/hostname"

mkdir -p "$r/etc/systemd/network"
cat > "$r/etc/systemd/network/50-lab-mgmt.network" <<EOF
# Management NIC: fixed DHCP lease from the lab network.
[Match]
Name=eth0
[Network]
DHCP=ipv4
LinkLocalAddressing=no
EOF
cat > "$r/etc/systemd/network/90-lab-trunk.network" <<EOF
# Trunk NICs: up with an IPv6 link-local address only, until the network role
# writes its own (lower-numbered) files for them.
[Match]
Name=eth[1-9]*
[Network]
LinkLocalAddressing=ipv6
IPv6AcceptRA=no
EOF
chroot "$r" systemctl enable systemd-networkd.service
# Units that only slow a lab guest down: waiting for every link, periodic apt and fs jobs,
# and ifupdown (pulled in by ifenslave; networkd owns every link here), whose start sat
# before network.target for 30 s of an emulated boot.
chroot "$r" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer networking.service dpkg-db-backup.timer

# An initramfs with what finds the root file system (virtio and ext4) instead of every
# storage driver (MODULES=most: 36 MB that an emulated CPU unpacked at every boot).
echo MODULES=list > "$r/etc/initramfs-tools/conf.d/lab.conf"
printf "%s\n" virtio_pci virtio_blk ext4 >> "$r/etc/initramfs-tools/modules"
chroot "$r" update-initramfs -u -k all

# One image, many guests: host keys are made at first boot, never baked in, and
# printed to the serial console so the controller reads them out of band.
rm -f "$r"/etc/ssh/ssh_host_*
cat > "$r/etc/ssh/sshd_config.d/lab.conf" <<EOF
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
cat > "$r/etc/systemd/system/lab-hostkey.service" <<EOF
[Unit]
Description=Create the SSH host key and print it on the serial console
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c "test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key; echo AICLUSTER-HOSTKEY \$(cat /etc/ssh/ssh_host_ed25519_key.pub) > /dev/ttyS0"
[Install]
WantedBy=ssh.service
EOF
chroot "$r" systemctl enable lab-hostkey.service

install -d -m 0700 "$r/root/.ssh"
'

echo "mmdebstrap $suite: $packages" >&2
mmdebstrap --variant=minbase --mode=root --format=directory \
  --include="$packages" \
  --customize-hook="$hook" \
  --customize-hook="install -m 0600 '$pubkey' \"\$1/root/.ssh/authorized_keys\"" \
  "$suite" "$root" ${mirror:+"$mirror"} </dev/null

cp "$root"/boot/vmlinuz-* "$tmp/vmlinuz"
cp "$root"/boot/initrd.img-* "$tmp/initrd.img"
chmod 0644 "$tmp/vmlinuz" "$tmp/initrd.img"

mkfs.ext4 -q -L lab-root -E root_owner=0:0 -d "$root" "$tmp/rootfs.raw" "${size_gib}G"
qemu-img convert -f raw -O qcow2 "$tmp/rootfs.raw" "$tmp/rootfs.qcow2"
rm -rf "$root" "$tmp/rootfs.raw"
chmod 0644 "$tmp/rootfs.qcow2"

trap - EXIT
rm -rf "$out"
mv "$tmp" "$out"
