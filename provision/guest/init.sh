#!/bin/sh
# PID 1 of the lab images (/sbin/lab-init): no systemd, boots to sshd in a few seconds under TCG.
# Mounts the kernel file systems eBPF work needs, configures QEMU user networking statically
# (10.0.2.15/24 via 10.0.2.2: no DHCP wait), starts sshd and reaps orphans.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# The kernel starts init with umask 0; sshd refuses a world-writable /run/sshd.
umask 022

mnt() { # TYPE TARGET [OPTIONS]
  [ -d "$2" ] || mkdir -p "$2"
  mountpoint -q "$2" || mount -t "$1" ${3:+-o "$3"} "$1" "$2"
}
mnt proc /proc
mnt sysfs /sys
mnt devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mnt devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt tmpfs /dev/shm mode=1777
mnt tmpfs /run mode=755
mnt tracefs /sys/kernel/tracing
mnt debugfs /sys/kernel/debug
mnt bpf /sys/fs/bpf
mnt cgroup2 /sys/fs/cgroup
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

cat /etc/hostname >/proc/sys/kernel/hostname

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

mkdir -p /run/sshd
chmod 0755 /run/sshd
# A job of this shell: while it runs, `wait` below blocks in waitpid(-1), which also reaps the
# orphans the kernel re-parents to PID 1.
/usr/sbin/sshd -D -e &
echo "lab-init: sshd started (pid $!)"

while :; do
  wait
  sleep 1
done
