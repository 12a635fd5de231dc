#!/usr/bin/env bash
# Installs the Debian packages the conformance target needs on the host: the kernel build
# (make, gcc, flex, bison, bc, libelf-dev for objtool, libssl-dev, rsync for headers_install),
# the source download (apt, dpkg-deb, xz), the static shim and selftests (libc6-dev,
# libcap-dev), the VM (qemu-system-x86, busybox-static), and the coverage report (universal-ctags:
# function ranges; gcov comes with gcc). Idempotent: prints nothing and
# exits 0 when everything is present.
set -euo pipefail

packages=(
  make gcc libc6-dev flex bison bc libelf-dev libssl-dev rsync cpio xz-utils
  libcap-dev busybox-static qemu-system-x86 debian-archive-keyring
  universal-ctags
)

exec bash "$(dirname "$0")/../scripts/apt-install.sh" setup-host.sh "${packages[@]}"
