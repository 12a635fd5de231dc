#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (npm run test:browser), which drive it
# through playwright-core at /usr/bin/chromium: nothing downloads a browser at install time.
# fonts-dejavu-core gives the screenshots a font with the box-drawing and arrow glyphs the
# pages use. Idempotent: prints nothing and exits 0 when everything is present.
set -euo pipefail
exec bash "$(dirname "$0")/../scripts/apt-install.sh" setup-browser.sh chromium fonts-dejavu-core
