#!/usr/bin/env bash
# Installs the Debian packages the conformance target needs on the host: the kernel build
# (make, gcc, flex, bison, bc, libelf-dev for objtool, libssl-dev, rsync for headers_install),
# the source download (apt, dpkg-deb, xz), the static shim and selftests (libc6-dev,
# libcap-dev), and the VM (qemu-system-x86, busybox-static). Idempotent: prints nothing and
# exits 0 when everything is present.
set -euo pipefail

packages=(
  make gcc libc6-dev flex bison bc libelf-dev libssl-dev rsync cpio xz-utils
  libcap-dev busybox-static qemu-system-x86 debian-archive-keyring
)

missing=()
for p in "${packages[@]}"; do
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
  echo "setup-host.sh: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup-host.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-host.sh: done"
