#!/bin/sh
# /init of the tiny initrd (static busybox): load the virtio drivers listed in /modules
# (dependency order), mount the root disk, and do the set-up the image's init would otherwise
# do with the image's dynamically linked tools (each exec of those costs ~0.1 s under TCG):
# kernel file systems, /run, hostname, static network. Then hand over to the image's init.
# A fatal failure exits, which makes the kernel panic; with panic=-1 and QEMU's -no-reboot the
# VM stops at once and the boot watcher reports the console tail.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

root=/dev/vda
init=/sbin/lab-init
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root=${arg#root=} ;;
    init=*) init=${arg#init=} ;;
  esac
done

while read -r mod; do
  [ -n "$mod" ] || continue
  insmod "/lib/modules/$mod.ko" || { echo "initrd: insmod $mod failed"; exit 1; }
done </modules

i=0
while [ ! -b "$root" ]; do
  i=$((i + 1))
  [ "$i" -le 400 ] || { echo "initrd: $root did not appear within 20 s"; exit 1; }
  usleep 50000
done

mount -t ext4 -o rw "$root" /newroot || { echo "initrd: cannot mount $root"; exit 1; }
[ -x "/newroot$init" ] || { echo "initrd: $init is missing in the image"; exit 1; }

# Kernel file systems (moved into the new root with /dev, /proc and /sys below).
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /newroot/run
mkdir -m 0755 /newroot/run/sshd

read -r host </newroot/etc/hostname && echo "$host" >/proc/sys/kernel/hostname

# QEMU user networking, statically: no DHCP wait.
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2

# Tells the image's init that the set-up above is done.
: >/newroot/run/lab-initrd-ready
for d in dev proc sys; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot "$init"
