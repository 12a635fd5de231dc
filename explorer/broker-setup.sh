#!/usr/bin/env bash
# What the distributed search's tests and bench need besides node: the Redis server (Debian
# package redis-server) they start on loopback, and nats-server for the measurement that chose
# Redis (explorer/bench/broker-choice.ts). Only the binaries are used: no service is enabled.
# Idempotent: prints nothing and exits 0 when everything is present.
set -euo pipefail
packages=(redis-server nats-server)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
  echo "broker-setup.sh: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
echo "broker-setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "broker-setup.sh: done"
