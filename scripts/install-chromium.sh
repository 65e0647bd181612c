#!/usr/bin/env bash
# Installs Debian's headless Chromium and ChromeDriver for the debug page's
# browser test (test/integration/debug-page.test.ts) and its screenshot
# command (npm run screenshot:debug-page), plus DejaVu fonts if the machine
# has none (the screenshot's text). Idempotent: installs nothing that is
# already there. Needs root (apt-get) only when something is missing.
# Playwright's own browser download (`npx playwright install`) is never used.
set -euo pipefail

pkgs=()
[ -x /usr/bin/chromium ] || pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || pkgs+=(chromium-driver)
[ -d /usr/share/fonts/truetype/dejavu ] || pkgs+=(fonts-dejavu-core)

if [ "${#pkgs[@]}" = 0 ]; then
  echo "install-chromium: already installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-chromium: missing ${pkgs[*]} and this is not root: run it as root, or apt-get install ${pkgs[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-chromium: apt-get update"
apt-get update -qq || echo "install-chromium: apt-get update failed; trying the install with the package lists there are"
echo "install-chromium: apt-get install -y -qq --no-install-recommends ${pkgs[*]}"
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "install-chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
