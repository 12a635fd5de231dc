#!/usr/bin/env bash
# What `npm run bench` needs besides node: Spin (Debian package spin) for the baseline, gcc for
# its verifier, and GNU time (package time) for whole-process figures. Idempotent; says what it
# cannot install.
set -euo pipefail
missing=()
command -v spin >/dev/null 2>&1 || missing+=(spin)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -x /usr/bin/time ] || missing+=(time)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
  echo "bench/setup.sh: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
echo "bench/setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
