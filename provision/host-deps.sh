#!/usr/bin/env bash
# Installs the host packages this project needs, idempotently: only what is missing, and says
# what. Not root: prints the exact apt-get line and stops (exit 3).
#   bash provision/host-deps.sh [build] [images] [vagrant] [report] [servers]   (default: build images)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

build_pkgs=(gcc make pkg-config clang llvm libbpf-dev bpftool libssl-dev libelf-dev zlib1g-dev python3 openssl curl)
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(build images)

want=()
for g in "${groups[@]}"; do
  case "$g" in
    build) want+=("${build_pkgs[@]}") ;;
    images|vagrant|report|servers)
      list="$here/host-deps-$g.txt"
      [ -f "$list" ] || { echo "host-deps: $list is missing" >&2; exit 2; }
      while read -r p _; do
        case "$p" in ''|'#'*) ;; *) want+=("$p") ;; esac
      done <"$list" ;;
    *) echo "host-deps: unknown group '$g' (allowed: build images vagrant report servers)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
# de-duplicate, keep order
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

if [ ${#missing[@]} -eq 0 ]; then
  echo "host-deps: all ${#want[@]} packages present (${groups[*]})"
  exit 0
fi

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "host-deps: missing packages: ${missing[*]}" >&2
  echo "host-deps: run as root:  apt-get update && $line" >&2
  exit 3
fi

echo "host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq
timeout 1800 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "host-deps: installed ${#missing[@]} package(s)"
# The servers group's packages start their system service on install (nginx on port 80): the
# toolkit runs its own instances, so a service this run's install started is stopped again.
for svc in nginx haproxy; do
  case " ${missing[*]} " in *" $svc "*|*" $svc-light "*) ;; *) continue ;; esac
  if [ -d /run/systemd/system ]; then
    timeout 60 systemctl disable --now "$svc" >/dev/null 2>&1 && echo "host-deps: stopped and disabled the $svc service the install started"
  elif [ -x "/etc/init.d/$svc" ]; then
    timeout 60 "/etc/init.d/$svc" stop >/dev/null 2>&1 && echo "host-deps: stopped the $svc service the install started"
  fi
done
