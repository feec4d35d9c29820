#!/bin/sh
# /init of the tiny initrd (busybox): load the virtio drivers listed in /modules (dependency
# order), mount the root disk and hand over to the image's init. Any failure exits, which makes
# the kernel panic; with panic=-1 and QEMU's -no-reboot the VM stops at once and the boot
# watcher reports the console tail.
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
for d in dev proc sys; do mount --move "/$d" "/newroot/$d"; done
exec switch_root /newroot "$init"
