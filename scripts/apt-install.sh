#!/usr/bin/env bash
# The one place the project's setup scripts install Debian packages from (conformance/setup-host.sh,
# view/setup-browser.sh, explorer/broker-setup.sh, explorer/bench/setup.sh): installs those of
# the named packages that are missing, as root or through sudo. Idempotent: prints nothing and
# exits 0 when every package is installed.
# Usage: scripts/apt-install.sh <caller's name, for messages> <package>...
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: apt-install.sh <caller> <package>..." >&2
  exit 2
fi
who=$1
shift

missing=()
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "$who: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

echo "$who: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt (unattended-upgrades on a fresh machine, or a second setup script of ours run
# alongside) may hold the dpkg or list lock: wait for it rather than fail at once.
lock=(-o DPkg::Lock::Timeout=600)
"${sudo[@]}" apt-get "${lock[@]}" update -qq
"${sudo[@]}" apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "$who: done"
