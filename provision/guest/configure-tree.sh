#!/bin/sh
# Runs on the HOST after debootstrap, on the image's root tree: turns a Debian minbase tree
# into a lab image (tiny init, sshd with pinned host key and the cache's client key, no
# package caches). Usage: configure-tree.sh TREE HOSTNAME INIT_SCRIPT AUTHORIZED_KEY_FILE HOST_KEY_FILE
set -eu
tree=$1 host=$2 init=$3 authkey=$4 hostkey=$5
[ -d "$tree/etc" ] || { echo "configure-tree: $tree is not a root tree" >&2; exit 2; }

install -m 0755 "$init" "$tree/sbin/lab-init"

echo "$host" >"$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$host" >"$tree/etc/hosts"
: >"$tree/etc/machine-id"
printf 'nameserver 10.0.2.3\n' >"$tree/etc/resolv.conf"

install -d -m 0700 "$tree/root/.ssh"
install -m 0600 "$authkey" "$tree/root/.ssh/authorized_keys"

# One host key, generated for this image and recorded in its manifest: clients pin it.
rm -f "$tree"/etc/ssh/ssh_host_*
install -m 0600 "$hostkey" "$tree/etc/ssh/ssh_host_ed25519_key"
install -m 0644 "$hostkey.pub" "$tree/etc/ssh/ssh_host_ed25519_key.pub"
mkdir -p "$tree/etc/ssh/sshd_config.d"
cat >"$tree/etc/ssh/sshd_config.d/00-lab.conf" <<'CONF'
# usm-race-lab: key-only root login, one pinned host key, many parallel exec channels.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
MaxSessions 64
MaxStartups 64:30:128
CONF
# bullseye's sshd_config may lack the Include line: make sure the drop-in is read first.
grep -q '^Include /etc/ssh/sshd_config.d/\*.conf' "$tree/etc/ssh/sshd_config" ||
  sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' "$tree/etc/ssh/sshd_config"

# Not needed at run time: package caches, the distro initrd (the lab boots its own tiny one).
rm -f "$tree"/var/cache/apt/archives/*.deb "$tree"/var/cache/apt/*.bin
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/boot/initrd.img* "$tree"/tmp/* "$tree"/var/log/*.log
