#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (npm run test:browser), which drive it
# through playwright-core at /usr/bin/chromium: nothing downloads a browser at install time.
# fonts-dejavu-core gives the screenshots a font with the box-drawing and arrow glyphs the
# pages use. Idempotent: prints nothing and exits 0 when everything is present.
set -euo pipefail

packages=(chromium fonts-dejavu-core)

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
  echo "setup-browser.sh: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup-browser.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-browser.sh: done"
