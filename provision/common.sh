#!/bin/sh
# Shared helpers for the guest-side provision scripts (sourced, not run). POSIX sh: the images'
# tiny init and every public box have /bin/sh; not every one has bash.
#
# Exit codes of the provision scripts (the vagrant backend maps them to messages):
#   0 ok, 2 usage, 3 unsupported distribution, 4 kernel without BTF, 5 package install failed,
#   6 build failed, 7 not root

# shellcheck disable=SC2034 # used by the scripts that source this file
PROVISION_EX_USAGE=2
PROVISION_EX_DISTRO=3
# shellcheck disable=SC2034
PROVISION_EX_NOBTF=4
# shellcheck disable=SC2034
PROVISION_EX_PACKAGES=5
# shellcheck disable=SC2034
PROVISION_EX_BUILD=6
PROVISION_EX_ROOT=7

say() { printf 'provision: %s\n' "$*"; }
die() { code=$1; shift; printf 'provision: error: %s\n' "$*" >&2; exit "$code"; }

need_root() {
  [ "$(id -u)" = 0 ] || die "$PROVISION_EX_ROOT" "run as root (sudo $0)"
}

# Prints the distribution family: debian (Debian, Ubuntu and derivatives) or fedora (Fedora,
# RHEL, Rocky, Alma, CentOS Stream). Exits 3 for anything else.
# USM_LAB_OS_RELEASE replaces /etc/os-release (tests).
distro_family() {
  osr=${USM_LAB_OS_RELEASE:-/etc/os-release}
  [ -r "$osr" ] || die "$PROVISION_EX_DISTRO" "no $osr: cannot tell the distribution"
  # shellcheck disable=SC1090
  id=$(. "$osr" && printf '%s %s' "${ID:-}" "${ID_LIKE:-}")
  case " $id " in
    *" debian "*|*" ubuntu "*) echo debian ;;
    *" fedora "*|*" rhel "*|*" centos "*|*" rocky "*|*" almalinux "*) echo fedora ;;
    *) die "$PROVISION_EX_DISTRO" "unsupported distribution '$id' (supported: Debian/Ubuntu family with apt, Fedora/RHEL family with dnf)" ;;
  esac
}
