#!/bin/sh
# Installs the guest toolchain (compilers, libbpf, bpftool, OpenSSL headers, python3) and the TLS
# terminators of --server (nginx, haproxy) with apt or dnf. Idempotent: asks the package manager only for what is missing; a second run installs
# nothing and says so.
#   sh provision/packages.sh [--dry-run]     (--dry-run: print what would be installed)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=provision/common.sh
. "$here/common.sh"

dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  '') ;;
  *) die "$PROVISION_EX_USAGE" "usage: $0 [--dry-run]" ;;
esac

family=$(distro_family)
kernel=$(uname -r)

case "$family" in
  debian)
    want="gcc make pkg-config clang llvm libbpf-dev libssl-dev libelf-dev zlib1g-dev python3 openssl ca-certificates nginx haproxy nodejs curl"
    # bpftool: its own package on Debian (bullseye and later); on Ubuntu it ships in
    # linux-tools-<running kernel> (linux-tools-common holds the /usr/sbin/bpftool wrapper).
    # shellcheck disable=SC1090
    if (. "${USM_LAB_OS_RELEASE:-/etc/os-release}" && [ "${ID:-}" = ubuntu ]); then
      want="$want linux-tools-common linux-tools-$kernel"
    else
      want="$want bpftool"
    fi
    installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
    ;;
  fedora)
    want="gcc make pkgconf-pkg-config clang llvm libbpf-devel bpftool openssl-devel elfutils-libelf-devel zlib-devel python3 openssl nginx haproxy nodejs curl"
    installed() { rpm -q "$1" >/dev/null 2>&1; }
    ;;
esac

missing=
for p in $want; do
  installed "$p" || missing="$missing $p"
done
missing=${missing# }

if [ -z "$missing" ]; then
  say "packages: all present ($family)"
  exit 0
fi
if [ "$dry" = 1 ]; then
  say "packages: would install ($family): $missing"
  exit 0
fi
need_root
say "packages: installing ($family): $missing"
case "$family" in
  debian)
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } ||
      die "$PROVISION_EX_PACKAGES" "apt-get could not install: $missing"
    ;;
  fedora)
    # shellcheck disable=SC2086
    dnf install -y -q $missing || die "$PROVISION_EX_PACKAGES" "dnf could not install: $missing"
    ;;
esac
# nginx and haproxy start their services on install (Debian): the lab runs its own instances
case " $missing " in
  *" nginx "*|*" haproxy "*)
    if [ -d /run/systemd/system ]; then
      for svc in nginx haproxy; do timeout 60 systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
    fi ;;
esac
say "packages: installed $missing"
