#!/bin/sh
# /init of the floor initrd (busybox, no disk, no modules): prints a marker on the console and
# powers off. Used to measure the raw kernel boot (bench-boot.mjs) and to probe whether KVM
# really runs a guest.
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "USM-LAB-FLOOR-OK" >/dev/console
poweroff -f
