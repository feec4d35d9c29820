#!/bin/sh
# Guest-side setup, in order: (copy the sources into place), install the toolchain, check BTF,
# build. Every step is idempotent: a second run copies only changed files, installs nothing and
# rebuilds nothing. Used by the Vagrantfile's shell provisioner and by the vagrant backend.
#   sh provision/setup.sh [--from DIR] [--workdir DIR] [--no-build]
#     --from DIR      copy DIR/{bpf,client,provision} to the workdir first (Vagrant's file
#                     provisioner uploads there); without it, build where the scripts are
#     --workdir DIR   where bpf/, client/, provision/ live (default: /opt/usm-race-lab with
#                     --from, else the parent of this script's folder)
#     --no-build      packages and BTF check only
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=provision/common.sh
. "$here/common.sh"

from='' workdir='' build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --from) [ $# -ge 2 ] || die "$PROVISION_EX_USAGE" "--from needs a folder"; from=$2; shift 2 ;;
    --workdir) [ $# -ge 2 ] || die "$PROVISION_EX_USAGE" "--workdir needs a folder"; workdir=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) die "$PROVISION_EX_USAGE" "unknown argument '$1' (usage: $0 [--from DIR] [--workdir DIR] [--no-build])" ;;
  esac
done
need_root

if [ -n "$from" ]; then
  workdir=${workdir:-/opt/usm-race-lab}
  mkdir -p "$workdir"
  for d in bpf client provision; do
    [ -d "$from/$d" ] || die "$PROVISION_EX_USAGE" "$from/$d is missing"
    mkdir -p "$workdir/$d"
    # Copy only what differs, never the host's build output: make must see the guest's own.
    (cd "$from/$d" && find . -path ./build -prune -o -type f -print) | while read -r f; do
      if ! cmp -s "$from/$d/$f" "$workdir/$d/$f"; then
        mkdir -p "$(dirname "$workdir/$d/$f")"
        cp -p "$from/$d/$f" "$workdir/$d/$f"
      fi
    done
  done
  say "sources: in $workdir"
else
  workdir=${workdir:-$(dirname "$here")}
fi

sh "$workdir/provision/packages.sh"
sh "$workdir/provision/check-btf.sh"
[ "$build" = 1 ] && sh "$workdir/provision/build.sh" "$workdir"
say "setup: done ($workdir)"
