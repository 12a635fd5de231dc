#!/usr/bin/env bash
# What `npm run bench` needs besides node: Spin (Debian package spin) for the baseline, gcc for
# its verifier, and GNU time (package time) for whole-process figures. Idempotent.
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/apt-install.sh" bench/setup.sh spin gcc time
