#!/bin/sh
# Builds the eBPF model (bpf/) and the race client (client/) with this machine's own toolchain.
# make decides what is out of date, so a second run rebuilds nothing.
#   sh provision/build.sh [WORKDIR]     (WORKDIR: holds bpf/ and client/; default: this repo)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=provision/common.sh
. "$here/common.sh"

workdir=${1:-$(dirname "$here")}
for d in bpf client; do
  [ -f "$workdir/$d/Makefile" ] || die "$PROVISION_EX_BUILD" "no $workdir/$d/Makefile: upload bpf/ and client/ first"
  say "build: make -C $workdir/$d"
  make -C "$workdir/$d" || die "$PROVISION_EX_BUILD" "make -C $workdir/$d failed"
done
say "build: done"
