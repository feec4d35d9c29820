#!/bin/sh
# Checks that the running kernel exposes BTF (/sys/kernel/btf/vmlinux): the CO-RE BPF object
# needs it. Read-only. Exit 0 with the kernel and BTF size, or exit 4 with what to do.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=provision/common.sh
. "$here/common.sh"

btf=${USM_LAB_BTF_PATH:-/sys/kernel/btf/vmlinux}   # override: tests
kernel=$(uname -r)
if [ -r "$btf" ]; then
  size=$(wc -c <"$btf" | tr -d ' ')
  say "btf: yes (kernel $kernel, $btf $size bytes)"
  exit 0
fi
cfg=
for f in "/boot/config-$kernel" /proc/config.gz; do [ -e "$f" ] && cfg=$f && break; done
hint="this box's kernel was built without CONFIG_DEBUG_INFO_BTF"
[ -n "$cfg" ] && hint="$hint (see $cfg)"
die "$PROVISION_EX_NOBTF" "kernel $kernel has no BTF ($btf missing): $hint; use a box with a newer kernel (Ubuntu >= 20.10, Debian >= 11, Fedora >= 31, RHEL/Rocky/Alma >= 8.2)"
