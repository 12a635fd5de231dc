#!/usr/bin/env bash
# What the distributed search's tests and bench need besides node: the Redis server (Debian
# package redis-server) they start on loopback, and nats-server for the measurement that chose
# Redis (explorer/bench/broker-choice.ts). Only the binaries are used: no service is enabled.
# Idempotent: prints nothing and exits 0 when everything is present.
set -euo pipefail
exec bash "$(dirname "$0")/../scripts/apt-install.sh" broker-setup.sh redis-server nats-server
