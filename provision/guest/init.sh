#!/bin/sh
# PID 1 of the lab images (/sbin/lab-init): no systemd; boots to sshd in a few seconds under
# TCG. The lab's tiny initrd has already mounted the kernel file systems (proc, sys, dev, pts,
# shm, tracefs, debugfs, bpffs, cgroup2, /run), set the hostname and configured QEMU user
# networking (10.0.2.15/24 via 10.0.2.2); booted any other way, this script does it itself.
# Then: umask 022, sshd with its log on the console, and reaping orphans.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# The kernel starts init with umask 0; sshd refuses a world-writable /run/sshd.
umask 022

if [ ! -e /run/lab-initrd-ready ]; then
  mnt() { # TYPE TARGET [OPTIONS]
    [ -d "$2" ] || mkdir -p "$2"
    mountpoint -q "$2" || mount -t "$1" ${3:+-o "$3"} "$1" "$2"
  }
  mnt proc /proc
  mnt sysfs /sys
  mnt devtmpfs /dev
  mnt devpts /dev/pts gid=5,mode=620,ptmxmode=666
  mnt tmpfs /dev/shm mode=1777
  mnt tmpfs /run mode=755
  mnt tracefs /sys/kernel/tracing
  mnt debugfs /sys/kernel/debug
  mnt bpf /sys/fs/bpf
  mnt cgroup2 /sys/fs/cgroup
  [ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
  read -r host </etc/hostname && echo "$host" >/proc/sys/kernel/hostname
  ip link set lo up
  ip addr add 10.0.2.15/24 dev eth0
  ip link set eth0 up
  ip route add default via 10.0.2.2
  mkdir -p -m 0755 /run/sshd
fi
exec </dev/console >/dev/console 2>&1

# A job of this shell: while it runs, `wait` below blocks in waitpid(-1), which also reaps the
# orphans the kernel re-parents to PID 1.
/usr/sbin/sshd -D -e &
read -r up _ </proc/uptime
echo "lab-init: sshd started (pid $!) at ${up} s"

while :; do
  wait
  sleep 1
done
