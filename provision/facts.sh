#!/bin/sh
# Prints this machine's versions as one JSON object: kernel, distro, OpenSSL, compilers, libbpf,
# bpftool, python, node (runs the debug-endpoint look-alike), the TLS terminators (nginx, HAProxy;
# empty when not installed), BTF and kprobe
# availability. Read-only; safe to re-run.
v() { "$@" 2>/dev/null | head -n 1 | tr -d '"\\' ; }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || rpm -q --qf '%{VERSION}' "$1" 2>/dev/null || true; }
distro=$( . /etc/os-release 2>/dev/null && echo "$ID ${VERSION_ID:-${VERSION_CODENAME:-}}" )
libbpf=$(pkg-config --modversion libbpf 2>/dev/null || pkgver libbpf-dev)
btf=no; [ -r /sys/kernel/btf/vmlinux ] && btf=yes
kprobes=no
PATH=$PATH:/usr/sbin:/sbin
nginx=$(nginx -v 2>&1 | sed -n 's|^nginx version: nginx/\([^ ]*\).*|\1|p' | head -n 1)
haproxy=$(haproxy -v 2>/dev/null | sed -n 's/^HA-\{0,1\}Proxy version \([^ ]*\).*/\1/p' | head -n 1)
node=$(node --version 2>/dev/null | sed -n 's/^v//p' | head -n 1)
for f in /sys/kernel/tracing/kprobe_events /sys/kernel/debug/tracing/kprobe_events; do [ -e "$f" ] && kprobes=yes; done
printf '{"kernel":"%s","arch":"%s","distro":"%s","openssl":"%s","clang":"%s","gcc":"%s","libbpf":"%s","bpftool":"%s","python":"%s","node":"%s","nginx":"%s","haproxy":"%s","btf":"%s","kprobes":"%s"}\n' \
  "$(uname -r)" "$(uname -m)" "$distro" \
  "$(v openssl version | awk '{print $2}')" \
  "$(v clang --version | sed -n 's/.*version \([0-9.]*\).*/\1/p')" \
  "$(v gcc -dumpfullversion)" \
  "$libbpf" \
  "$(v bpftool version | awk '{print $2}')" \
  "$(v python3 -c 'import platform; print(platform.python_version())')" \
  "$node" "$nginx" "$haproxy" "$btf" "$kprobes"
